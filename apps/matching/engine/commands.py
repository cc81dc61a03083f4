"""Command dataclasses: the journaled inputs of the engine.

``Engine.process(cmd)`` applies one of these; the positional methods (``Engine.new_order`` ...)
are the same operations without the object (the benchmark and hot callers use them).
``command_to_dict``/``command_from_dict`` give a JSON-safe form for journals (Decimals as str).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Final

from .constants import STP_NONE


@dataclass(frozen=True, slots=True)
class NewOrder:
    ts: int
    order_id: str | int
    account: str | int
    symbol: str
    side: str
    order_type: str
    tif: str
    qty: int  # lots
    price: int | None = None  # ticks; limit and stop-limit only
    stop_price: int | None = None  # ticks; stop and stop-limit only
    stp: str = STP_NONE
    protection: int | None = None  # ticks of slippage allowed; market and stop only


@dataclass(frozen=True, slots=True)
class Cancel:
    ts: int
    order_id: str | int
    account: str | int | None = None  # None: no ownership check (operator action)


@dataclass(frozen=True, slots=True)
class Replace:
    ts: int
    order_id: str | int
    account: str | int | None = None
    new_qty: int | None = None  # new total quantity in lots
    new_price: int | None = None
    new_stop_price: int | None = None


@dataclass(frozen=True, slots=True)
class EndOfSession:
    ts: int
    symbol: str | None = None  # None: every symbol


@dataclass(frozen=True, slots=True)
class AddInstrument:
    ts: int
    symbol: str
    tick_size: Decimal
    lot_size: Decimal


Command = NewOrder | Cancel | Replace | EndOfSession | AddInstrument

COMMAND_TYPES: Final[dict[str, type[Any]]] = {
    "new_order": NewOrder,
    "cancel": Cancel,
    "replace": Replace,
    "end_of_session": EndOfSession,
    "add_instrument": AddInstrument,
}
_NAMES: Final = {cls: name for name, cls in COMMAND_TYPES.items()}


def command_to_dict(command: Command) -> dict[str, Any]:
    out: dict[str, Any] = {"command": _NAMES[type(command)]}
    for f in fields(command):
        value = getattr(command, f.name)
        out[f.name] = str(value) if isinstance(value, Decimal) else value
    return out


def command_from_dict(data: dict[str, Any]) -> Command:
    cls = COMMAND_TYPES[data["command"]]
    kwargs = {k: v for k, v in data.items() if k != "command"}
    if cls is AddInstrument:
        kwargs["tick_size"] = Decimal(kwargs["tick_size"])
        kwargs["lot_size"] = Decimal(kwargs["lot_size"])
    command: Command = cls(**kwargs)
    return command
