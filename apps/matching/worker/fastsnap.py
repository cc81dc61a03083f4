"""A fast binary image of an ``Engine`` for snapshots (a workaround until the engine has one).

Why: ``Engine.snapshot()``/``Engine.restore()`` produce and parse canonical JSON; for 500k
resting orders each takes ~2-3 s here, so recovery could not meet its 1 s budget. This module
copies the engine's internal containers with ``marshal`` instead (several times faster both
ways): marshal keeps shared references (an order list referenced from its shard and from its
price level stays one object) and keeps interned strings interned, so the engine's ``is`` checks
against its constants (``OPEN``, ``BUY`` ...) hold after loading. Lazily-deleted entries are
copied too: the restored engine is the same object graph, not only the same logical state.

One thing is not copied verbatim: the order table is split into shards chosen by ``hash()`` of
the order id, and ``str`` hashes differ between processes (hash randomisation). ``load`` puts
every id back into the shard this process's hash selects and updates the shard index of the
records the table holds (the engine reads that index only for live orders, which are all in the
table; superseded records left in queues are never looked up by it).

It reads the engine's private attributes, so it is defensive about their shape:

* it copies slots generically (the engine, each book, each price level) and records their names
  and the level type in a fingerprint; ``load`` raises ``LayoutChanged`` when they differ;
* anything marshal cannot represent exactly (a new container type) makes ``dump`` raise
  ``LayoutChanged``;
* ``dump_verified`` (used by the snapshot writer, off the matching CPU) loads the image back and
  compares its canonical snapshot with the engine's before the image is written; a snapshot
  without a verified image carries only the canonical JSON, which recovery then uses.

The engine should grow a public equivalent (``Engine.dump_fast()/load_fast()``); then this
module goes away.
"""

from __future__ import annotations

import marshal
from collections import deque
from decimal import Decimal
from typing import Any, Final

from apps.matching.engine import SNAPSHOT_VERSION, Engine, Instrument
from apps.matching.engine import book as book_module
from apps.matching.engine import engine as engine_module

_MARSHAL_VERSION: Final = 4
_ENGINE_SLOTS: Final = ("_books", "_seq", "_shards")


class LayoutChanged(Exception):
    """The engine's internals are not what this image format can copy."""


def _slots(cls: type) -> tuple[str, ...]:
    """Data attributes of a slotted class (pure Python) or a mypyc-compiled class, sorted: the
    same engine compiled or not has the same layout, so images move between the two builds."""
    names = getattr(cls, "__slots__", None)
    if names is None:
        names = getattr(cls, "__mypyc_attrs__", None)
    if not isinstance(names, tuple | list) or not all(isinstance(n, str) for n in names):
        raise LayoutChanged(f"{cls.__name__}: attributes cannot be listed")
    return tuple(sorted(names))


def _level_class() -> type | None:
    cls = getattr(book_module, "Level", None)
    if not isinstance(cls, type):
        return None
    _slots(cls)
    return cls


def _shard_function() -> tuple[int, int, int]:
    """(shift, mask, order-record index of the shard) of the engine's order table."""
    shift = getattr(engine_module, "_SHARD_SHIFT", None)
    mask = getattr(engine_module, "_SHARD_MASK", None)
    index = getattr(book_module, "O_SHARD", None)
    if type(shift) is not int or type(mask) is not int or type(index) is not int:
        raise LayoutChanged("order table sharding changed")
    return shift, mask, index


def fingerprint() -> str:
    level = _level_class()
    return repr(
        (
            _slots(Engine),
            _slots(book_module.Book),
            None if level is None else (level.__name__, _slots(level)),
            book_module.ORDER_FIELDS,
            _shard_function(),
            SNAPSHOT_VERSION,
            _MARSHAL_VERSION,
        )
    )


def _reshard(shards: list[dict[Any, Any]]) -> list[dict[Any, Any]]:
    shift, mask, o_shard = _shard_function()
    out: list[dict[Any, Any]] = [{} for _ in shards]
    for shard in shards:
        for oid, value in shard.items():
            si = hash(oid) >> shift & mask
            out[si][oid] = value
            if type(value) is list:
                value[o_shard] = si
    return out


# A level is either a list (positions) or a slotted object (slot order); deques inside it are
# stored as lists and their positions listed, so both shapes round-trip.
def _encode_level(lv: Any, level_cls: type | None) -> list[Any]:
    if type(lv) is list:
        values = lv
    elif level_cls is not None and type(lv) is level_cls:
        values = [getattr(lv, s) for s in _slots(level_cls)]
    else:
        raise LayoutChanged(f"unexpected price level type {type(lv).__name__}")
    return [list(v) if type(v) is deque else v for v in values]


def _deque_positions(lv: Any, level_cls: type | None) -> tuple[int, ...]:
    values = lv if type(lv) is list else [getattr(lv, s) for s in _slots(level_cls or type(lv))]
    return tuple(i for i, v in enumerate(values) if type(v) is deque)


def dump(engine: Engine) -> bytes:
    if _slots(type(engine)) != _ENGINE_SLOTS:
        raise LayoutChanged("Engine layout changed")
    e: Any = engine
    level_cls = _level_class()
    book_slots = _slots(book_module.Book)
    positions: tuple[int, ...] | None = None
    kind = ""
    books = []
    for b in e._books.values():
        if type(b) is not book_module.Book:
            raise LayoutChanged("unexpected book type")
        fields: list[Any] = []
        for name in book_slots:
            value = getattr(b, name)
            if type(value) is Instrument:
                fields.append(("I", value.symbol, str(value.tick_size), str(value.lot_size)))
            elif type(value) is dict:
                enc = {}
                for key, lv in value.items():
                    if positions is None:
                        positions = _deque_positions(lv, level_cls)
                        kind = "list" if type(lv) is list else "object"
                    enc[key] = _encode_level(lv, level_cls)
                fields.append(("L", enc))
            else:
                fields.append(("V", value))
        books.append(fields)
    head = (fingerprint(), book_slots, kind, positions or ())
    try:
        return marshal.dumps((head, e._seq, e._shards, books), _MARSHAL_VERSION)
    except ValueError as exc:  # a type marshal cannot represent exactly
        raise LayoutChanged(f"engine state not marshallable: {exc}") from exc


def load(data: bytes) -> Engine:
    # Written by the worker into a checksummed snapshot, never read from the network.
    (fp, book_slots, kind, positions), seq, shards, books = marshal.loads(data)  # noqa: S302
    if fp != fingerprint():
        raise LayoutChanged("image written for another engine layout")
    level_cls = _level_class() if kind == "object" else None
    if kind == "object" and level_cls is None:
        raise LayoutChanged("price levels were objects, the engine has no Level class now")
    level_slots = _slots(level_cls) if level_cls is not None else ()
    engine = Engine()
    e: Any = engine
    if type(e._shards) is not list or len(shards) != len(e._shards):
        raise LayoutChanged("order table layout changed")
    e._shards = _reshard(shards)
    e._seq = seq
    for fields in books:
        values: dict[str, Any] = {}
        for name, (tag, *rest) in zip(book_slots, fields, strict=True):
            if tag == "I":
                values[name] = Instrument(rest[0], Decimal(rest[1]), Decimal(rest[2]))
            elif tag == "L":
                levels = rest[0]
                for key, raw in levels.items():
                    for i in positions:
                        raw[i] = deque(raw[i])
                    if level_cls is not None:
                        lv = level_cls()
                        for slot, v in zip(level_slots, raw, strict=True):
                            setattr(lv, slot, v)
                        levels[key] = lv
                values[name] = levels
            else:
                values[name] = rest[0]
        inst = next((v for v in values.values() if type(v) is Instrument), None)
        if inst is None:
            raise LayoutChanged("book without an instrument")
        b: Any = book_module.Book(inst)
        try:
            for name, v in values.items():
                setattr(b, name, v)
        except (AttributeError, TypeError) as exc:
            raise LayoutChanged(f"book attribute not settable: {exc}") from exc
        e._books[inst.symbol] = b
    return engine


def dump_verified(engine: Engine, canonical: bytes) -> bytes:
    """``dump``, loaded back and checked against the engine's canonical snapshot bytes."""
    image = dump(engine)
    if load(image).snapshot() != canonical:
        raise LayoutChanged("image does not restore the same state")
    return image
