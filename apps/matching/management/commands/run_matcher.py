"""Run the matching worker of one shard: ``manage.py run_matcher --shard 0 --of 1 --cpu 1``.

A thin wrapper: it reads the settings (REDIS_URL, MATCHER_*), makes sure the shard's active
instruments are known to the engine by enqueueing their ``add_instrument`` commands (idempotent
ids, so a restart re-enqueues harmlessly), then replaces itself (exec, same pid, so supervisors'
signals reach the worker) with the Django-free ``python -m apps.matching.worker``.
"""

import os
import sys
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.matching.protocol import Names
from apps.matching.services import matcher_enqueue_instruments


class Command(BaseCommand):
    help = "Run the matching worker of one shard (journal, snapshots, Redis Streams)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shard", type=int, default=settings.MATCHER_SHARD)
        parser.add_argument("--of", dest="shards", type=int, default=settings.MATCHER_SHARDS)
        parser.add_argument(
            "--cpu",
            type=int,
            default=settings.MATCHER_CPU,
            help="CPU to pin the worker to (default: MATCHER_CPU; -1 = do not pin)",
        )
        parser.add_argument(
            "--journal-dir",
            default=None,
            help="default: MATCHER_JOURNAL_DIR/shard-<shard>",
        )
        parser.add_argument(
            "--enqueue-only",
            action="store_true",
            help="enqueue the shard's instruments and exit without starting the worker",
        )
        parser.add_argument(
            "worker_args",
            nargs="*",
            help="extra worker options after --, e.g. -- --batch 500 (see python -m "
            "apps.matching.worker --help)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        shard, shards = options["shard"], options["shards"]
        if not 0 <= shard < shards:
            raise CommandError(f"--shard must be in 0..{shards - 1}")
        names = Names(settings.MATCHER_PREFIX, settings.MATCHER_MD_PREFIX)
        client = redis.Redis.from_url(settings.REDIS_URL)
        try:
            symbols = matcher_enqueue_instruments(
                redis=client, shard=shard, shards=shards, names=names
            )
        finally:
            client.close()
        self.stdout.write(
            f"matcher shard {shard}/{shards}: instruments enqueued: {', '.join(symbols) or 'none'}"
        )
        if options["enqueue_only"]:
            return
        journal_dir = options["journal_dir"] or str(
            Path(settings.MATCHER_JOURNAL_DIR) / f"shard-{shard}"
        )
        argv = [
            sys.executable,
            "-m",
            "apps.matching.worker",
            "--shard",
            str(shard),
            "--of",
            str(shards),
            "--journal-dir",
            journal_dir,
            "--redis-url",
            settings.REDIS_URL,
            "--prefix",
            settings.MATCHER_PREFIX,
            "--md-prefix",
            settings.MATCHER_MD_PREFIX,
            "--snapshot-interval",
            str(settings.MATCHER_SNAPSHOT_INTERVAL),
            "--snapshot-every",
            str(settings.MATCHER_SNAPSHOT_EVERY),
            "--dedupe-ids",
            str(settings.MATCHER_DEDUPE_IDS),
            "--out-maxlen",
            str(settings.MATCHER_OUT_MAXLEN),
        ]
        cpu = options["cpu"]
        if cpu is not None and cpu >= 0:
            argv += ["--cpu", str(cpu)]
        argv += options["worker_args"]
        self.stdout.flush()
        sys.stderr.flush()
        # The worker is Django-free: no settings import, a small heap for its GC freeze.
        os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, fixed module
