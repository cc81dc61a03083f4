"""The matching service's wire protocol on Redis (Django-free; producers and consumers import it).

Keys (``<p>`` is the key prefix, ``matcher`` unless configured; tests use a unique one):

=================================  ===============================================================
``<p>:in:<shard>``                 input stream: one entry per command, read by the shard's worker
                                   with consumer group ``matcher`` (consumer ``matcher-<shard>``)
``<p>:out:<shard>``                output stream: engine events, several per entry, in seq order
``<p>:health:<shard>``             hash: worker health and metrics, rewritten about once a second
``<p>:lease:<shard>``              string: which worker (host + journal dir) owns the shard
``md:<SYMBOL>``                    pub/sub channel: market data (trades, BBO, L2 depth changes)
=================================  ===============================================================

Sharding: a symbol belongs to shard ``shard_for(symbol, shards)`` = CRC-32 of its UTF-8 bytes
modulo the shard count (stable across processes, machines and Python versions - unlike
``hash()``). Every command of a symbol goes to that shard's input stream; a cancel or replace
goes to the shard of the order's symbol. Changing the shard count moves symbols: the worker
refuses to start when its journal was written with another count.

Input entry (``XADD <p>:in:<shard> * id <command id> cmd <json>``), written by
``command_enqueue``:

* ``id``: globally unique command id chosen by the producer, 1-256 visible ASCII characters
  (no spaces). Convention: ``<app>:<entity id>:<action>``, e.g. ``oms:<order uuid>:new``,
  ``oms:<order uuid>:cancel:<attempt uuid>``, ``instrument:<SYMBOL>:<tick>:<lot>``. The worker
  applies each id at most once (a re-sent or re-delivered command is acknowledged and dropped)
  within its de-duplication window: the last 1,000,000 applied ids and at most 24 h (both
  configurable). Beyond it the engine still refuses a duplicate *order id*, so a very late
  duplicate ``new_order`` only produces a ``rejected`` event.
* ``cmd``: the command as compact JSON, in either of two forms (prices in ticks, quantities in
  lots, tick/lot sizes as decimal strings):

  - object: ``apps.matching.engine.command_to_dict(command)``, e.g.
    ``{"command":"cancel","order_id":"o1","account":"a1"}``;
  - positional (what ``command_enqueue`` sends: it parses ~2.5x faster, which is a third of the
    worker's CPU per order): ``[name, field, ...]`` with the fields of ``COMMAND_FIELDS[name]``
    in that order; trailing optional fields may be left out, e.g. ``["cancel","o1","a1"]``,
    ``["new_order","o2","a1","AAPL","buy","limit","GTC",10,18950]``.

  ``command`` / ``name`` is ``new_order``, ``cancel``, ``replace``, ``end_of_session`` or
  ``add_instrument``. ``ts`` may be present in the object form and is ignored: the worker
  stamps every command of a batch with the wall-clock time (ns) at which it journals the
  batch, and the journal stores that stamp, so replay is deterministic. Unknown keys, a wrong
  number of fields, or malformed JSON make a command invalid: it is journaled and answered
  with a ``rejected`` event (reason ``INVALID_COMMAND``), never silently dropped. An entry
  without an ``id`` is keyed ``stream:<entry id>``.
* Other fields are ignored.

Output entry (``<p>:out:<shard>``), one or more per input batch:

* ``first`` / ``last``: engine sequence numbers of the first and last event in the entry.
  Sequence numbers start at 1 and have no gaps; consumers de-duplicate by ``(shard, seq)``
  (after a crash the worker re-publishes only events above the stream's last ``last``, so
  duplicates are not expected, but consumers must tolerate them).
* ``ts``: the batch's journal stamp (ns).
* ``ev``: JSON array of events, each a JSON array laid out as
  ``apps.matching.engine.EVENT_FIELDS[kind]`` (kind first, seq second). ``decode_output_entry``
  turns it back into engine event tuples.
* ``in``: on the last entry of a batch only: the id of the last input entry of that batch
  (everything up to it has been applied; producers can measure end-to-end latency with it).

Market data (``md:<SYMBOL>``, best effort like any pub/sub, never the source of truth), one
JSON message per symbol per batch that touched it; prices in ticks, quantities in lots:
``{"symbol", "shard", "seq", "ts", "trades": [[seq, price, qty, aggressor_side], ...],
"bbo": [bid, bid_qty, ask, ask_qty] (when it changed), "depth": [[side, price, qty, orders],
...] (changed levels among the top ``depth_levels``; qty 0 = level left the top), "snapshot":
true (depth is then the full top, sent at worker start)}``. Depth is conflated: at most one
depth update per symbol per 50 ms (BBO and trades are never conflated).

Health hash fields (strings): ``state`` (recovering/running/stopping/stopped), ``pid``, ``host``,
``cpu``, ``shard``, ``shards``, ``last_seq``, ``last_input_id``, ``input_lag`` (entries not yet
delivered to the group, from XINFO GROUPS; approximated from XLEN on Redis < 7), ``pending``
(delivered, not yet acknowledged), ``ops_per_s`` / ``events_per_s`` (over the last interval),
``wait_read`` / ``wait_sync`` / ``wait_publish`` (share of the last interval spent waiting for
input replies, for fdatasync after matching, for the publish round trip),
``commands`` (applied since start), ``commands_total`` (since the journal began),
``duplicates``, ``batches``, ``last_snapshot_at`` (unix s), ``last_snapshot_seq``,
``journal_bytes``, ``started_at``, ``updated_at`` (unix s), and at a clean stop ``state_hash``
(sha256 of the engine's canonical snapshot).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from apps.matching.engine import EVENT_FIELDS, Command, Event, command_to_dict

DEFAULT_PREFIX: Final = "matcher"
DEFAULT_MD_PREFIX: Final = "md"
GROUP: Final = "matcher"
COMMAND_ID_MAX: Final = 256
# Visible ASCII, no spaces: ids end up in logs, journal and snapshots verbatim.
_COMMAND_ID_RE: Final = re.compile(r"[\x21-\x7e]{1,256}")


def shard_for(symbol: str, shards: int) -> int:
    """The shard that owns ``symbol`` (CRC-32 of the UTF-8 symbol modulo ``shards``)."""
    if shards < 1:
        raise ValueError("shards must be >= 1")
    return zlib.crc32(symbol.encode("utf-8")) % shards


@dataclass(frozen=True, slots=True)
class Names:
    """Redis key names of one deployment (``prefix`` keeps test runs apart)."""

    prefix: str = DEFAULT_PREFIX
    md_prefix: str = DEFAULT_MD_PREFIX

    def in_stream(self, shard: int) -> str:
        return f"{self.prefix}:in:{shard}"

    def out_stream(self, shard: int) -> str:
        return f"{self.prefix}:out:{shard}"

    def health_key(self, shard: int) -> str:
        return f"{self.prefix}:health:{shard}"

    def lease_key(self, shard: int) -> str:
        return f"{self.prefix}:lease:{shard}"

    def md_channel(self, symbol: str) -> str:
        return f"{self.md_prefix}:{symbol}"

    @staticmethod
    def consumer(shard: int) -> str:
        # Fixed per shard: a restarted worker re-reads the entries its predecessor had been
        # delivered but had not acknowledged.
        return f"{GROUP}-{shard}"


DEFAULT_NAMES: Final = Names()


def valid_command_id(command_id: str) -> bool:
    return _COMMAND_ID_RE.fullmatch(command_id) is not None


def instrument_command_id(symbol: str, tick_size: object, lot_size: object) -> str:
    """Deterministic id of an ``add_instrument`` command: re-enqueueing it is a no-op."""
    return f"instrument:{symbol}:{tick_size}:{lot_size}"


# Positional form: the fields after the name, in order; the first ``required`` are mandatory.
COMMAND_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "new_order": (
        "order_id",
        "account",
        "symbol",
        "side",
        "order_type",
        "tif",
        "qty",
        "price",
        "stop_price",
        "stp",
        "protection",
    ),
    "cancel": ("order_id", "account"),
    "replace": ("order_id", "account", "new_qty", "new_price", "new_stop_price"),
    "end_of_session": ("symbol",),
    "add_instrument": ("symbol", "tick_size", "lot_size"),
}
COMMAND_REQUIRED: Final[dict[str, int]] = {
    "new_order": 7,
    "cancel": 1,
    "replace": 1,
    "end_of_session": 0,
    "add_instrument": 3,
}
# Defaults of the optional fields (what an omitted trailing field means).
COMMAND_DEFAULTS: Final[dict[str, Any]] = {"stp": "none"}


def encode_command(command: Command | Mapping[str, Any], *, positional: bool = True) -> bytes:
    """Compact JSON of a command (dataclass or ``command_to_dict`` form), without ``ts``:
    positional by default, the object form with ``positional=False``."""
    data = dict(command) if isinstance(command, Mapping) else command_to_dict(command)
    data.pop("ts", None)
    name = data.get("command")
    if name not in COMMAND_FIELDS:
        raise ValueError(f"unknown command {name!r}")
    if positional:
        fields = COMMAND_FIELDS[name]
        unknown = set(data) - {"command", *fields}
        if unknown:
            raise ValueError(f"unknown {name} fields: {sorted(unknown)}")
        values = [data.get(f, COMMAND_DEFAULTS.get(f)) for f in fields]
        keep = len(values)
        while keep > COMMAND_REQUIRED[name] and values[keep - 1] == COMMAND_DEFAULTS.get(
            fields[keep - 1]
        ):
            keep -= 1
        return json.dumps([name, *values[:keep]], separators=(",", ":")).encode("ascii")
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def command_as_dict(data: Any) -> dict[str, Any]:
    """Either form of a decoded ``cmd`` as the object form (for readers and tests)."""
    if isinstance(data, dict):
        return data
    if isinstance(data, list) and data and data[0] in COMMAND_FIELDS:
        fields = COMMAND_FIELDS[data[0]]
        if COMMAND_REQUIRED[data[0]] <= len(data) - 1 <= len(fields):
            out = {"command": data[0]}
            out.update(zip(fields, data[1:], strict=False))
            return out
    raise ValueError(f"not a command: {data!r}")


def encode_command_entry(
    command_id: str, command: Command | Mapping[str, Any], *, positional: bool = True
) -> dict[str, bytes]:
    """The fields of an input stream entry."""
    if not valid_command_id(command_id):
        raise ValueError(f"invalid command id {command_id!r}: 1-{COMMAND_ID_MAX} visible ASCII")
    return {
        "id": command_id.encode("ascii"),
        "cmd": encode_command(command, positional=positional),
    }


def decode_command_entry(fields: Mapping[bytes | str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(command id, command dict) of an input entry; raises ValueError if ``cmd`` is bad."""
    norm = {_text(k): v for k, v in fields.items()}
    raw = norm.get("cmd")
    if raw is None:
        raise ValueError("entry has no cmd field")
    data = command_as_dict(json.loads(raw))
    cid = norm.get("id")
    return (None if cid is None else _text(cid)), data


class _XAdd(Protocol):
    def xadd(self, name: Any, fields: Any, *args: Any, **kwargs: Any) -> Any: ...


def command_enqueue(
    redis: _XAdd,
    *,
    shard: int,
    command_id: str,
    command: Command | Mapping[str, Any],
    names: Names = DEFAULT_NAMES,
) -> str:
    """Append one command to a shard's input stream (redis-py client or pipeline); returns the
    entry id ("" with a pipeline: the id comes with its results).

    Sending the same ``command_id`` again (a retry after a timeout, a re-run of a job) is safe:
    the worker applies it once. The command is durable once the worker has journaled it, i.e.
    when its events appear on the output stream.
    """
    entry_id = redis.xadd(names.in_stream(shard), encode_command_entry(command_id, command))
    return _text(entry_id) if isinstance(entry_id, bytes | str) else ""


# ------------------------------------------------------------------------------ output side
@dataclass(frozen=True, slots=True)
class OutputEntry:
    entry_id: str
    first: int
    last: int
    ts: int
    events: list[Event]
    input_id: str | None


# Events are flat tuples of str/int/None/bool: no cycles to guard against, and skipping the
# check is ~30% of the encoding time of a batch.
_EVENTS_ENCODER: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=True, check_circular=False
)


def encode_events(events: Sequence[Event]) -> bytes:
    return _EVENTS_ENCODER.encode(events).encode("ascii")


def decode_output_entry(entry_id: bytes | str, fields: Mapping[bytes | str, Any]) -> OutputEntry:
    norm = {_text(k): v for k, v in fields.items()}
    events = [tuple(e) for e in json.loads(norm["ev"])]
    for e in events:
        if e[0] not in EVENT_FIELDS or len(e) != len(EVENT_FIELDS[e[0]]):
            raise ValueError(f"malformed event in output entry {_text(entry_id)}: {e!r}")
    first, last = int(norm["first"]), int(norm["last"])
    if not events or events[0][1] != first or events[-1][1] != last:
        raise ValueError(f"output entry {_text(entry_id)} seq range does not match its events")
    in_id = norm.get("in")
    return OutputEntry(
        _text(entry_id),
        first,
        last,
        int(norm["ts"]),
        events,
        None if in_id is None else _text(in_id),
    )


class _XRange(Protocol):
    def xrange(self, name: Any, min: Any = ..., max: Any = ..., count: Any = ...) -> Any: ...


def iter_output_entries(
    redis: _XRange, *, shard: int, names: Names = DEFAULT_NAMES, batch: int = 1000
) -> Iterator[OutputEntry]:
    """Every entry of a shard's output stream, oldest first (redis-py client)."""
    start = "-"
    while True:
        rows = redis.xrange(names.out_stream(shard), min=start, max="+", count=batch)
        if not rows:
            return
        for entry_id, fields in rows:
            yield decode_output_entry(entry_id, fields)
        start = "(" + _text(rows[-1][0])


def iter_output_events(
    redis: _XRange, *, shard: int, after_seq: int = 0, names: Names = DEFAULT_NAMES
) -> Iterator[Event]:
    """Events of a shard with seq > ``after_seq``, each once (de-duplicated by seq)."""
    last = after_seq
    for entry in iter_output_entries(redis, shard=shard, names=names):
        if entry.last <= last:
            continue
        for event in entry.events:
            if event[1] > last:
                if event[1] != last + 1:
                    raise ValueError(f"gap in shard {shard} output: seq {last + 1} missing")
                last = event[1]
                yield event


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


__all__ = [
    "COMMAND_DEFAULTS",
    "COMMAND_FIELDS",
    "COMMAND_REQUIRED",
    "DEFAULT_MD_PREFIX",
    "DEFAULT_NAMES",
    "DEFAULT_PREFIX",
    "GROUP",
    "Names",
    "OutputEntry",
    "command_as_dict",
    "command_enqueue",
    "decode_command_entry",
    "decode_output_entry",
    "encode_command",
    "encode_command_entry",
    "encode_events",
    "instrument_command_id",
    "iter_output_entries",
    "iter_output_events",
    "shard_for",
    "valid_command_id",
]
