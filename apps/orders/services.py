"""Order management: place, cancel and replace orders (the OMS write side).

Placing an order is one database transaction: pre-trade risk, the order row, the cash hold (buys)
or position reservation (sells), the transition log, the audit record and the outbox row that
carries the command to the matcher. The command leaves only after commit (the outbox relay), so
a crash between the two neither loses nor duplicates it.

Locks, in the platform-wide order: cash account → position → order → audit chain.
"""

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.common.errors import DomainError, InvalidInput, InvalidTransition, NotFound
from apps.instruments.calendars import session_open
from apps.instruments.models import Instrument
from apps.kyc.selectors import trading_eligibility
from apps.ledger.currencies import CURRENCY_DECIMALS
from apps.ledger.models import Hold, HoldReason, HoldStatus
from apps.ledger.services import (
    cash_account_get_or_create,
    cash_accounts_lock,
    hold_place,
    hold_release,
)
from apps.matching.engine import Instrument as EngineInstrument
from apps.matching.engine.instrument import OffGridError
from apps.matching.protocol import shard_for
from apps.orders import risk
from apps.orders.models import (
    OPEN_STATUSES,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    OutboxCommand,
    Side,
    TimeInForce,
)
from apps.orders.selectors import instrument_reference_price, risk_limits_for
from apps.portfolio.models import Position

OUTBOX_CHANNEL = "matcher_outbox"
ORDER_REFERENCE = "orders.order"


class IdempotencyConflict(DomainError):
    code = "idempotency_key_reused"
    status_code = 422


class OrderRejected(DomainError):
    """Refused by pre-trade risk; `code` names the rule."""

    status_code = 422


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    quantity: Decimal
    client_order_id: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None

    def fingerprint(self) -> str:
        data = asdict(self)
        for key in ("quantity", "limit_price", "stop_price"):
            if data[key] is not None:
                data[key] = format(Decimal(data[key]).normalize(), "f")
        data["symbol"] = self.symbol.upper()
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _validate_shape(req: OrderRequest) -> None:
    fields: dict[str, list[str]] = {}
    if req.side not in Side.values:
        fields["side"] = ["Use buy or sell."]
    if req.order_type not in OrderType.values:
        fields["type"] = ["Use market, limit, stop or stop_limit."]
    if req.time_in_force not in TimeInForce.values:
        fields["time_in_force"] = ["Use day, gtc, ioc or fok."]
    if req.quantity <= 0:
        fields["qty"] = ["Quantity must be greater than zero."]
    needs_limit = req.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = req.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
    if needs_limit and req.limit_price is None:
        fields["limit_price"] = ["Required for limit and stop-limit orders."]
    if not needs_limit and req.limit_price is not None:
        fields["limit_price"] = ["Only limit and stop-limit orders take a limit price."]
    if needs_stop and req.stop_price is None:
        fields["stop_price"] = ["Required for stop and stop-limit orders."]
    if not needs_stop and req.stop_price is not None:
        fields["stop_price"] = ["Only stop and stop-limit orders take a stop price."]
    for name, price in (("limit_price", req.limit_price), ("stop_price", req.stop_price)):
        if price is not None and price <= 0:
            fields[name] = ["Prices must be greater than zero."]
    if req.order_type == OrderType.MARKET and req.time_in_force == TimeInForce.GTC:
        fields["time_in_force"] = ["Market orders cannot be GTC: use day, ioc or fok."]
    if not req.client_order_id or len(req.client_order_id) > 64:
        fields["client_order_id"] = ["Between 1 and 64 characters."]
    if fields:
        first = next(iter(fields.items()))
        raise InvalidInput(f"{first[0]}: {first[1][0]}", code="invalid_order", fields=fields)


def _engine_instrument(instrument: Instrument) -> EngineInstrument:
    return EngineInstrument(instrument.symbol, instrument.tick_size, instrument.lot_size)


def _on_grid(req: OrderRequest, grid: EngineInstrument) -> None:
    try:
        grid.qty_to_lots(req.quantity)
        for price in (req.limit_price, req.stop_price):
            if price is not None:
                grid.price_to_ticks(price)
    except OffGridError as exc:
        field = "qty" if exc.what == "quantity" else "price"
        raise InvalidInput(str(exc), code=f"invalid_{field}_increment") from exc


def _engine_new_order(order: Order, grid: EngineInstrument) -> dict[str, Any]:
    """The matcher command. Market orders become IOC limits at their protection price, and stops
    become stop-limits at theirs, so no fill can ever cost more than the cash held for it."""
    if order.order_type == OrderType.MARKET:
        engine_type, tif, price, stop = "limit", "ioc", order.protection_price, None
    elif order.order_type == OrderType.STOP:
        engine_type, tif, price, stop = (
            "stop_limit",
            order.time_in_force,
            order.protection_price,
            order.stop_price,
        )
    else:
        engine_type, tif, price, stop = (
            order.order_type,
            order.time_in_force,
            order.limit_price,
            order.stop_price,
        )
    return {
        "command": "new_order",
        "order_id": str(order.id),
        "account": str(order.user_id),
        "symbol": grid.symbol,
        "side": order.side,
        "order_type": engine_type,
        "tif": str(tif).upper(),  # the engine's TIFs are upper case: GTC, DAY, IOC, FOK
        "qty": grid.qty_to_lots(order.quantity),
        "price": grid.price_to_ticks(price) if price is not None else None,
        "stop_price": grid.price_to_ticks(stop) if stop is not None else None,
        "stp": "cancel_newest",
        "protection": None,
        "ts": 0,
    }


def _outbox(*, command_id: str, shard: int, payload: dict[str, Any]) -> None:
    OutboxCommand.objects.create(command_id=command_id, shard=shard, payload=payload)
    with connection.cursor() as cursor:
        # NOTIFY is transactional: the relay wakes up only when this commits.
        cursor.execute(f"NOTIFY {OUTBOX_CHANNEL}")


def _shards() -> int:
    return int(getattr(settings, "MATCHER_SHARDS", 1))


def _log(order: Order, kind: str, before: str, after: str, **detail: Any) -> None:
    OrderEvent.objects.create(
        order=order, kind=kind, from_status=before, to_status=after, detail=detail
    )


def _start_of_utc_day(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def order_place(
    *, user: User, request: OrderRequest, ip: str | None = None, now: dt.datetime | None = None
) -> tuple[Order, bool]:
    """Place an order, idempotently on (user, client_order_id). Returns (order, created).

    The same client_order_id with the same parameters returns the original order; with other
    parameters it raises `IdempotencyConflict` (422). A concurrent retry blocks on the unique
    index until the first commits, then gets the original.
    """
    _validate_shape(request)
    fingerprint = request.fingerprint()
    existing = Order.objects.filter(user=user, client_order_id=request.client_order_id).first()
    if existing is not None:
        return _same_or_conflict(existing, fingerprint), False
    instrument = Instrument.objects.filter(symbol=request.symbol.upper()).first()
    if instrument is None:
        raise InvalidInput(
            f"Unknown symbol {request.symbol!r}.",
            code="unknown_symbol",
            fields={"symbol": ["Unknown symbol."]},
        )
    grid = _engine_instrument(instrument)
    _on_grid(request, grid)
    now = now or timezone.now()
    try:
        return _place_locked(user, request, fingerprint, instrument, grid, ip, now)
    except IntegrityError:
        existing = Order.objects.filter(user=user, client_order_id=request.client_order_id).first()
        if existing is None:
            raise
        return _same_or_conflict(existing, fingerprint), False
    except OrderRejected as exc:
        with transaction.atomic():
            audit_record(
                action="order.rejected_pre_trade",
                actor=user,
                object_type="orders.order",
                object_id=request.client_order_id,
                after={"request": asdict(request), "code": exc.code},
                ip=ip,
            )
        raise


def _same_or_conflict(order: Order, fingerprint: str) -> Order:
    if order.request_fingerprint != fingerprint:
        raise IdempotencyConflict(
            "This client_order_id was already used for an order with different parameters.",
            fields={"client_order_id": ["Already used with different parameters."]},
        )
    return order


def _place_locked(
    user: User,
    req: OrderRequest,
    fingerprint: str,
    instrument: Instrument,
    grid: EngineInstrument,
    ip: str | None,
    now: dt.datetime,
) -> tuple[Order, bool]:
    limits = risk_limits_for(user=user)
    eligibility = trading_eligibility(user=user)
    with transaction.atomic():
        account = cash_account_get_or_create(user=user, currency=instrument.currency)
        account = cash_accounts_lock(account_ids=[account.pk])[account.pk]
        # A concurrent retry of this client_order_id waited on that lock until the original
        # committed: answer with the original, not with a risk check against the cash the
        # original has just reserved (that would reject a retry of an accepted order).
        existing = Order.objects.filter(user=user, client_order_id=req.client_order_id).first()
        if existing is not None:
            return _same_or_conflict(existing, fingerprint), False
        position = None
        position_available = Decimal(0)
        if req.side == Side.SELL:
            position, _ = Position.objects.select_for_update().get_or_create(
                user=user, instrument=instrument
            )
            position_available = position.quantity - position.held_quantity
        orders_today = Order.objects.filter(
            user=user, created_at__gte=_start_of_utc_day(now)
        ).count()
        decision = risk.risk_check(
            risk.RiskInput(
                side=req.side,
                order_type=req.order_type,
                time_in_force=req.time_in_force,
                quantity=req.quantity,
                limit_price=req.limit_price,
                stop_price=req.stop_price,
                tick_size=instrument.tick_size,
                currency_places=CURRENCY_DECIMALS.get(instrument.currency, 2),
                reference_price=instrument_reference_price(instrument=instrument),
                eligibility_code=eligibility.code,
                account_blocked=account.trading_blocked,
                instrument_status=instrument.status,
                session_open=session_open(instrument.calendar, now),
                available_cash=account.balance - account.held,
                position_available=position_available,
                short_selling_enabled=account.short_selling_enabled,
                orders_today=orders_today,
            ),
            limits,
        )
        if not decision.ok:
            raise OrderRejected(decision.message, code=decision.code)
        order = Order.objects.create(
            user=user,
            cash_account=account,
            instrument=instrument,
            client_order_id=req.client_order_id,
            request_fingerprint=fingerprint,
            side=req.side,
            order_type=req.order_type,
            time_in_force=req.time_in_force,
            quantity=req.quantity,
            limit_price=req.limit_price,
            stop_price=req.stop_price,
            protection_price=decision.protection_price,
            shard=shard_for(instrument.symbol, _shards()),
        )
        if req.side == Side.BUY:
            hold_place(
                account=account,
                amount=decision.hold_amount,
                reason=HoldReason.ORDER,
                reference_type=ORDER_REFERENCE,
                reference_id=str(order.id),
                actor=user,
            )
        elif position is not None:
            reserve = min(req.quantity, max(position_available, Decimal(0)))
            if reserve > 0:
                position.held_quantity += reserve
                position.save(update_fields=["held_quantity", "updated_at"])
                order.held_quantity = reserve
                order.save(update_fields=["held_quantity"])
        _log(order, "submitted", "", OrderStatus.PENDING_NEW, hold=str(decision.hold_amount))
        audit_record(
            action="order.submitted",
            actor=user,
            obj=order,
            after={
                "client_order_id": order.client_order_id,
                "symbol": instrument.symbol,
                "side": order.side,
                "type": order.order_type,
                "tif": order.time_in_force,
                "qty": order.quantity,
                "limit_price": order.limit_price,
                "stop_price": order.stop_price,
                "hold": decision.hold_amount,
            },
            ip=ip,
        )
        _outbox(
            command_id=f"oms:{order.id}:new",
            shard=order.shard,
            payload=_engine_new_order(order, grid),
        )
    return order, True


def _owned_order_locked(user: User, order_id: uuid.UUID | str) -> Order:
    order = (
        Order.objects.select_for_update()
        .select_related("instrument")
        .filter(pk=order_id, user=user)
        .first()
    )
    if order is None:
        raise NotFound("That order does not exist.", code="order_not_found")
    return order


def order_cancel(*, user: User, order_id: uuid.UUID | str, ip: str | None = None) -> Order:
    """Ask the matcher to cancel an open order. Idempotent while the cancel is in flight; the
    hold is released when the matcher confirms (settlement)."""
    with transaction.atomic():
        order = _owned_order_locked(user, order_id)
        if order.status not in OPEN_STATUSES:
            raise InvalidTransition(
                f"The order is {order.get_status_display().lower()} and cannot be cancelled.",
                code="order_not_open",
            )
        if order.pending_action == "cancel":
            return order
        order.pending_action = "cancel"
        order.save(update_fields=["pending_action", "updated_at"])
        _log(order, "cancel_requested", order.status, order.status)
        audit_record(action="order.cancel_requested", actor=user, obj=order, ip=ip)
        _outbox(
            command_id=f"oms:{order.id}:cancel:{uuid.uuid4().hex}",
            shard=order.shard,
            payload={
                "command": "cancel",
                "order_id": str(order.id),
                "account": str(user.pk),
                "ts": 0,
            },
        )
    return order


def order_replace(
    *,
    user: User,
    order_id: uuid.UUID | str,
    quantity: Decimal | None = None,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    ip: str | None = None,
) -> Order:
    """Amend an open limit/stop order. Quantity down keeps time priority in the matcher; a price
    change or quantity up loses it. Extra cash for a bigger buy is held now (and released if the
    matcher refuses the replace)."""
    if quantity is None and limit_price is None and stop_price is None:
        raise InvalidInput("Give a new quantity, limit price or stop price.", code="invalid_order")
    with transaction.atomic():
        probe = Order.objects.filter(pk=order_id, user=user).only("cash_account_id").first()
        if probe is None:
            raise NotFound("That order does not exist.", code="order_not_found")
        account = cash_accounts_lock(account_ids=[probe.cash_account_id])[probe.cash_account_id]
        order = _owned_order_locked(user, order_id)
        if order.status not in OPEN_STATUSES or order.pending_action:
            raise InvalidTransition(
                "Only an open order with no cancel or replace in flight can be modified.",
                code="order_not_replaceable",
            )
        if order.order_type == OrderType.MARKET:
            raise InvalidTransition(
                "Market orders cannot be modified.", code="order_not_replaceable"
            )
        if limit_price is not None and order.order_type not in (
            OrderType.LIMIT,
            OrderType.STOP_LIMIT,
        ):
            raise InvalidInput("This order has no limit price.", code="invalid_order")
        if stop_price is not None and order.order_type not in (
            OrderType.STOP,
            OrderType.STOP_LIMIT,
        ):
            raise InvalidInput("This order has no stop price.", code="invalid_order")
        grid = _engine_instrument(order.instrument)
        new_qty = quantity if quantity is not None else order.quantity
        new_limit = limit_price if limit_price is not None else order.limit_price
        new_stop = stop_price if stop_price is not None else order.stop_price
        probe_req = OrderRequest(
            symbol=grid.symbol,
            side=order.side,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            quantity=new_qty,
            client_order_id=order.client_order_id,
            limit_price=new_limit,
            stop_price=new_stop,
        )
        _validate_shape(probe_req)
        _on_grid(probe_req, grid)
        if new_qty <= order.filled_quantity + order.cancelled_quantity:
            raise InvalidInput(
                "The new quantity must be above what is already filled.", code="invalid_order"
            )
        extra_hold_id = None
        if order.side == Side.BUY:
            limits = risk_limits_for(user=user)
            price = new_limit if new_limit is not None else order.protection_price
            assert price is not None
            open_qty = new_qty - order.filled_quantity - order.cancelled_quantity
            need = price * open_qty
            need += (
                risk.commission(
                    order.filled_notional + need, limits, CURRENCY_DECIMALS.get(account.currency, 2)
                )
                - order.commission
            )
            held = sum((h.amount for h in order_holds(order=order, active_only=True)), Decimal(0))
            if need > held:
                extra_hold_id = hold_place(
                    account=account,
                    amount=need - held,
                    reason=HoldReason.ORDER,
                    reference_type=ORDER_REFERENCE,
                    reference_id=str(order.id),
                    actor=user,
                ).pk
        order.pending_action = "replace"
        order.pending_replace = {
            "quantity": str(new_qty),
            "limit_price": None if new_limit is None else str(new_limit),
            "stop_price": None if new_stop is None else str(new_stop),
            "extra_hold_id": extra_hold_id,
        }
        order.save(update_fields=["pending_action", "pending_replace", "updated_at"])
        _log(order, "replace_requested", order.status, order.status, **order.pending_replace)
        audit_record(
            action="order.replace_requested",
            actor=user,
            obj=order,
            before={
                "qty": order.quantity,
                "limit_price": order.limit_price,
                "stop_price": order.stop_price,
            },
            after=order.pending_replace,
            ip=ip,
        )
        _outbox(
            command_id=f"oms:{order.id}:replace:{uuid.uuid4().hex}",
            shard=order.shard,
            payload={
                "command": "replace",
                "order_id": str(order.id),
                "account": str(user.pk),
                "new_qty": grid.qty_to_lots(new_qty) if quantity is not None else None,
                "new_price": grid.price_to_ticks(new_limit)
                if limit_price is not None and new_limit is not None
                else None,
                "new_stop_price": grid.price_to_ticks(new_stop)
                if stop_price is not None and new_stop is not None
                else None,
                "ts": 0,
            },
        )
    return order


def order_holds(*, order: Order, active_only: bool = False) -> list[Hold]:
    qs = Hold.objects.filter(reference_type=ORDER_REFERENCE, reference_id=str(order.pk))
    if active_only:
        qs = qs.filter(status=HoldStatus.ACTIVE)
    return list(qs.order_by("id"))


def order_holds_release_all(*, order: Order) -> Decimal:
    """Give back every active hold of a finished order; returns the amount released."""
    released = Decimal(0)
    for hold in order_holds(order=order, active_only=True):
        released += hold.amount
        hold_release(hold=hold, memo=f"order {order.pk} finished")
    return released
