"""Seeded, engine-independent description of the benchmark workload.

The workload is generated once, before any timing, by simulating it on our own engine (so a
"passive" order really is passive and a "marketable" one really crosses when it arrives, and
cancels target orders that are still open). It is then replayed, as plain tuples, against each
implementation under test: every implementation sees exactly the same operations.

Operations (``Op.kind``):

* ``PASSIVE``: limit order priced 1-40 ticks away from the touch on its own side (never
  crosses), GTC.
* ``CANCEL``: cancel of a random order that is open at that point of the sequence.
* ``MARKETABLE_LIMIT`` / ``MARKET``: takes the first k resting orders of the opposite side
  whole (qty = their total), the limit priced 0-2 ticks through the k-th one. It fills
  completely, so nothing rests (GTC: the peer has no IOC, this keeps both books identical).

Steady state: with 60% adds and 25% cancels, fills must remove 35% / 15% = 2.33 orders per
marketable order for the book to keep its seeded size. k is uniform in 1..4 (mean 2.5)
while the book holds at least its seeded number of orders and in 1..3 (mean 2) below, so it
stays near 1,000 orders for the whole run instead of growing without bound or draining.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, NamedTuple

from apps.matching.engine import BUY, GTC, IOC, LIMIT, MARKET, SELL, Engine

PASSIVE: Final = 0
CANCEL: Final = 1
MARKETABLE_LIMIT: Final = 2
MARKET_ORDER: Final = 3
KIND_NAMES: Final = {
    PASSIVE: "passive_limit",
    CANCEL: "cancel",
    MARKETABLE_LIMIT: "marketable_limit",
    MARKET_ORDER: "market",
}

SYMBOL: Final = "BENCH"
TICK: Final = Decimal("0.01")
LOT: Final = Decimal("1")
MID: Final = 10_000  # ticks
ACCOUNTS: Final = 64


class Op(NamedTuple):
    kind: int
    order_id: int
    is_buy: bool
    price: int  # ticks (0 for market orders and cancels)
    qty: int  # lots (0 for cancels)
    account: int


@dataclass(frozen=True)
class Mix:
    passive: float = 0.60
    cancel: float = 0.25
    marketable_limit: float = 0.10
    market: float = 0.05


@dataclass
class Workload:
    seed_orders: list[Op]
    ops: list[Op]
    mix: Mix
    counts: dict[str, int]
    trades: int
    traded_qty: int
    final_resting: int


def new_engine() -> Engine:
    eng = Engine()
    eng.add_instrument(0, SYMBOL, TICK, LOT)
    return eng


def generate(n_ops: int, seed: int, n_seed: int = 1000, mix: Mix | None = None) -> Workload:
    mix = mix or Mix()
    rng = random.Random(seed)
    eng = new_engine()
    live: list[int] = []  # ids that may still be open (checked lazily on cancel)
    next_id = 1
    ts = 1
    trades = traded = 0
    resting = 0

    def submit(op: Op) -> None:
        nonlocal ts, trades, traded, resting
        side = BUY if op.is_buy else SELL
        if op.kind == CANCEL:
            evs = eng.cancel(ts, op.order_id, op.account)
        elif op.kind == MARKET_ORDER:
            evs = eng.new_order(ts, op.order_id, op.account, SYMBOL, side, MARKET, IOC, op.qty)
        else:
            evs = eng.new_order(
                ts, op.order_id, op.account, SYMBOL, side, LIMIT, GTC, op.qty, op.price
            )
            if op.kind == PASSIVE:
                assert len(evs) == 1, "a passive order traded"
            if eng.order_status(op.order_id) == "open":
                live.append(op.order_id)
                resting += 1
        for e in evs:
            if e[0] == "trade":
                trades += 1
                traded += e[5]
                resting -= e[11] == 0  # maker filled
            elif e[0] == "cancelled" and op.kind == CANCEL:
                resting -= 1
        ts += 1

    seed_orders: list[Op] = []
    for i in range(n_seed):
        is_buy = i % 2 == 0
        offset = 1 + rng.randrange(50)
        price = MID - offset if is_buy else MID + offset
        op = Op(PASSIVE, next_id, is_buy, price, rng.randint(1, 10), rng.randrange(ACCOUNTS))
        next_id += 1
        seed_orders.append(op)
        submit(op)
    trades = traded = 0

    thresholds = (
        mix.passive,
        mix.passive + mix.cancel,
        mix.passive + mix.cancel + mix.marketable_limit,
    )
    ops: list[Op] = []
    counts = dict.fromkeys(KIND_NAMES.values(), 0)
    counts["cancel_of_open_order"] = 0
    for _ in range(n_ops):
        r = rng.random()
        acct = rng.randrange(ACCOUNTS)
        quote = eng.quote(SYMBOL)
        if r < thresholds[1] and r >= thresholds[0] and live:
            # Cancel a random still-open order (lazy removal of ids that filled meanwhile).
            oid = 0
            while live:
                j = rng.randrange(len(live))
                cand = live[j]
                live[j] = live[-1]
                live.pop()
                view = eng.order(cand)
                if view is not None and view.status == "open":
                    oid = cand
                    acct = int(view.account)
                    break
            op = Op(CANCEL, oid, False, 0, 0, acct)
            counts["cancel_of_open_order"] += oid != 0
        elif r < thresholds[1]:
            is_buy = rng.random() < 0.5
            away = 1 + min(int(rng.expovariate(0.2)), 39)
            if is_buy:
                ref = quote.ask if quote.ask is not None else (quote.bid or MID) + 1
                price = ref - away
            else:
                ref = quote.bid if quote.bid is not None else (quote.ask or MID) - 1
                price = ref + away
            op = Op(PASSIVE, next_id, is_buy, max(price, 1), rng.randint(1, 10), acct)
            next_id += 1
        else:
            is_buy = rng.random() < 0.5
            kmax = 4 if resting >= n_seed else 3
            makers = eng.top_orders(SYMBOL, SELL if is_buy else BUY, rng.randint(1, kmax))
            if not makers:
                is_buy = not is_buy
                makers = eng.top_orders(SYMBOL, SELL if is_buy else BUY, rng.randint(1, kmax))
            qty = max(sum(v.remaining for v in makers), 1)
            if r < thresholds[2]:
                last_px = makers[-1].price if makers else quote.bid or quote.ask or MID
                assert last_px is not None
                through = rng.randrange(3)
                price = last_px + through if is_buy else max(last_px - through, 1)
                op = Op(MARKETABLE_LIMIT, next_id, is_buy, price, qty, acct)
            else:
                op = Op(MARKET_ORDER, next_id, is_buy, 0, qty, acct)
            next_id += 1
        counts[KIND_NAMES[op.kind]] += 1
        ops.append(op)
        submit(op)
    depth = eng.depth(SYMBOL, None)
    final = sum(lv.orders for lv in depth.bids) + sum(lv.orders for lv in depth.asks)
    assert final == resting
    return Workload(seed_orders, ops, mix, counts, trades, traded, final)
