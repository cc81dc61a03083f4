"""Command line of the worker (shared by ``python -m apps.matching.worker`` and run_matcher)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from apps.matching.protocol import DEFAULT_MD_PREFIX, DEFAULT_PREFIX

from .runner import Config, Worker, main_dump


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m apps.matching.worker",
        description="Matching worker: Redis stream in, journal, engine, Redis stream out.",
    )
    p.add_argument("--journal-dir", type=Path, required=True, help="this shard's own directory")
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--of", dest="shards", type=int, default=1, help="number of shards")
    p.add_argument("--cpu", type=int, default=None, help="pin to this CPU (sched_setaffinity)")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help="Redis key prefix of the streams")
    p.add_argument("--md-prefix", default=DEFAULT_MD_PREFIX, help="market-data channel prefix")
    p.add_argument("--batch", type=int, default=1000, help="max entries per read (group commit)")
    p.add_argument("--block-ms", type=int, default=100)
    p.add_argument("--snapshot-interval", type=float, default=300.0, help="seconds; 0 = off")
    p.add_argument("--snapshot-every", type=int, default=1_000_000, help="commands; 0 = off")
    p.add_argument("--snapshot-mode", choices=("fork", "inline"), default="fork")
    p.add_argument("--keep-snapshots", type=int, default=2)
    p.add_argument(
        "--retain-journal", action="store_true", help="never delete old journal segments"
    )
    p.add_argument("--dedupe-ids", type=int, default=1_000_000)
    p.add_argument("--dedupe-age", type=float, default=24 * 3600.0, help="seconds")
    p.add_argument("--out-maxlen", type=int, default=1_000_000, help="0 = never trim")
    p.add_argument("--no-trim-input", dest="trim_input", action="store_false")
    p.add_argument("--no-market-data", dest="market_data", action="store_false")
    p.add_argument("--md-levels", type=int, default=10)
    p.add_argument("--md-interval", type=float, default=0.05, help="depth conflation, seconds")
    p.add_argument("--lease-ttl", type=float, default=30.0)
    p.add_argument("--health-interval", type=float, default=1.0, help="seconds")
    p.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    p.add_argument(
        "--dump-state",
        action="store_true",
        help="rebuild the state from disk only (no Redis, no repair), print it as JSON, exit",
    )
    # Test hook: slow snapshot writing down so a crash test can kill the worker mid-write.
    p.add_argument("--snapshot-pause", type=float, default=0.0, help=argparse.SUPPRESS)
    # Test hook: sleep between a batch's journal fsync and its publication (widens the window a
    # crash test's SIGKILL must hit to exercise re-publishing).
    p.add_argument("--publish-pause", type=float, default=0.0, help=argparse.SUPPRESS)
    return p


def config_from_args(ns: argparse.Namespace) -> Config:
    if not 0 <= ns.shard < ns.shards:
        raise SystemExit(f"--shard must be in 0..{ns.shards - 1}")
    return Config(
        journal_dir=ns.journal_dir,
        shard=ns.shard,
        shards=ns.shards,
        redis_url=ns.redis_url,
        prefix=ns.prefix,
        md_prefix=ns.md_prefix,
        cpu=ns.cpu,
        batch=ns.batch,
        block_ms=ns.block_ms,
        snapshot_interval=ns.snapshot_interval,
        snapshot_every=ns.snapshot_every,
        snapshot_mode=ns.snapshot_mode,
        keep_snapshots=max(1, ns.keep_snapshots),
        retain_journal=ns.retain_journal,
        dedupe_ids=ns.dedupe_ids,
        dedupe_age=ns.dedupe_age,
        out_maxlen=ns.out_maxlen,
        trim_input=ns.trim_input,
        market_data=ns.market_data,
        md_levels=ns.md_levels,
        md_interval=ns.md_interval,
        lease_ttl=ns.lease_ttl,
        health_interval=ns.health_interval,
        snapshot_pause=ns.snapshot_pause,
        publish_pause=ns.publish_pause,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    logging.basicConfig(
        level=ns.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s",
    )
    cfg = config_from_args(ns)
    if ns.dump_state:
        return main_dump(cfg)
    return Worker(cfg).run()
