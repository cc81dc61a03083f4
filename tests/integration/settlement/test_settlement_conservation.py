"""Conservation: thousands of random trades among many users, through the real OMS services, a
real in-process matching engine fed from the outbox, and settlement. Afterwards cash and shares
are exactly where they started in total, and every order, hold, reservation, fill and position
agrees with the engine and with the ledger."""

import random
import time
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db.models import Sum

from apps.accounts.models import User
from apps.common.errors import DomainError
from apps.instruments.models import Instrument
from apps.ledger.models import AccountKind, CashAccount, Hold, HoldStatus
from apps.ledger.selectors import ledger_account_mismatches, ledger_unbalanced_postings
from apps.matching.engine import constants as ec
from apps.orders.models import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    Order,
    OrderStatus,
    OrderType,
    OutboxCommand,
    RiskTier,
    Side,
    TradingProfile,
)
from apps.orders.services import OrderRequest, order_cancel, order_place, order_replace
from apps.portfolio.models import Fill, Position
from apps.settlement.services import settlement_apply_batch
from tests.factories import UserFactory
from tests.integration.orders.conftest import approve_kyc, fund
from tests.integration.settlement.support import EngineDriver

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

SEED = 20_260_305
USERS = 20
STEPS = 3_000  # OMS actions (place / cancel / replace)
PUMP_EVERY = 40  # actions per matcher batch (= one settlement transaction)
CASH = Decimal("250000")
# symbol -> (initial shares per user, cost basis per user, small and large order sizes in lots):
# many small orders rest, the larger ones sweep several of them (several trades per order).
HOLDINGS = {
    "ACME": (Decimal(400), Decimal(40_000), (1, 6), (15, 60)),
    "COIN-USD": (Decimal(3), Decimal(150_000), (1, 50), (150, 600)),
}


def _traders(default_tier: RiskTier) -> list[User]:
    # The last user is the market maker: a zero-fee tier, otherwise an ordinary account.
    mm_tier = RiskTier.objects.create(
        name="market-maker",
        max_order_quantity=Decimal(100_000),
        max_order_notional=Decimal(10_000_000),
        price_collar_pct=Decimal(10),
        market_buffer_pct=Decimal(5),
        daily_order_limit=100_000,
    )
    RiskTier.objects.filter(pk=default_tier.pk).update(daily_order_limit=100_000)
    users = []
    for i in range(USERS):
        user: User = UserFactory.create()
        approve_kyc(user)
        if i == USERS - 1:
            TradingProfile.objects.create(user=user, risk_tier=mm_tier)
        users.append(user)
    return users


def _price(rng: random.Random, ref: Decimal, tick: Decimal, low: float, high: float) -> Decimal:
    raw = ref * Decimal(str(1 + rng.uniform(low, high)))
    return max((raw / tick).quantize(Decimal(1)) * tick, tick)


def test_random_trading_conserves_cash_and_shares(
    default_tier: RiskTier, instrument: Instrument, coin: Instrument
) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    instruments = {"ACME": instrument, "COIN-USD": coin}
    driver = EngineDriver()
    for inst in instruments.values():
        driver.add_instrument(inst)
    users = _traders(default_tier)
    initial_cost: dict[tuple[int, int], Decimal] = {}
    for user in users:
        fund(user, str(CASH))
        for symbol, (qty, cost, *_sizes) in HOLDINGS.items():
            Position.objects.create(
                user=user, instrument=instruments[symbol], quantity=qty, cost_basis=cost
            )
            initial_cost[(user.pk, instruments[symbol].pk)] = cost
    funded = CASH * USERS

    refused = 0
    client_ids = iter(range(1, 10**9))
    for step in range(STEPS):
        user = rng.choice(users)
        action = rng.random()
        try:
            if action < 0.95:
                symbol = rng.choice(list(instruments))
                inst = instruments[symbol]
                ref = inst.reference_price or Decimal(1)
                last = driver.engine.last_price(symbol)
                if last is not None:
                    ref = inst.tick_size * last
                side = rng.choice(["buy", "sell"])
                # Most orders are small and rest near the last price; about one in nine is
                # large and crosses, sweeping several of them (a trade always completes one of
                # its two orders, so there are at most as many trades as orders).
                aggressive = rng.random() < 0.11
                small, large = HOLDINGS[symbol][2:]
                lots = rng.randint(*(large if aggressive else small))
                if aggressive:
                    kind = rng.choices(["limit", "market"], weights=[75, 25])[0]
                    tif = rng.choices(["gtc", "day", "ioc", "fok"], weights=[50, 20, 25, 5])[0]
                    if kind == "market":
                        tif = rng.choice(["day", "ioc"])
                else:
                    kind = rng.choices(["limit", "stop_limit", "stop"], weights=[92, 5, 3])[0]
                    tif = rng.choices(["gtc", "day"], weights=[80, 20])[0]
                up = side == "buy"
                low, high = (-0.002, 0.01) if aggressive else (-0.008, 0.002)
                if not up:
                    low, high = -high, -low
                limit = stop = None
                if kind in ("limit", "stop_limit"):
                    limit = _price(rng, ref, inst.tick_size, low, high)
                if kind in ("stop", "stop_limit"):
                    stop = _price(
                        rng, ref, inst.tick_size, *((0.001, 0.006) if up else (-0.006, -0.001))
                    )
                    if limit is not None:
                        limit = max(limit, stop) if up else min(limit, stop)
                order_place(
                    user=user,
                    request=OrderRequest(
                        symbol=symbol,
                        side=side,
                        order_type=kind,
                        time_in_force=tif,
                        quantity=inst.lot_size * lots,
                        client_order_id=f"c{next(client_ids)}",
                        limit_price=limit,
                        stop_price=stop,
                    ),
                )
            else:
                open_orders = list(
                    Order.objects.filter(user=user, status__in=OPEN_STATUSES, pending_action="")
                    .exclude(order_type=OrderType.MARKET)
                    .values_list("pk", "side", "quantity", "filled_quantity", "limit_price")
                )
                if open_orders:
                    pk, side, qty, filled, limit = rng.choice(open_orders)
                    if action < 0.985:
                        order_cancel(user=user, order_id=pk)
                    else:
                        inst = Order.objects.select_related("instrument").get(pk=pk).instrument
                        lots, done = int(qty / inst.lot_size), int(filled / inst.lot_size)
                        # Buys may grow or shrink; sells only shrink (growing would need a new
                        # reservation, which order_replace does not take).
                        factor = rng.choice([0.5, 1.5]) if side == Side.BUY else 0.5
                        new_lots = max(int(lots * factor), done + 1)
                        new_limit = None
                        if limit is not None and rng.random() < 0.5:
                            new_limit = limit + rng.choice([-2, -1, 1, 2]) * inst.tick_size
                        if new_lots != lots or new_limit is not None:
                            order_replace(
                                user=user,
                                order_id=pk,
                                quantity=inst.lot_size * new_lots if new_lots != lots else None,
                                limit_price=new_limit,
                            )
        except DomainError:
            refused += 1
        if step % PUMP_EVERY == PUMP_EVERY - 1:
            driver.pump()
        if step % 1000 == 999:
            # DAY orders expire at a session close (the command the beat task enqueues).
            OutboxCommand.objects.create(
                command_id=f"eod:ACME:{step}",
                shard=0,
                payload={"command": "end_of_session", "symbol": "ACME", "ts": 0},
            )
    driver.pump()
    trades = sum(1 for e in driver.events if e[0] == ec.EV_TRADE)
    expired = sum(1 for e in driver.events if e[0] == ec.EV_CANCELLED and e[8] == ec.CXL_EXPIRED)
    assert trades >= 2_000, trades
    assert expired > 0

    # Cash: nothing created or destroyed - customers + fee account hold exactly what came in
    # from the bank, and the ledger as a whole sums to zero.
    by_kind = dict(
        CashAccount.objects.values("kind")
        .annotate(total=Sum("balance"))
        .values_list("kind", "total")
    )
    assert by_kind[AccountKind.HOUSE_BANK] == -funded
    assert sum(by_kind.values()) == 0
    assert by_kind[AccountKind.CUSTOMER] + by_kind[AccountKind.HOUSE_FEE] == funded
    fees = Fill.objects.aggregate(total=Sum("commission"))["total"]
    assert by_kind[AccountKind.HOUSE_FEE] == fees > 0
    assert ledger_unbalanced_postings() == []
    assert ledger_account_mismatches() == []  # held == sum of active holds, balance == lines

    # Shares: per symbol, the total over all positions is unchanged; nobody is short.
    for symbol, (qty, *_rest) in HOLDINGS.items():
        total = Position.objects.filter(instrument=instruments[symbol]).aggregate(t=Sum("quantity"))
        assert total["t"] == qty * USERS, symbol
    assert not Position.objects.filter(quantity__lt=0).exists()

    # Orders: ordered = filled + open + cancelled, with `open` from the engine itself.
    fills_by_order: dict[str, list[Fill]] = defaultdict(list)
    for fill in Fill.objects.all():
        fills_by_order[str(fill.order_id)].append(fill)
    held_by_order: dict[str, Decimal] = defaultdict(Decimal)
    for hold in Hold.objects.filter(status=HoldStatus.ACTIVE):
        held_by_order[hold.reference_id] += hold.amount
    reserved: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    statuses: dict[str, int] = defaultdict(int)
    for order in Order.objects.select_related("instrument"):
        statuses[order.status] += 1
        view = driver.engine.order(str(order.pk))
        lot = order.instrument.lot_size
        engine_open = lot * view.remaining if view is not None else Decimal(0)
        assert order.quantity == order.filled_quantity + engine_open + order.cancelled_quantity
        assert order.open_quantity == engine_open, order.pk
        assert (order.status in FINAL_STATUSES) == (engine_open == 0), order.status
        assert order.pending_action == ""
        fills = fills_by_order[str(order.pk)]
        assert order.filled_quantity == sum((f.quantity for f in fills), Decimal(0))
        assert order.filled_notional == sum((f.notional for f in fills), Decimal(0))
        assert order.commission == sum((f.commission for f in fills), Decimal(0))
        if order.side == Side.BUY:
            assert order.held_quantity == 0
            if order.status in FINAL_STATUSES:
                assert held_by_order[str(order.pk)] == 0
            else:
                price = order.limit_price or order.protection_price
                assert held_by_order[str(order.pk)] >= price * order.open_quantity
        else:
            assert str(order.pk) not in held_by_order
            assert 0 <= order.held_quantity <= order.open_quantity
            reserved[(order.user_id, order.instrument_id)] += order.held_quantity
    assert statuses[OrderStatus.FILLED] > 0
    assert statuses[OrderStatus.CANCELLED] > 0
    assert statuses[OrderStatus.EXPIRED] > 0

    # Positions and cash per user follow their fills: average cost in, realized P&L out.
    flows: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    cash_flow: dict[int, Decimal] = defaultdict(Decimal)
    for fill in Fill.objects.all():
        key = (fill.user_id, fill.instrument_id)
        if fill.side == Side.BUY:
            flows[key] += fill.notional + fill.commission
            cash_flow[fill.user_id] -= fill.notional + fill.commission
        else:
            flows[key] -= fill.notional - fill.commission
            cash_flow[fill.user_id] += fill.notional - fill.commission
    for position in Position.objects.all():
        key = (position.user_id, position.instrument_id)
        assert position.held_quantity == reserved[key]
        assert position.held_quantity <= position.quantity
        # cost_final = cost_initial + buys - (sell proceeds - realized)
        assert position.cost_basis == initial_cost[key] + flows[key] + position.realized_pnl
        if position.quantity == 0:
            assert position.cost_basis == 0
    for account in CashAccount.objects.filter(kind=AccountKind.CUSTOMER):
        assert account.owner_id is not None
        assert account.balance == CASH + cash_flow[account.owner_id]

    # Settling everything again changes nothing.
    assert settlement_apply_batch(shard=0, events=driver.events).applied == 0
    elapsed = time.monotonic() - started
    print(  # noqa: T201 - shown with -s: the size of the run
        f"{trades} trades, {len(driver.events)} events, {Order.objects.count()} orders, "
        f"{refused} refused by the OMS, {expired} expired, {elapsed:.1f}s"
    )
