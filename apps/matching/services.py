"""Writes of the matching app: commands enqueued for the matching workers."""

from decimal import Decimal
from typing import Any

from apps.instruments.selectors import instrument_list_active
from apps.matching.engine import AddInstrument
from apps.matching.protocol import Names, command_enqueue, instrument_command_id, shard_for


def _plain(value: Decimal) -> str:
    """``0.01000000`` -> ``0.01``, ``1.00000000`` -> ``1``: the same id whatever the DB scale."""
    return format(value.normalize(), "f")


def matcher_enqueue_instruments(*, redis: Any, shard: int, shards: int, names: Names) -> list[str]:
    """Enqueue ``add_instrument`` for every active instrument owned by ``shard``.

    Safe to repeat: the command id ``instrument:<SYMBOL>:<tick>:<lot>`` is the same each time,
    so the worker applies it once (and the engine rejects a symbol it already has). Returns the
    symbols enqueued.
    """
    symbols = []
    for inst in instrument_list_active():
        if shard_for(inst.symbol, shards) != shard:
            continue
        tick, lot = _plain(inst.tick_size), _plain(inst.lot_size)
        command_enqueue(
            redis,
            shard=shard,
            command_id=instrument_command_id(inst.symbol, tick, lot),
            command=AddInstrument(0, inst.symbol, Decimal(tick), Decimal(lot)),
            names=names,
        )
        symbols.append(inst.symbol)
    return symbols
