"""Pre-trade risk: a pure, in-memory decision over prepared inputs (no I/O, no clock).

The service gathers the inputs (balances, position, limits, prices) under the right locks and
calls `risk_check`; the first failing rule gives one machine-readable reason. Rule order:
eligibility → account block → instrument status → session → fat finger (quantity, notional) →
price collar → daily order count → buying power (buys) / position (sells).
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
HUNDRED = Decimal(100)
BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class Limits:
    max_order_quantity: Decimal
    max_order_notional: Decimal
    price_collar_pct: Decimal
    market_buffer_pct: Decimal
    daily_order_limit: int
    commission_bps: Decimal
    commission_minimum: Decimal


@dataclass(frozen=True, slots=True)
class RiskInput:
    side: str  # buy / sell
    order_type: str  # market / limit / stop / stop_limit
    time_in_force: str
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    tick_size: Decimal
    currency_places: int
    reference_price: Decimal | None  # last trade, else the instrument's reference price
    eligibility_code: str  # "ok" or the KYC/eligibility reason
    account_blocked: bool
    instrument_status: str
    session_open: bool
    available_cash: Decimal
    position_available: Decimal  # quantity - held by other sells
    short_selling_enabled: bool
    orders_today: int


@dataclass(frozen=True, slots=True)
class RiskDecision:
    ok: bool
    code: str = "ok"
    message: str = ""
    hold_amount: Decimal = ZERO  # cash to reserve (buys)
    protection_price: Decimal | None = None  # price the matcher enforces (market/stop)
    estimated_price: Decimal | None = None


def commission(notional: Decimal, limits: Limits, places: int) -> Decimal:
    """Commission on a notional: rate in basis points with a minimum, rounded half-up."""
    if notional <= 0:
        return ZERO
    fee = max(notional * limits.commission_bps / BPS, limits.commission_minimum)
    return fee.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _to_tick(price: Decimal, tick: Decimal, *, up: bool) -> Decimal:
    steps = (price / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return steps * tick


def _reject(code: str, message: str) -> RiskDecision:
    return RiskDecision(ok=False, code=code, message=message)


def risk_check(inp: RiskInput, limits: Limits) -> RiskDecision:
    buy = inp.side == "buy"
    if inp.eligibility_code != "ok":
        return _reject(inp.eligibility_code, "Your account is not cleared for trading yet.")
    if inp.account_blocked:
        return _reject("account_blocked", "Trading is blocked on this account.")
    if inp.instrument_status != "active":
        return _reject("instrument_not_tradable", f"This instrument is {inp.instrument_status}.")
    needs_session = inp.order_type == "market" or inp.time_in_force in ("day", "ioc", "fok")
    if needs_session and not inp.session_open:
        return _reject(
            "market_closed",
            "The market is closed; only GTC limit or stop orders can be placed now.",
        )
    if inp.quantity > limits.max_order_quantity:
        return _reject(
            "max_quantity_exceeded",
            f"Order quantity exceeds the limit of {limits.max_order_quantity.normalize():f}.",
        )
    ref = inp.reference_price
    collar = limits.price_collar_pct / HUNDRED
    buffer = limits.market_buffer_pct / HUNDRED
    protection: Decimal | None = None
    if inp.order_type == "market":
        if ref is None:
            return _reject("no_reference_price", "There is no price yet to protect a market order.")
        protection = _to_tick(ref * (1 + buffer if buy else 1 - buffer), inp.tick_size, up=buy)
        if protection <= 0:
            return _reject("no_reference_price", "There is no usable price for a market order.")
        price_for_risk = protection
    elif inp.order_type == "stop":
        assert inp.stop_price is not None
        protection = _to_tick(
            inp.stop_price * (1 + buffer if buy else 1 - buffer), inp.tick_size, up=buy
        )
        if protection <= 0:
            return _reject("invalid_price", "The stop price is too low to protect.")
        price_for_risk = protection
    else:
        assert inp.limit_price is not None
        price_for_risk = inp.limit_price
    if ref is not None:
        low, high = ref * (1 - collar), ref * (1 + collar)
        for name, price in (("limit_price", inp.limit_price), ("stop_price", inp.stop_price)):
            if price is not None and not low <= price <= high:
                return _reject(
                    "price_out_of_collar",
                    f"The {name.replace('_', ' ')} is more than "
                    f"{limits.price_collar_pct.normalize():f}% away from the reference price "
                    f"{ref.normalize():f}.",
                )
    notional = price_for_risk * inp.quantity
    if notional > limits.max_order_notional:
        return _reject(
            "max_notional_exceeded",
            f"Order value exceeds the limit of {limits.max_order_notional.normalize():f}.",
        )
    if inp.orders_today >= limits.daily_order_limit:
        return _reject(
            "daily_order_limit", f"You reached today's limit of {limits.daily_order_limit} orders."
        )
    hold = ZERO
    if buy:
        hold = notional + commission(notional, limits, inp.currency_places)
        if hold > inp.available_cash:
            return _reject(
                "insufficient_buying_power",
                f"This order needs {hold.normalize():f} but only "
                f"{inp.available_cash.normalize():f} is available.",
            )
    elif inp.quantity > inp.position_available and not inp.short_selling_enabled:
        return _reject(
            "insufficient_position",
            f"You can sell at most {inp.position_available.normalize():f}; short selling is not "
            "enabled on this account.",
        )
    return RiskDecision(
        ok=True, hold_amount=hold, protection_price=protection, estimated_price=price_for_risk
    )
