"""Reads of positions and fills, always scoped to one user."""

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from django.db.models import Q, QuerySet

from apps.accounts.models import User
from apps.instruments.models import Instrument
from apps.orders.selectors import instruments_reference_prices
from apps.portfolio.models import Fill, Position

_EIGHT_PLACES = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position valued at the instrument's reference price (last trade, else reference)."""

    instrument: Instrument
    quantity: Decimal
    held_quantity: Decimal
    cost_basis: Decimal
    realized_pnl: Decimal
    market_price: Decimal | None
    updated_at: dt.datetime

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    @property
    def currency(self) -> str:
        return self.instrument.currency

    @property
    def side(self) -> str:
        return "short" if self.quantity < 0 else "long"

    @property
    def available_quantity(self) -> Decimal:
        """What a new sell order can still use: quantity minus what open sells reserve."""
        return max(self.quantity - self.held_quantity, Decimal(0))

    @property
    def average_entry_price(self) -> Decimal | None:
        if self.quantity == 0:
            return None
        return (self.cost_basis / self.quantity).quantize(_EIGHT_PLACES, rounding=ROUND_HALF_EVEN)

    @property
    def market_value(self) -> Decimal | None:
        return None if self.market_price is None else self.quantity * self.market_price

    @property
    def unrealized_pnl(self) -> Decimal | None:
        value = self.market_value
        return None if value is None else value - self.cost_basis


def _open_positions(user: User) -> QuerySet[Position]:
    return (
        Position.objects.filter(user=user)
        .filter(~Q(quantity=0) | ~Q(held_quantity=0))
        .select_related("instrument")
        .order_by("instrument__symbol")
    )


def _views(positions: Sequence[Position]) -> list[PositionView]:
    prices = instruments_reference_prices(instruments=[p.instrument for p in positions])
    return [
        PositionView(
            instrument=p.instrument,
            quantity=p.quantity,
            held_quantity=p.held_quantity,
            cost_basis=p.cost_basis,
            realized_pnl=p.realized_pnl,
            market_price=prices.get(p.instrument_id),
            updated_at=p.updated_at,
        )
        for p in positions
    ]


def positions_for(*, user: User) -> list[PositionView]:
    """The user's open positions (non-zero quantity or reservation), by symbol."""
    return _views(list(_open_positions(user)))


def position_for(*, user: User, symbol: str) -> PositionView | None:
    """The user's open position in `symbol` (any case), or None."""
    positions = list(_open_positions(user).filter(instrument__symbol=symbol.strip().upper()))
    return _views(positions)[0] if positions else None


def fills_for(
    *,
    user: User,
    symbols: Sequence[str] | None = None,
    order_id: uuid.UUID | None = None,
    after: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[Fill]:
    """The user's fills, newest first. `after` inclusive, `until` exclusive (executed_at)."""
    fills = Fill.objects.filter(user=user).select_related("instrument", "order")
    if symbols:
        fills = fills.filter(instrument__symbol__in=[s.strip().upper() for s in symbols])
    if order_id is not None:
        fills = fills.filter(order_id=order_id)
    if after is not None:
        fills = fills.filter(executed_at__gte=after)
    if until is not None:
        fills = fills.filter(executed_at__lt=until)
    return fills.order_by("-executed_at", "-id")
