import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet

from apps.accounts.models import User
from apps.instruments.models import Instrument
from apps.orders.models import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    Order,
    OrderStatus,
    RiskTier,
    TradingProfile,
)
from apps.orders.risk import Limits

# Used when no tier is configured at all: conservative retail defaults.
FALLBACK_LIMITS = Limits(
    max_order_quantity=Decimal(100_000),
    max_order_notional=Decimal(1_000_000),
    price_collar_pct=Decimal(10),
    market_buffer_pct=Decimal(5),
    daily_order_limit=10_000,
    commission_bps=Decimal(0),
    commission_minimum=Decimal(0),
)


def _limits(tier: RiskTier) -> Limits:
    return Limits(
        max_order_quantity=tier.max_order_quantity,
        max_order_notional=tier.max_order_notional,
        price_collar_pct=tier.price_collar_pct,
        market_buffer_pct=tier.market_buffer_pct,
        daily_order_limit=tier.daily_order_limit,
        commission_bps=tier.commission_bps,
        commission_minimum=tier.commission_minimum,
    )


def risk_limits_for(*, user: User) -> Limits:
    profile = TradingProfile.objects.select_related("risk_tier").filter(user=user).first()
    if profile is not None:
        return _limits(profile.risk_tier)
    tier = RiskTier.objects.filter(is_default=True).first()
    return _limits(tier) if tier is not None else FALLBACK_LIMITS


def instrument_reference_price(*, instrument: Instrument) -> Decimal | None:
    """Last settled trade price, else the instrument's reference price."""
    from apps.portfolio.models import Fill

    last = (
        Fill.objects.filter(instrument=instrument)
        .order_by("-executed_at", "-id")
        .values_list("price", flat=True)
        .first()
    )
    return last if last is not None else instrument.reference_price


# --- reads for the API -------------------------------------------------------------------------

# `status` filter groups of the orders list (besides single statuses).
ORDER_STATUS_GROUPS: dict[str, tuple[str, ...]] = {
    "open": tuple(OPEN_STATUSES),
    "closed": tuple(FINAL_STATUSES),
    "all": tuple(OrderStatus.values),
}


def orders_for(
    *,
    user: User,
    statuses: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
    side: str | None = None,
    after: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[Order]:
    """The user's orders, newest first. `after` is inclusive, `until` exclusive (created_at)."""
    orders = Order.objects.filter(user=user).select_related("instrument")
    if statuses is not None:
        orders = orders.filter(status__in=list(statuses))
    if symbols:
        orders = orders.filter(instrument__symbol__in=[s.strip().upper() for s in symbols])
    if side:
        orders = orders.filter(side=side)
    if after is not None:
        orders = orders.filter(created_at__gte=after)
    if until is not None:
        orders = orders.filter(created_at__lt=until)
    return orders.order_by("-created_at", "-id")


def order_for(
    *,
    user: User,
    order_id: uuid.UUID | str | None = None,
    client_order_id: str | None = None,
    with_events: bool = False,
) -> Order | None:
    """One of the user's orders by id or client_order_id (None when absent or someone else's,
    or when `order_id` is not a UUID); `with_events` prefetches its transition log."""
    orders = Order.objects.filter(user=user).select_related("instrument")
    if order_id is not None:
        try:
            orders = orders.filter(pk=uuid.UUID(str(order_id)))
        except ValueError:
            return None
    elif client_order_id is not None:
        orders = orders.filter(client_order_id=client_order_id)
    else:
        return None
    if with_events:
        orders = orders.prefetch_related("events")
    return orders.first()


@dataclass(frozen=True, slots=True)
class LastTrade:
    price: Decimal
    executed_at: dt.datetime


def instrument_last_trade(*, instrument: Instrument) -> LastTrade | None:
    """The instrument's last settled trade (from fills), if any."""
    from apps.portfolio.models import Fill

    row = (
        Fill.objects.filter(instrument=instrument)
        .order_by("-executed_at", "-id")
        .values_list("price", "executed_at")
        .first()
    )
    return None if row is None else LastTrade(price=row[0], executed_at=row[1])


def instruments_reference_prices(*, instruments: Iterable[Instrument]) -> dict[int, Decimal | None]:
    """`instrument_reference_price` for many instruments in one query: instrument id -> last
    settled trade price, else the instrument's reference price."""
    from apps.portfolio.models import Fill

    by_id = {instrument.pk: instrument for instrument in instruments}
    last = dict(
        Fill.objects.filter(instrument_id__in=list(by_id))
        .order_by("instrument_id", "-executed_at", "-id")
        .distinct("instrument_id")
        .values_list("instrument_id", "price")
    )
    return {pk: last.get(pk, inst.reference_price) for pk, inst in by_id.items()}
