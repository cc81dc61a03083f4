"""Instruments and the exact Decimal <-> integer conversion used at the engine's edges.

Inside the engine a price is an ``int`` number of ticks and a quantity an ``int`` number of
lots. Conversion is exact and reversible: ``ticks_to_price(price_to_ticks(p)) == p`` for every
on-grid ``p``, and a value off the grid raises ``OffGridError`` instead of being rounded.
Floats are refused outright; they cannot represent most decimal prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from typing import Final

# Enough digits for any tick count below 2**62 times any sane tick size, so multiplication
# never rounds; the Inexact trap turns a would-be rounding into an error instead.
_EXACT_PRECISION: Final = 120


class OffGridError(ValueError):
    """A price or quantity is not a whole multiple of the instrument's tick or lot size."""

    def __init__(self, what: str, value: Decimal, grid: Decimal, symbol: str) -> None:
        self.what = what
        self.value = value
        self.grid = grid
        self.symbol = symbol
        super().__init__(
            f"{what} {value} is not a multiple of the {symbol} "
            f"{'tick' if what == 'price' else 'lot'} size {grid}"
        )


def _exact_multiple(value: Decimal, grid: Decimal, what: str, symbol: str) -> int:
    if not isinstance(value, Decimal):
        # bool/float/int/str would all "work" by accident somewhere; demand the edge type.
        raise TypeError(f"{what} must be a Decimal, got {type(value).__name__}: {value!r}")
    if not value.is_finite():
        raise OffGridError(what, value, grid, symbol)
    vn, vd = value.as_integer_ratio()
    gn, gd = grid.as_integer_ratio()
    # value / grid = (vn * gd) / (vd * gn), computed on integers: no context, no rounding.
    q, r = divmod(vn * gd, vd * gn)
    if r:
        raise OffGridError(what, value, grid, symbol)
    return q


def _validate_size(name: str, size: object) -> Decimal:
    if not isinstance(size, Decimal):
        raise TypeError(f"{name} must be a Decimal, got {type(size).__name__}: {size!r}")
    if not size.is_finite() or size <= 0:
        raise ValueError(f"{name} must be a positive finite Decimal, got {size}")
    return size


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable symbol with its price grid (tick size) and quantity grid (lot size)."""

    symbol: str
    tick_size: Decimal
    lot_size: Decimal

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError(f"symbol must be a non-empty str, got {self.symbol!r}")
        _validate_size("tick_size", self.tick_size)
        _validate_size("lot_size", self.lot_size)

    def price_to_ticks(self, price: Decimal) -> int:
        """Exact number of ticks in ``price``; ``OffGridError`` if it is off the tick grid."""
        return _exact_multiple(price, self.tick_size, "price", self.symbol)

    def ticks_to_price(self, ticks: int) -> Decimal:
        """The Decimal price of ``ticks`` ticks (exact, with the tick size's exponent)."""
        return _scale(ticks, self.tick_size)

    def qty_to_lots(self, qty: Decimal) -> int:
        """Exact number of lots in ``qty``; ``OffGridError`` if it is off the lot grid."""
        return _exact_multiple(qty, self.lot_size, "quantity", self.symbol)

    def lots_to_qty(self, lots: int) -> Decimal:
        """The Decimal quantity of ``lots`` lots (exact, with the lot size's exponent)."""
        return _scale(lots, self.lot_size)


def _scale(n: int, grid: Decimal) -> Decimal:
    if type(n) is not int:
        raise TypeError(f"expected an int count, got {type(n).__name__}: {n!r}")
    with localcontext() as ctx:
        ctx.prec = max(_EXACT_PRECISION, len(str(abs(n))) + len(grid.as_tuple().digits) + 2)
        ctx.traps[Inexact] = True
        try:
            return Decimal(n) * grid
        except InvalidOperation as exc:  # pragma: no cover - guarded by the precision above
            raise ValueError(f"cannot scale {n} by {grid} exactly") from exc
