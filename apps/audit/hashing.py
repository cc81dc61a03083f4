"""Canonical serialisation and hashing of audit records (pure; shared by write and verify)."""

import datetime as dt
import hashlib
import json
import uuid
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64


def jsonable(value: Any) -> Any:
    """Normalise a value so that it survives a jsonb round trip unchanged (hash stays stable)."""
    if isinstance(value, str):
        # PostgreSQL text and jsonb cannot hold NUL; replace it so any input can be audited.
        return value.replace("\x00", "\ufffd")
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, (Decimal, float)):
        # Decimals keep their exact digits as text; jsonb would reformat numbers.
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {jsonable(str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    return str(value)


def format_timestamp(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def compute_hash(
    *,
    seq: int,
    created_at: dt.datetime,
    actor_id: int | None,
    actor_repr: str,
    action: str,
    object_type: str,
    object_id: str,
    before: Any,
    after: Any,
    ip: str | None,
    prev_hash: str,
) -> str:
    payload = [
        seq,
        format_timestamp(created_at),
        actor_id,
        actor_repr,
        action,
        object_type,
        object_id,
        before,
        after,
        ip,
        prev_hash,
    ]
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
