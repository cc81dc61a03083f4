from decimal import Decimal

import pytest

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.instruments.models import Instrument
from apps.ledger.models import Hold
from apps.orders.models import Order, OrderStatus, OutboxCommand
from apps.orders.services import (
    IdempotencyConflict,
    OrderRejected,
    OrderRequest,
    order_cancel,
    order_place,
)
from apps.portfolio.models import Position
from tests.integration.orders.conftest import fund

pytestmark = pytest.mark.django_db


def _req(**kw: object) -> OrderRequest:
    base: dict[str, object] = {
        "symbol": "ACME",
        "side": "buy",
        "order_type": "limit",
        "time_in_force": "gtc",
        "quantity": Decimal("10"),
        "client_order_id": "c-1",
        "limit_price": Decimal("100.00"),
    }
    base.update(kw)
    return OrderRequest(**base)  # type: ignore[arg-type]


def test_buy_limit_holds_cash_and_writes_outbox(trader: User, instrument: Instrument) -> None:
    account = fund(trader, "5000")
    order, created = order_place(user=trader, request=_req())
    assert created
    assert order.status == OrderStatus.PENDING_NEW
    hold = Hold.objects.get(reference_id=str(order.id))
    # 10 x 100 + commission max(10 bps of 1000 = 1.00, minimum 1.00)
    assert hold.amount == Decimal("1001.00")
    account.refresh_from_db()
    assert account.held == Decimal("1001.00")
    cmd = OutboxCommand.objects.get(command_id=f"oms:{order.id}:new")
    assert cmd.payload["qty"] == 10
    assert cmd.payload["price"] == 10000
    assert AuditEvent.objects.filter(action="order.submitted", object_id=str(order.id)).exists()


def test_same_client_order_id_returns_original_and_conflicts_on_change(
    trader: User, instrument: Instrument
) -> None:
    fund(trader, "5000")
    first, _ = order_place(user=trader, request=_req())
    again, created = order_place(user=trader, request=_req(limit_price=Decimal("100.0")))
    assert again.pk == first.pk
    assert not created
    with pytest.raises(IdempotencyConflict):
        order_place(user=trader, request=_req(quantity=Decimal("11")))
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"quantity": Decimal("60")}, "insufficient_buying_power"),
        ({"limit_price": Decimal("120.00")}, "price_out_of_collar"),
        ({"side": "sell"}, "insufficient_position"),
        ({"quantity": Decimal("20000")}, "max_quantity_exceeded"),
    ],
)
def test_risk_rejections_leave_nothing_behind(
    trader: User, instrument: Instrument, kwargs: dict[str, object], code: str
) -> None:
    fund(trader, "5000")
    with pytest.raises(OrderRejected) as exc:
        order_place(user=trader, request=_req(**kwargs))
    assert exc.value.code == code
    assert not Order.objects.exists()
    assert not OutboxCommand.objects.exists()
    assert not Hold.objects.exists()


def test_sell_reserves_position_and_cancel_goes_through_outbox(
    trader: User, instrument: Instrument
) -> None:
    Position.objects.create(user=trader, instrument=instrument, quantity=Decimal(5))
    order, _ = order_place(user=trader, request=_req(side="sell", quantity=Decimal(5)))
    position = Position.objects.get(user=trader, instrument=instrument)
    assert position.held_quantity == Decimal(5)
    with pytest.raises(OrderRejected):
        order_place(
            user=trader, request=_req(side="sell", quantity=Decimal(1), client_order_id="c-2")
        )
    order_cancel(user=trader, order_id=order.pk)
    order_cancel(user=trader, order_id=order.pk)  # idempotent while in flight
    assert (
        OutboxCommand.objects.filter(command_id__startswith=f"oms:{order.id}:cancel").count() == 1
    )
