"""A full order lifecycle through the real processes: the matching worker (`run_matcher`), the
outbox relay (`run_outbox_relay`) and settlement (`run_settlement`) run as subprocesses on the
test database and a private Redis prefix; the test drives the OMS and funding services.

deposit -> buy limit -> matched against a resting sell -> fill settled -> position and cash
correct -> (relay and settlement killed, orders placed, both restarted) -> sell -> realized
P&L correct.
"""

import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.funding.models import DepositStatus
from apps.funding.services import deposit_request
from apps.instruments.models import Instrument
from apps.ledger.models import AccountKind, CashAccount, HoldStatus
from apps.ledger.services import house_account
from apps.orders.models import Order, OrderStatus, OutboxCommand, RiskTier
from apps.orders.services import OrderRequest, order_holds, order_place
from apps.portfolio.models import Fill, Position
from apps.settlement.services import settlement_cursor
from tests.e2e.processes import Platform
from tests.factories import UserFactory
from tests.integration.ledger.checks import assert_ledger_consistent
from tests.integration.orders.conftest import approve_kyc, default_tier, instrument

__all__ = ["default_tier", "instrument"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    stack = Platform(
        tmp=tmp_path, redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    try:
        yield stack
    finally:
        stack.cleanup()


def trader() -> User:
    user: User = UserFactory.create()
    approve_kyc(user)
    return user


def deposit(user: User, amount: str) -> None:
    item, _ = deposit_request(user=user, amount=Decimal(amount), currency="USD")
    item.refresh_from_db()
    assert item.status == DepositStatus.COMPLETED  # the simulated gateway, run inline


def place(user: User, side: str, qty: str, price: str, ref: str) -> Order:
    order, _ = order_place(
        user=user,
        request=OrderRequest(
            symbol="ACME",
            side=side,
            order_type="limit",
            time_in_force="gtc",
            quantity=Decimal(qty),
            client_order_id=ref,
            limit_price=Decimal(price),
        ),
    )
    return order


def cash(user: User) -> CashAccount:
    return CashAccount.objects.get(owner=user, kind=AccountKind.CUSTOMER, currency="USD")


def status_is(order: Order, status: str) -> Any:
    def check() -> bool:
        order.refresh_from_db()
        return order.status == status

    return check


def test_deposit_buy_fill_sell_realized_pnl(
    settings: Any, platform: Platform, default_tier: RiskTier, instrument: Instrument
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the deposit's gateway step runs inline
    alice, bob = trader(), trader()
    deposit(alice, "10000.00")
    deposit(bob, "5000.00")
    # Bob already owns 10 ACME bought for 900 (e.g. transferred in).
    Position.objects.create(
        user=bob, instrument=instrument, quantity=Decimal(10), cost_basis=Decimal(900)
    )

    platform.start_all()
    # The matcher knows ACME (its add_instrument, enqueued by run_matcher at start, came out the
    # other end of settlement): an order published before that would be rejected UNKNOWN_SYMBOL.
    platform.wait_for("the matcher to add ACME", lambda: settlement_cursor(shard=0) >= 1)

    # Bob's sell rests in the book...
    resting = place(bob, "sell", "10", "100.00", "bob-1")
    platform.wait_for("the resting sell to be accepted", status_is(resting, OrderStatus.NEW))
    # ... and Alice's buy limit (at 101: 1010 + 1.01 commission held) takes it at 100.
    buy = place(alice, "buy", "10", "101.00", "alice-1")
    assert cash(alice).held == Decimal("1011.01")
    platform.wait_for("the buy to be filled", status_is(buy, OrderStatus.FILLED))
    resting.refresh_from_db()
    assert resting.status == OrderStatus.FILLED
    assert buy.average_fill_price == Decimal("100")
    assert buy.commission == Decimal("1.00")  # 10 bps of 1000, minimum 1.00
    position = Position.objects.get(user=alice, instrument=instrument)
    assert (position.quantity, position.cost_basis) == (Decimal(10), Decimal("1001.00"))
    alice_cash = cash(alice)
    assert alice_cash.balance == Decimal("8999.00")
    assert alice_cash.held == 0
    assert all(hold.status != HoldStatus.ACTIVE for hold in order_holds(order=buy))
    assert cash(bob).balance == Decimal("5999.00")
    assert Position.objects.get(user=bob, instrument=instrument).realized_pnl == Decimal("99.00")

    # Crashes in the middle: settlement is killed, orders are placed with no relay running,
    # then both come back and catch up (nothing lost, nothing applied twice).
    platform.kill("settlement")
    platform.kill("relay")
    # Alice sells her 10 at 105 to Bob's resting bid: 1050 - 1.05 commission - 1001 cost.
    bid = place(bob, "buy", "10", "105.00", "bob-2")
    sell = place(alice, "sell", "10", "105.00", "alice-2")
    assert OutboxCommand.objects.filter(published_at__isnull=True).count() == 2
    platform.start_relay("relay-2")
    platform.start_settlement("settlement-2")
    platform.wait_for("the sell to be filled", status_is(sell, OrderStatus.FILLED))
    bid.refresh_from_db()
    assert bid.status == OrderStatus.FILLED
    position.refresh_from_db()
    assert position.quantity == 0
    assert position.cost_basis == 0
    assert position.held_quantity == 0
    assert position.realized_pnl == Decimal("47.95")
    assert cash(alice).balance == Decimal("10047.95")
    assert cash(bob).balance == Decimal("5999.00") - Decimal("1051.05")
    # Fees: 1.00 + 1.00 on the first trade, 1.05 + 1.05 on the second.
    assert house_account(kind=AccountKind.HOUSE_FEE, currency="USD").balance == Decimal("4.10")
    assert Fill.objects.count() == 4

    # Everything was published once and settled in order; the books balance.
    assert not OutboxCommand.objects.filter(published_at__isnull=True).exists()
    assert AuditEvent.objects.filter(action="order.filled").count() == 4
    assert audit_chain_verify().ok
    assert_ledger_consistent()

    # SIGTERM: every process finishes its batch and exits cleanly.
    assert platform.stop_all() == {"settlement-2": 0, "relay-2": 0, "matcher": 0}, platform.logs()
