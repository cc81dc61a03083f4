"""Run the settlement consumer of one matcher shard (Procfile: settlement).

See apps/settlement/consumer.py (reading, acknowledgement, errors) and
apps/settlement/services.py (what each event does). SIGTERM/SIGINT: finish the batch in
progress, exit 0.
"""

import logging
import signal
from types import FrameType
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.matching.protocol import Names
from apps.settlement.consumer import SettlementConsumer

log = logging.getLogger("apps.settlement")


class Command(BaseCommand):
    help = "Settle the matcher's events of one shard: fills, cash, positions, order statuses."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shard", type=int, default=settings.MATCHER_SHARD)
        parser.add_argument(
            "--batch",
            type=int,
            default=settings.SETTLEMENT_BATCH_EVENTS,
            help="max events per transaction",
        )
        parser.add_argument("--block-ms", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        shard = options["shard"]
        if not 0 <= shard < settings.MATCHER_SHARDS:
            raise CommandError(f"--shard must be in 0..{settings.MATCHER_SHARDS - 1}")
        client = redis.Redis.from_url(settings.REDIS_URL)
        consumer = SettlementConsumer(
            redis_client=client,
            names=Names(settings.MATCHER_PREFIX, settings.MATCHER_MD_PREFIX),
            shard=shard,
            batch_events=options["batch"],
            block_ms=options["block_ms"],
        )

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: stopping after the current batch", signum)
            consumer.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            consumer.run()
        finally:
            client.close()
