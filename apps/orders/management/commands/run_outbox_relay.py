"""Run the outbox relay (Procfile: relay): publish committed matcher commands to Redis.

See apps/orders/relay.py for the protocol and its failure modes. SIGTERM/SIGINT: finish the
batch in progress, exit 0.
"""

import datetime as dt
import logging
import signal
from types import FrameType
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.matching.protocol import Names
from apps.orders.relay import OutboxRelay

log = logging.getLogger("apps.orders.relay")


class Command(BaseCommand):
    help = "Publish committed matcher commands from the transactional outbox to Redis."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=settings.OUTBOX_RELAY_BATCH)
        parser.add_argument(
            "--poll",
            type=float,
            default=settings.OUTBOX_RELAY_POLL_MS / 1000,
            help="seconds between polls when no NOTIFY arrives",
        )
        parser.add_argument(
            "--once", action="store_true", help="publish what is pending, then exit"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        client = redis.Redis.from_url(settings.REDIS_URL)
        relay = OutboxRelay(
            redis_client=client,
            names=Names(settings.MATCHER_PREFIX, settings.MATCHER_MD_PREFIX),
            batch=options["batch"],
            poll_interval=options["poll"],
            retention=dt.timedelta(days=settings.OUTBOX_RETENTION_DAYS),
        )
        try:
            if options["once"]:
                self.stdout.write(f"published {relay.drain()} commands")
                return

            def on_signal(signum: int, _frame: FrameType | None) -> None:
                log.info("signal %s: stopping after the current batch", signum)
                relay.stop()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            relay.run()
        finally:
            client.close()
