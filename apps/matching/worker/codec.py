"""Input commands -> journal records -> engine calls.

A journal *record* (one per input batch) is ``marshal.dumps((ts, last_input_id, commands))``
with ``commands = [(command_id, code, args), ...]``: ``code`` picks the engine method and
``args`` are its positional arguments after ``ts``. Why marshal: it round-trips the exact
Python values the engine was called with (ints of any size, str, None, and - for malformed
input - whatever JSON produced) in ~0.3 us per command each way; replaying a million commands
must fit in ~1.5 s, which JSON decoding alone would exceed. Enumerated strings are replaced by
the engine's constants before journaling; marshal keeps them interned, so replayed commands
take the engine's fast paths too. The format is marshal version 4 (stable since Python 3.4);
a Python upgrade that changed it would need a clean stop (final snapshot) first.

The ``ts`` of every command of a batch is the batch's journal stamp; what the producer put in
``ts`` is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final, cast

from apps.matching.engine import Engine, Event, constants
from apps.matching.protocol import command_as_dict, shard_for

NEW: Final = 1
CANCEL: Final = 2
REPLACE: Final = 3
END_OF_SESSION: Final = 4
ADD_INSTRUMENT: Final = 5
INVALID: Final = 0

Record = tuple[bytes, int, tuple[Any, ...]]

_NEW_KEYS: Final = frozenset(
    (
        "command",
        "ts",
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
    )
)
_CANCEL_KEYS: Final = frozenset(("command", "ts", "order_id", "account"))
_REPLACE_KEYS: Final = frozenset(
    ("command", "ts", "order_id", "account", "new_qty", "new_price", "new_stop_price")
)
_EOS_KEYS: Final = frozenset(("command", "ts", "symbol"))
_ADD_KEYS: Final = frozenset(("command", "ts", "symbol", "tick_size", "lot_size"))

_CANON: Final[dict[Any, str]] = {
    s: s
    for s in (
        *constants.SIDES,
        *constants.ORDER_TYPES,
        *constants.TIFS,
        *constants.STP_MODES,
    )
}
_STP_NONE: Final = constants.STP_NONE
# Omitted trailing fields of a positional new_order (price, stop_price, stp, protection).
_NEW_PAD: Final = tuple([None, None, _STP_NONE, None][k:] for k in range(4))


def _canon(value: Any) -> Any:
    try:
        return _CANON.get(value, value)
    except TypeError:  # unhashable (a JSON list/object): the engine rejects it
        return value


def decode_one(cid: bytes, data: Any, *, shard: int, shards: int) -> Record:
    """One parsed command (object or positional form) -> record (invalid commands become
    ``INVALID`` records)."""
    if type(data) is list:
        try:
            data = command_as_dict(data)
        except (ValueError, TypeError):
            return cid, INVALID, ("not a command array of a known shape",)
    if type(data) is not dict:
        return cid, INVALID, ("not a JSON object or array",)
    kind = data.get("command")
    try:
        if kind == "new_order":
            if not data.keys() <= _NEW_KEYS:
                return cid, INVALID, ("unknown keys",)
            g = data.get
            return (
                cid,
                NEW,
                (
                    data["order_id"],
                    data["account"],
                    data["symbol"],
                    _canon(data["side"]),
                    _canon(data["order_type"]),
                    _canon(data["tif"]),
                    data["qty"],
                    g("price"),
                    g("stop_price"),
                    _canon(g("stp", _STP_NONE)),
                    g("protection"),
                ),
            )
        if kind == "cancel":
            if not data.keys() <= _CANCEL_KEYS:
                return cid, INVALID, ("unknown keys",)
            return cid, CANCEL, (data["order_id"], data.get("account"))
        if kind == "replace":
            if not data.keys() <= _REPLACE_KEYS:
                return cid, INVALID, ("unknown keys",)
            g = data.get
            return (
                cid,
                REPLACE,
                (data["order_id"], g("account"), g("new_qty"), g("new_price"), g("new_stop_price")),
            )
        if kind == "end_of_session":
            if not data.keys() <= _EOS_KEYS:
                return cid, INVALID, ("unknown keys",)
            return cid, END_OF_SESSION, (data.get("symbol"),)
        if kind == "add_instrument":
            if not data.keys() <= _ADD_KEYS:
                return cid, INVALID, ("unknown keys",)
            symbol = data["symbol"]
            tick, lot = data["tick_size"], data["lot_size"]
            if type(tick) not in (str, int) or type(lot) not in (str, int):
                return cid, INVALID, ("tick_size/lot_size must be decimal strings",)
            try:
                Decimal(str(tick)), Decimal(str(lot))
            except InvalidOperation:
                return cid, INVALID, ("tick_size/lot_size are not decimals",)
            if type(symbol) is str and shard_for(symbol, shards) != shard:
                return cid, INVALID, (f"{symbol} belongs to another shard",)
            return cid, ADD_INSTRUMENT, (symbol, str(tick), str(lot))
    except KeyError as exc:
        return cid, INVALID, (f"missing {exc.args[0]}",)
    return cid, INVALID, ("unknown command",)


def decode_batch(
    ids: Sequence[bytes], raws: Sequence[bytes | None], *, shard: int, shards: int
) -> list[Record]:
    """Parse the ``cmd`` JSON of a batch. One ``json.loads`` of the pieces joined into an array
    (about 3x cheaper than one call per command); if that fails or does not give one object
    per piece, piece by piece, so a malformed command only affects itself."""
    parsed: list[Any] | None = None
    if raws and None not in raws:
        try:
            joined = json.loads(b"[" + b",".join(raws) + b"]")  # type: ignore[arg-type]
        except ValueError:
            joined = None
        if type(joined) is list and len(joined) == len(raws):
            parsed = joined
    if parsed is None:
        parsed = []
        for raw in raws:
            try:
                parsed.append(json.loads(raw) if raw is not None else None)
            except ValueError:
                parsed.append(None)
    # Hot path inlined for new orders and cancels (~90% of traffic); anything else, or anything
    # unusual (missing key, unhashable value), goes through decode_one.
    out: list[Record] = []
    append = out.append
    canon = _CANON.get
    new_keys = _NEW_KEYS
    cancel_keys = _CANCEL_KEYS
    none = _STP_NONE
    for cid, d in zip(ids, parsed, strict=True):
        if type(d) is list:  # positional form
            n = len(d)
            try:
                kind = d[0]
                if kind == "new_order" and 8 <= n <= 12:
                    if n < 12:
                        d = d + _NEW_PAD[n - 8]
                    side = d[4]
                    otype = d[5]
                    tif = d[6]
                    stp = d[10]
                    append(
                        (
                            cid,
                            NEW,
                            (
                                d[1],
                                d[2],
                                d[3],
                                canon(side, side),
                                canon(otype, otype),
                                canon(tif, tif),
                                d[7],
                                d[8],
                                d[9],
                                canon(stp, stp),
                                d[11],
                            ),
                        )
                    )
                    continue
                if kind == "cancel" and 2 <= n <= 3:
                    append((cid, CANCEL, (d[1], d[2] if n == 3 else None)))
                    continue
            except (IndexError, TypeError):
                pass
        elif type(d) is dict:
            kind = d.get("command")
            try:
                if kind == "new_order" and d.keys() <= new_keys:
                    g = d.get
                    side = d["side"]
                    otype = d["order_type"]
                    tif = d["tif"]
                    stp = g("stp", none)
                    append(
                        (
                            cid,
                            NEW,
                            (
                                d["order_id"],
                                d["account"],
                                d["symbol"],
                                canon(side, side),
                                canon(otype, otype),
                                canon(tif, tif),
                                d["qty"],
                                g("price"),
                                g("stop_price"),
                                canon(stp, stp),
                                g("protection"),
                            ),
                        )
                    )
                    continue
                if kind == "cancel" and d.keys() <= cancel_keys:
                    append((cid, CANCEL, (d["order_id"], d.get("account"))))
                    continue
            except (KeyError, TypeError):
                pass
        append(decode_one(cid, d, shard=shard, shards=shards))
    return out


class _Invalid:
    """What the engine sees for an invalid command: it answers with one ``rejected`` event."""

    __slots__ = ("ts",)

    def __init__(self, ts: int) -> None:
        self.ts = ts


def apply_records(engine: Engine, ts: int, records: Sequence[Record]) -> list[Event]:
    """Apply one batch to the engine (live and replay share this); returns its events."""
    out: list[Event] = []
    ext = out.extend
    new = engine.new_order
    cancel = engine.cancel
    for _cid, code, args in records:
        if code is NEW:  # small ints are cached objects: an identity test is the cheapest
            ext(new(ts, *args))
        elif code is CANCEL:
            ext(cancel(ts, *args))
        elif code == REPLACE:
            ext(engine.replace(ts, *args))
        elif code == END_OF_SESSION:
            ext(engine.end_of_session(ts, *args))
        elif code == ADD_INSTRUMENT:
            ext(engine.add_instrument(ts, args[0], Decimal(args[1]), Decimal(args[2])))
        else:
            ext(engine.process(cast(Any, _Invalid(ts))))
    return out
