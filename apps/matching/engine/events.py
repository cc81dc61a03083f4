"""Event layouts and their canonical serialization.

On the hot path an event is a plain tuple whose first element is its kind and whose second is
the engine sequence number (building a tuple costs a fraction of a dataclass). The field names
of each kind are listed in ``EVENT_FIELDS``; ``event_to_dict``/``event_to_json`` turn a tuple
into a self-describing, byte-stable form (JSON, sorted keys, no whitespace) for journals,
Redis Streams and hashing.

Every value inside an event is ``str``, ``int``, ``bool`` or ``None``, so JSON is lossless.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Final

from .constants import (
    EV_ACCEPTED,
    EV_CANCELLED,
    EV_INSTRUMENT_ADDED,
    EV_REJECTED,
    EV_REPLACED,
    EV_SESSION_ENDED,
    EV_TRADE,
    EV_TRIGGERED,
)

Event = tuple[Any, ...]

EVENT_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    EV_ACCEPTED: (
        "kind",
        "seq",
        "ts",
        "symbol",
        "order_id",
        "account",
        "side",
        "order_type",
        "tif",
        "qty",
        "price",
        "stop_price",
    ),
    EV_REJECTED: ("kind", "seq", "ts", "command", "order_id", "symbol", "reason"),
    # price/qty in ticks/lots; remaining = open quantity of each order after this fill.
    EV_TRADE: (
        "kind",
        "seq",
        "ts",
        "symbol",
        "price",
        "qty",
        "aggressor_side",
        "maker_order_id",
        "maker_account",
        "taker_order_id",
        "taker_account",
        "maker_remaining",
        "taker_remaining",
    ),
    # qty = quantity cancelled by this event; remaining = open quantity left (> 0 only for an
    # STP decrement that did not use up the order).
    EV_CANCELLED: (
        "kind",
        "seq",
        "ts",
        "symbol",
        "order_id",
        "account",
        "qty",
        "remaining",
        "reason",
    ),
    # qty = new total order quantity; remaining = new open quantity.
    EV_REPLACED: (
        "kind",
        "seq",
        "ts",
        "symbol",
        "order_id",
        "account",
        "qty",
        "remaining",
        "price",
        "stop_price",
        "priority_kept",
    ),
    EV_TRIGGERED: (
        "kind",
        "seq",
        "ts",
        "symbol",
        "order_id",
        "account",
        "stop_price",
        "trigger_price",
    ),
    EV_INSTRUMENT_ADDED: ("kind", "seq", "ts", "symbol", "tick_size", "lot_size"),
    # symbol is None when the session ended for every symbol; expired = orders expired.
    EV_SESSION_ENDED: ("kind", "seq", "ts", "symbol", "expired"),
}


def event_to_dict(event: Event) -> dict[str, Any]:
    """Name the fields of an event tuple."""
    names = EVENT_FIELDS[event[0]]
    if len(names) != len(event):
        raise ValueError(f"malformed {event[0]} event: {event!r}")
    return dict(zip(names, event, strict=True))


def event_to_json(event: Event) -> bytes:
    """Canonical bytes of one event: JSON object, sorted keys, compact separators."""
    return json.dumps(
        event_to_dict(event), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def event_from_json(data: bytes | str) -> Event:
    """Inverse of ``event_to_json``."""
    obj = json.loads(data)
    return tuple(obj[name] for name in EVENT_FIELDS[obj["kind"]])


def events_to_bytes(events: Iterable[Event]) -> bytes:
    """Newline-separated canonical JSON of a sequence of events."""
    return b"".join(event_to_json(e) + b"\n" for e in events)


def events_digest(events: Iterable[Event]) -> str:
    """sha256 of ``events_to_bytes`` (handy for determinism checks on long runs)."""
    h = hashlib.sha256()
    for e in events:
        h.update(event_to_json(e))
        h.update(b"\n")
    return h.hexdigest()
