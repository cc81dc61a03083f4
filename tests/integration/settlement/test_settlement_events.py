"""settlement_apply_batch on real engine events (in-process engine fed from the outbox) and on
hand-made event tuples: cash, fees, positions, statuses, holds, idempotency."""

import datetime as dt
from decimal import Decimal

import pytest

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.instruments.models import Instrument
from apps.ledger.models import AccountKind, CashAccount, Hold, HoldStatus, Posting
from apps.ledger.services import house_account
from apps.matching.engine import constants as ec
from apps.orders.models import Order, OrderEvent, OrderStatus, RiskTier
from apps.orders.services import order_cancel, order_holds, order_replace
from apps.portfolio.models import Fill, Position
from apps.settlement.models import SettlementCursor
from apps.settlement.services import SettlementGap, settlement_apply_batch
from tests.factories import UserFactory
from tests.integration.orders.conftest import approve_kyc, fund
from tests.integration.settlement.support import EngineDriver, place

pytestmark = pytest.mark.django_db


def new_trader() -> User:
    user: User = UserFactory.create()
    approve_kyc(user)
    return user


def give_shares(user: User, instrument: Instrument, qty: str, cost: str) -> Position:
    return Position.objects.create(
        user=user, instrument=instrument, quantity=Decimal(qty), cost_basis=Decimal(cost)
    )


def cash(user: User) -> CashAccount:
    return CashAccount.objects.get(owner=user, kind=AccountKind.CUSTOMER, currency="USD")


def fee_balance() -> Decimal:
    return house_account(kind=AccountKind.HOUSE_FEE, currency="USD").balance


def position(user: User, instrument: Instrument) -> Position:
    return Position.objects.get(user=user, instrument=instrument)


def refreshed(order: Order) -> Order:
    order.refresh_from_db()
    return order


def test_fill_settles_cash_fees_positions_and_releases_the_rest_of_the_hold(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    buyer, seller = new_trader(), new_trader()
    fund(buyer, "5000")
    give_shares(seller, instrument, "10", "900")
    sell = place(seller, side="sell", qty="10", price="100.00")
    # Limit 101: held 1010 + commission 1.01 = 1011.01; fills at the resting 100.00.
    buy = place(buyer, side="buy", qty="10", price="101.00")
    assert order_holds(order=buy)[0].amount == Decimal("1011.01")
    driver.pump()

    buy, sell = refreshed(buy), refreshed(sell)
    for order in (buy, sell):
        assert order.status == OrderStatus.FILLED
        assert order.filled_quantity == Decimal(10)
        assert order.average_fill_price == Decimal("100")
        assert order.commission == Decimal("1.00")  # 10 bps of 1000 = 1.00 (= the minimum)
        assert order.open_quantity == 0
    # Buyer: 1000 + 1.00; the 10.01 left of the hold is released.
    assert cash(buyer).balance == Decimal("3999.00")
    assert cash(buyer).held == 0
    assert all(h.status != HoldStatus.ACTIVE for h in order_holds(order=buy))
    assert cash(seller).balance == Decimal("999.00")
    assert fee_balance() == Decimal("2.00")
    long = position(buyer, instrument)
    assert (long.quantity, long.cost_basis, long.realized_pnl) == (10, Decimal("1001"), 0)
    flat = position(seller, instrument)
    assert (flat.quantity, flat.held_quantity, flat.cost_basis) == (0, 0, 0)
    assert flat.realized_pnl == Decimal("99.00")  # 1000 - 1 fee - 900 cost
    fills = {f.side: f for f in Fill.objects.all()}
    assert fills["buy"].liquidity == "taker"
    assert fills["sell"].liquidity == "maker"
    assert fills["sell"].realized_pnl == Decimal("99.00")
    assert fills["buy"].notional == Decimal("1000")
    # One balanced trade posting; every transition is logged and audited.
    assert Posting.objects.filter(kind="trade").count() == 1
    kinds = list(OrderEvent.objects.filter(order=buy).values_list("kind", flat=True))
    assert kinds == ["submitted", "accepted", "fill"]
    actions = set(AuditEvent.objects.filter(object_id=str(buy.pk)).values_list("action", flat=True))
    assert {"order.submitted", "order.accepted", "order.filled"} <= actions


def test_partial_fills_average_price_and_cumulative_commission(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    buyer, s1, s2 = new_trader(), new_trader(), new_trader()
    fund(buyer, "40000")
    give_shares(s1, instrument, "100", "9000")
    give_shares(s2, instrument, "150", "15000")
    place(s1, side="sell", qty="100", price="100.00")
    place(s2, side="sell", qty="150", price="101.00")
    buy = place(buyer, side="buy", qty="300", price="101.00")
    driver.pump()
    buy = refreshed(buy)
    assert buy.status == OrderStatus.PARTIALLY_FILLED
    assert buy.filled_quantity == Decimal(250)
    assert buy.filled_notional == Decimal("25150")
    assert buy.average_fill_price == Decimal("100.60000000")
    # Fee on the whole order so far: 10 bps of 25150 = 25.15 (10.00 + 15.15 by fill).
    assert buy.commission == Decimal("25.15")
    assert sorted(Fill.objects.filter(order=buy).values_list("commission", flat=True)) == [
        Decimal("10.00"),
        Decimal("15.15"),
    ]
    pos = position(buyer, instrument)
    assert pos.quantity == 250
    assert pos.cost_basis == Decimal("25175.15")
    # Held: 30300 + 30.30 at placement, minus what the fills cost (10010.00 + 15165.15); the
    # price improvement on the first fill stays held until the order is done.
    assert cash(buyer).held == Decimal("5155.15")
    assert cash(buyer).balance == Decimal("40000") - Decimal("25175.15")

    order_cancel(user=buyer, order_id=buy.pk)
    driver.pump()
    buy = refreshed(buy)
    assert buy.status == OrderStatus.CANCELLED
    assert buy.cancelled_quantity == Decimal(50)
    assert buy.cancel_reason == ec.CXL_USER
    assert buy.pending_action == ""
    assert cash(buyer).held == 0
    assert buy.quantity == buy.filled_quantity + buy.cancelled_quantity


def test_realized_pnl_at_average_cost_to_the_cent(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    trader, mm = new_trader(), new_trader()
    fund(trader, "10000")
    fund(mm, "10000")
    give_shares(mm, instrument, "30", "3000")
    place(mm, side="sell", qty="10", price="100.00")
    place(trader, side="buy", qty="10", price="100.00")
    driver.pump()
    assert position(trader, instrument).cost_basis == Decimal("1001.00")
    # Sell 4 at 105: proceeds 420 - fee 1.00 (minimum) - average cost 100.10 x 4.
    place(mm, side="buy", qty="4", price="105.00")
    sell = place(trader, side="sell", qty="4", price="105.00")
    assert position(trader, instrument).held_quantity == 4
    driver.pump()
    pos = position(trader, instrument)
    assert pos.quantity == 6
    assert pos.held_quantity == 0
    assert pos.realized_pnl == Decimal("18.60")  # 419.00 - 400.40
    assert pos.cost_basis == Decimal("600.60")
    assert Fill.objects.get(order=sell).realized_pnl == Decimal("18.60")
    assert cash(trader).balance == Decimal("10000") - Decimal("1001") + Decimal("419")
    # Sell the remaining 6 at 98: 588 - 1.00 - 600.60 = -13.60; the position is flat again.
    place(mm, side="buy", qty="6", price="98.00")
    place(trader, side="sell", qty="6", price="98.00")
    driver.pump()
    pos = position(trader, instrument)
    assert (pos.quantity, pos.cost_basis) == (0, 0)
    assert pos.realized_pnl == Decimal("5.00")  # 18.60 - 13.60
    assert cash(trader).balance == Decimal("10000") - Decimal("1001") + 419 + 587


def test_replaying_a_batch_changes_nothing(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    buyer, seller = new_trader(), new_trader()
    fund(buyer, "5000")
    give_shares(seller, instrument, "10", "900")
    place(seller, side="sell", qty="10", price="100.00")
    place(buyer, side="buy", qty="6", price="100.00")
    events = driver.pump()

    def state() -> tuple[object, ...]:
        return (
            list(CashAccount.objects.order_by("pk").values_list("balance", "held")),
            list(Position.objects.order_by("pk").values_list("quantity", "held_quantity")),
            list(Order.objects.order_by("pk").values_list("status", "filled_quantity")),
            Fill.objects.count(),
            OrderEvent.objects.count(),
            Posting.objects.count(),
            AuditEvent.objects.count(),
        )

    before = state()
    again = settlement_apply_batch(shard=0, events=events)
    assert (again.applied, again.skipped) == (0, len(events))
    everything = settlement_apply_batch(shard=0, events=driver.events)
    assert everything.applied == 0
    assert state() == before
    assert SettlementCursor.objects.get(shard=0).last_seq == driver.events[-1][1]


def test_a_gap_in_the_sequence_is_refused(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    last = driver.events[-1][1]
    late = ("session_ended", last + 2, 0, "ACME", 0)
    with pytest.raises(SettlementGap):
        settlement_apply_batch(shard=0, events=[late])
    assert SettlementCursor.objects.get(shard=0).last_seq == last


def test_rejected_new_orders_release_hold_and_reservation(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    trader = new_trader()
    fund(trader, "5000")
    give_shares(trader, instrument, "10", "1000")
    buy = place(trader, side="buy", qty="10", price="100.00")
    sell = place(trader, side="sell", qty="10", price="100.00")
    assert cash(trader).held == Decimal("1001.00")
    assert position(trader, instrument).held_quantity == 10
    seq = driver.events[-1][1]
    settlement_apply_batch(
        shard=0,
        events=[
            ("rejected", seq + 1, 0, "new_order", str(buy.pk), "ACME", "UNKNOWN_SYMBOL"),
            ("rejected", seq + 2, 0, "new_order", str(sell.pk), "ACME", "UNKNOWN_SYMBOL"),
        ],
    )
    buy, sell = refreshed(buy), refreshed(sell)
    assert (buy.status, buy.reject_reason) == (OrderStatus.REJECTED, "UNKNOWN_SYMBOL")
    assert sell.status == OrderStatus.REJECTED
    assert sell.held_quantity == 0
    assert cash(trader).held == 0
    assert cash(trader).balance == Decimal("5000")
    assert position(trader, instrument).held_quantity == 0
    assert AuditEvent.objects.filter(action="order.rejected").count() == 2


def test_duplicate_new_order_rejection_does_not_touch_a_live_order(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    trader = new_trader()
    fund(trader, "5000")
    buy = place(trader, side="buy", qty="10", price="100.00")
    driver.pump()
    seq = driver.events[-1][1]
    settlement_apply_batch(
        shard=0,
        events=[("rejected", seq + 1, 0, "new_order", str(buy.pk), "ACME", "DUPLICATE_ORDER_ID")],
    )
    assert refreshed(buy).status == OrderStatus.NEW
    assert cash(trader).held == Decimal("1001.00")


def test_cancel_of_a_sell_releases_the_reservation(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    trader = new_trader()
    give_shares(trader, instrument, "10", "1000")
    sell = place(trader, side="sell", qty="10", price="100.00")
    driver.pump()
    order_cancel(user=trader, order_id=sell.pk)
    driver.pump()
    sell = refreshed(sell)
    assert sell.status == OrderStatus.CANCELLED
    assert sell.held_quantity == 0
    assert position(trader, instrument).held_quantity == 0
    assert position(trader, instrument).quantity == 10


def test_rejected_cancel_clears_the_pending_action(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    trader = new_trader()
    fund(trader, "5000")
    buy = place(trader, side="buy", qty="10", price="100.00")
    driver.pump()
    order_cancel(user=trader, order_id=buy.pk)
    seq = driver.events[-1][1]
    settlement_apply_batch(
        shard=0,
        events=[("rejected", seq + 1, 0, "cancel", str(buy.pk), None, "ORDER_NOT_OPEN")],
    )
    buy = refreshed(buy)
    assert (buy.status, buy.pending_action) == (OrderStatus.NEW, "")
    assert cash(trader).held == Decimal("1001.00")


def test_replace_up_holds_more_and_a_rejected_replace_gives_it_back(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    trader = new_trader()
    fund(trader, "5000")
    buy = place(trader, side="buy", qty="10", price="100.00")
    driver.pump()
    order_replace(user=trader, order_id=buy.pk, quantity=Decimal(20))
    # 20 x 100 + fee 2.00 = 2002.00 held in total now.
    assert cash(trader).held == Decimal("2002.00")
    seq = driver.events[-1][1]
    settlement_apply_batch(
        shard=0,
        events=[("rejected", seq + 1, 0, "replace", str(buy.pk), None, "ORDER_NOT_OPEN")],
    )
    buy = refreshed(buy)
    assert (buy.quantity, buy.pending_action, buy.pending_replace) == (10, "", None)
    assert cash(trader).held == Decimal("1001.00")


def test_replace_applies_the_matcher_values_and_releases_surplus(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    trader, seller = new_trader(), new_trader()
    fund(trader, "5000")
    give_shares(seller, instrument, "30", "3000")
    buy = place(trader, side="buy", qty="10", price="100.00")
    driver.pump()
    order_replace(user=trader, order_id=buy.pk, quantity=Decimal(20))
    driver.pump()
    buy = refreshed(buy)
    assert (buy.quantity, buy.pending_action) == (20, "")
    assert cash(trader).held == Decimal("2002.00")
    # A lower price needs less: the surplus goes back when the matcher confirms.
    order_replace(user=trader, order_id=buy.pk, limit_price=Decimal("95.00"))
    driver.pump()
    buy = refreshed(buy)
    assert buy.limit_price == Decimal("95.00")
    assert cash(trader).held == Decimal("1901.90")  # 1900 + 1.90
    # Both holds are spent by one fill spanning them (oldest first).
    place(seller, side="sell", qty="20", price="95.00")
    driver.pump()
    buy = refreshed(buy)
    assert buy.status == OrderStatus.FILLED
    assert cash(trader).held == 0
    assert cash(trader).balance == Decimal("5000") - Decimal("1901.90")
    assert not Hold.objects.filter(status=HoldStatus.ACTIVE).exists()


def test_day_orders_expire_at_session_close(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    from apps.settlement.services import session_close_enqueue

    trader = new_trader()
    fund(trader, "5000")
    give_shares(trader, instrument, "10", "1000")
    Instrument.objects.filter(pk=instrument.pk).update(
        created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    )
    day_buy = place(trader, side="buy", qty="10", price="99.00", tif="day")
    day_sell = place(trader, side="sell", qty="10", price="101.00", tif="day")
    gtc = place(trader, side="buy", qty="1", price="98.00")
    driver.pump()
    Order.objects.filter(pk__in=[day_buy.pk, day_sell.pk, gtc.pk]).update(
        created_at=dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC)
    )
    at = dt.datetime(2026, 3, 3, 0, 1, tzinfo=dt.UTC)
    assert session_close_enqueue(now=at) == ["eod:ACME:2026-03-02"]
    assert session_close_enqueue(now=at) == []  # idempotent
    driver.pump()
    day_buy, day_sell, gtc = refreshed(day_buy), refreshed(day_sell), refreshed(gtc)
    assert day_buy.status == day_sell.status == OrderStatus.EXPIRED
    assert day_buy.cancel_reason == ec.CXL_EXPIRED
    assert gtc.status == OrderStatus.NEW
    assert cash(trader).held == Decimal("1.00") + Decimal("98.00")  # only the GTC's hold
    assert position(trader, instrument).held_quantity == 0
    assert AuditEvent.objects.filter(action="order.expired").count() == 2


def test_session_close_waits_for_day_orders_placed_after_the_close(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    from apps.settlement.services import session_close_enqueue

    trader = new_trader()
    fund(trader, "5000")
    Instrument.objects.filter(pk=instrument.pk).update(
        created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    )
    place(trader, side="buy", qty="10", price="99.00", tif="day")  # created "now"
    now = dt.datetime.now(dt.UTC)
    assert session_close_enqueue(now=now) == []


def test_stp_decrement_keeps_the_order_open_and_releases_the_surplus(
    default_tier: RiskTier, instrument: Instrument, driver: EngineDriver
) -> None:
    trader = new_trader()
    fund(trader, "5000")
    buy = place(trader, side="buy", qty="10", price="100.00")
    driver.pump()
    seq = driver.events[-1][1]
    settlement_apply_batch(
        shard=0,
        events=[("cancelled", seq + 1, 0, "ACME", str(buy.pk), str(trader.pk), 4, 6, ec.CXL_STP)],
    )
    buy = refreshed(buy)
    assert buy.status == OrderStatus.NEW
    assert buy.cancelled_quantity == 4
    assert buy.open_quantity == 6
    assert cash(trader).held == Decimal("601.00")  # 600 + the 1.00 minimum fee


def test_fractional_lots_convert_exactly(
    default_tier: RiskTier, coin: Instrument, driver: EngineDriver
) -> None:
    driver.add_instrument(coin)
    buyer, seller = new_trader(), new_trader()
    fund(buyer, "10000")
    give_shares(seller, coin, "0.5", "20000")
    place(seller, side="sell", qty="0.1234", price="50000.01", symbol="COIN-USD")
    buy = place(buyer, side="buy", qty="0.1234", price="50000.01", symbol="COIN-USD")
    driver.pump()
    buy = refreshed(buy)
    assert buy.status == OrderStatus.FILLED
    notional = Decimal("0.1234") * Decimal("50000.01")  # 6170.001234
    fee = Decimal("6.17")  # 10 bps, rounded half-up to the cent
    assert buy.filled_notional == notional
    assert cash(buyer).balance == Decimal("10000") - notional - fee
    assert position(buyer, coin).quantity == Decimal("0.1234")
    assert position(seller, coin).quantity == Decimal("0.3766")
