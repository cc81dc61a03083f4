"""Per-symbol book storage: price levels, heaps, pending stops, and read-only views.

Layout (chosen for CPython speed, see ``apps/matching/engine/__init__.py`` for invariants):

* An order is a ``list`` indexed by the ``O_*`` constants below (a list literal is several
  times cheaper to build than a slotted object, and index access is as fast as an attribute).
* Each side keeps ``levels: dict[key, level]`` and ``heap: list[key]`` where ``key`` is the
  price in ticks for asks and the *negated* price for bids, so the best level of either side is
  ``heap[0]`` and "can trade at" is always ``key <= bound``.
* A level is ``[live_qty, live_count, deque_of_orders]``. Cancelled orders stay in the deque and
  are skipped when they reach the front (lazy deletion); ``live_qty``/``live_count`` are exact
  at all times, so depth queries never see them.
* Pending stops sit in two heaps of ``(key, priority, order)``: buy stops keyed by stop price
  (lowest triggers first as the price rises), sell stops by negated stop price.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from .instrument import Instrument

Order = list[Any]
Level = list[Any]

# Order record layout (open orders only: a closed order is remembered as its status string).
O_ID: Final = 0
O_ACCOUNT: Final = 1
O_SYMBOL: Final = 2
O_SIDE: Final = 3
O_TYPE: Final = 4
O_TIF: Final = 5
O_PRICE: Final = 6  # limit price in ticks, None for market/stop
O_STOP: Final = 7  # stop price in ticks, None unless stop/stop-limit
O_QTY: Final = 8  # total quantity (as last amended); filled = qty - remaining - cancelled
O_REMAINING: Final = 9
O_CANCELLED: Final = 10
O_STATUS: Final = 11
O_STP: Final = 12
O_PROTECTION: Final = 13  # market protection in ticks, or None
O_PRIORITY: Final = 14  # time priority: seq of accepted / triggered / priority-losing replace
# Index of the order-table shard holding this order: closing a filled maker then needs no
# hash() call (derived from the id, so not part of snapshots).
O_SHARD: Final = 15
ORDER_FIELDS: Final = (
    "order_id",
    "account",
    "symbol",
    "side",
    "order_type",
    "tif",
    "price",
    "stop_price",
    "qty",
    "remaining",
    "cancelled",
    "status",
    "stp",
    "protection",
    "priority",
)

# Level layout.
L_QTY: Final = 0
L_COUNT: Final = 1
L_QUEUE: Final = 2


class OrderView(NamedTuple):
    """Read-only state of an open (resting or pending-stop) order."""

    order_id: str | int
    account: str | int
    symbol: str
    side: str
    order_type: str
    tif: str
    price: int | None
    stop_price: int | None
    qty: int
    remaining: int
    filled: int
    cancelled: int
    status: str
    stp: str
    protection: int | None
    priority: int
    triggered: bool


class Quote(NamedTuple):
    """Best bid and offer with the aggregated quantity at each (None when that side is empty)."""

    bid: int | None
    bid_qty: int
    ask: int | None
    ask_qty: int


class DepthLevel(NamedTuple):
    price: int
    qty: int  # aggregated open quantity (lots)
    orders: int  # number of resting orders


class Depth(NamedTuple):
    """Top-N aggregated levels, best first."""

    bids: tuple[DepthLevel, ...]
    asks: tuple[DepthLevel, ...]


class Book:
    """All state of one symbol. Mutated only by ``Engine``."""

    __slots__ = (
        "ask_heap",
        "asks",
        "bid_heap",
        "bids",
        "buy_stops",
        "instrument",
        "last_price",
        "sell_stops",
        "symbol",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.symbol: str = instrument.symbol
        self.instrument: Instrument = instrument
        self.bid_heap: list[int] = []
        self.bids: dict[int, Level] = {}
        self.ask_heap: list[int] = []
        self.asks: dict[int, Level] = {}
        self.buy_stops: list[tuple[int, int, Order]] = []
        self.sell_stops: list[tuple[int, int, Order]] = []
        self.last_price: int | None = None

    # ----------------------------------------------------------------- queries (not hot)
    def quote(self) -> Quote:
        bid = ask = None
        bid_qty = ask_qty = 0
        if self.bid_heap:
            key = self.bid_heap[0]
            bid, bid_qty = -key, self.bids[key][L_QTY]
        if self.ask_heap:
            key = self.ask_heap[0]
            ask, ask_qty = key, self.asks[key][L_QTY]
        return Quote(bid, bid_qty, ask, ask_qty)

    def depth(self, levels: int | None = None) -> Depth:
        return Depth(_side_depth(self.bids, -1, levels), _side_depth(self.asks, 1, levels))

    def resting_orders(self, buy: bool) -> list[Order]:
        """Live resting orders of one side in matching priority (best price, then time)."""
        levels = self.bids if buy else self.asks
        out: list[Order] = []
        for key in sorted(levels):
            level = levels[key]
            if level[L_COUNT]:
                out.extend(o for o in level[L_QUEUE] if o[O_STATUS] == "open")
        return out

    def top_orders(self, buy: bool, n: int) -> list[Order]:
        """The first ``n`` live resting orders of one side, in matching priority."""
        levels = self.bids if buy else self.asks
        out: list[Order] = []
        for key in sorted(levels):
            level = levels[key]
            if not level[L_COUNT]:
                continue
            for o in level[L_QUEUE]:
                if o[O_STATUS] == "open":
                    out.append(o)
                    if len(out) >= n:
                        return out
        return out

    def open_orders(self) -> list[Order]:
        """Every resting order and pending stop of this book (unordered)."""
        out: list[Order] = []
        for levels in (self.bids, self.asks):
            for level in levels.values():
                if level[L_COUNT]:
                    out.extend(o for o in level[L_QUEUE] if o[O_STATUS] == "open")
        for heap in (self.buy_stops, self.sell_stops):
            out.extend(e[2] for e in heap if e[2][O_STATUS] == "pending")
        return out

    def pending_stops(self, buy: bool) -> list[Order]:
        """Live pending stops of one side in trigger priority (stop price, then time)."""
        heap = self.buy_stops if buy else self.sell_stops
        live = sorted(heap, key=_stop_key)
        return [entry[2] for entry in live if entry[2][O_STATUS] == "pending"]


def _stop_key(entry: tuple[int, int, Order]) -> tuple[int, int]:
    return entry[0], entry[1]


def _side_depth(levels: dict[int, Level], sign: int, n: int | None) -> tuple[DepthLevel, ...]:
    out: list[DepthLevel] = []
    for key in sorted(levels):
        level = levels[key]
        if level[L_COUNT]:
            out.append(DepthLevel(key * sign, level[L_QTY], level[L_COUNT]))
            if n is not None and len(out) >= n:
                break
    return tuple(out)


def order_view(o: Order) -> OrderView:
    triggered = o[O_STOP] is not None and o[O_STATUS] == "open"
    return OrderView(
        o[O_ID],
        o[O_ACCOUNT],
        o[O_SYMBOL],
        o[O_SIDE],
        o[O_TYPE],
        o[O_TIF],
        o[O_PRICE],
        o[O_STOP],
        o[O_QTY],
        o[O_REMAINING],
        o[O_QTY] - o[O_REMAINING] - o[O_CANCELLED],
        o[O_CANCELLED],
        o[O_STATUS],
        o[O_STP],
        o[O_PROTECTION],
        o[O_PRIORITY],
        triggered,
    )


def order_record(o: Order) -> list[Any]:
    """The persistent fields of an order (snapshot form)."""
    return o[:O_SHARD]
