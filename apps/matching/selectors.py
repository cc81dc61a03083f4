"""Reads of the matching app: the workers' health, as they publish it in Redis."""

import time
from typing import Any

from apps.matching.protocol import Names

_NUMERIC = (
    "cpu",
    "shard",
    "shards",
    "last_seq",
    "input_lag",
    "pending",
    "ops_per_s",
    "events_per_s",
    "wait_read",
    "wait_sync",
    "wait_publish",
    "commands",
    "commands_total",
    "duplicates",
    "batches",
    "last_snapshot_seq",
    "last_snapshot_at",
    "journal_bytes",
    "started_at",
    "updated_at",
)
# What the health view shows; pid and host stay in Redis for operators.
_PUBLIC = (*_NUMERIC, "state", "last_input_id")


def _number(raw: str) -> int | float | None:
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return None


def matcher_health(*, redis: Any, shards: int, names: Names, stale_after: float) -> dict[str, Any]:
    """Health of every shard: ``ok`` when each worker is running and reported recently."""
    now = time.time()
    report: list[dict[str, Any]] = []
    for shard in range(shards):
        raw = redis.hgetall(names.health_key(shard))
        fields = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        item: dict[str, Any] = {"shard": shard}
        for key in _PUBLIC:
            if key in fields:
                item[key] = _number(fields[key]) if key in _NUMERIC else fields[key]
        updated = item.get("updated_at")
        age = None if not isinstance(updated, int | float) else round(now - updated, 3)
        item["age_s"] = age
        item["ok"] = item.get("state") == "running" and age is not None and age <= stale_after
        report.append(item)
    return {"status": "ok" if all(i["ok"] for i in report) else "degraded", "shards": report}
