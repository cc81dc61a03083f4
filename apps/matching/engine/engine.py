"""The matching engine: commands in, event tuples out. See the package docstring for rules.

Performance notes (why the code looks the way it does):

* Hot methods (``new_order``, ``cancel``, ``_match``) bind attributes and constants to
  locals, read order fields by integer index and build events as tuples: in CPython each
  avoided attribute lookup or object construction is a measurable share of a ~1 us operation.
* Validation on the hot path is a single chain of cheap checks; only when it fails does the
  slow ``_new_order_reason`` run, which is the one place that defines which reason is
  reported (the documented precedence).
* The order table maps every order id ever accepted to the order's record while it is open,
  and to its terminal status string (``filled``/``cancelled``) once closed: enough for
  duplicate-id detection and ``ORDER_NOT_OPEN`` vs ``UNKNOWN_ORDER``, while the ~200-byte
  record is freed (on the target VM every new 4 KiB page costs ~2.5 us to fault in, so
  retained bytes per operation are latency). The table is split into many small dicts
  ("shards"): growing one 700k-entry dict re-allocates and copies it in one go (~35 ms
  measured), growing a small shard costs well under a millisecond.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from heapq import heappop, heappush
from typing import Any, Final

from .book import (
    L_COUNT,
    L_QTY,
    L_QUEUE,
    O_ACCOUNT,
    O_CANCELLED,
    O_ID,
    O_PRICE,
    O_PRIORITY,
    O_PROTECTION,
    O_QTY,
    O_REMAINING,
    O_SIDE,
    O_STATUS,
    O_STOP,
    O_STP,
    O_SYMBOL,
    O_TIF,
    O_TYPE,
    ORDER_FIELDS,
    Book,
    Depth,
    Level,
    Order,
    OrderView,
    Quote,
    order_record,
    order_view,
)
from .commands import AddInstrument, Cancel, Command, EndOfSession, NewOrder, Replace
from .constants import (
    BUY,
    CANCELLED,
    CMD_ADD_INSTRUMENT,
    CMD_CANCEL,
    CMD_END_OF_SESSION,
    CMD_NEW_ORDER,
    CMD_REPLACE,
    CXL_EXPIRED,
    CXL_FOK_UNFILLABLE,
    CXL_IOC_REMAINDER,
    CXL_PROTECTION,
    CXL_STP,
    CXL_USER,
    DAY,
    EV_ACCEPTED,
    EV_CANCELLED,
    EV_INSTRUMENT_ADDED,
    EV_REJECTED,
    EV_REPLACED,
    EV_SESSION_ENDED,
    EV_TRADE,
    EV_TRIGGERED,
    FILLED,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    MAX_LOTS,
    MAX_TICKS,
    OPEN,
    ORDER_TYPES,
    PENDING,
    RANGE_BITS,
    REJ_ACCOUNT_MISMATCH,
    REJ_DUPLICATE_ORDER_ID,
    REJ_DUPLICATE_SYMBOL,
    REJ_INVALID_ACCOUNT,
    REJ_INVALID_COMMAND,
    REJ_INVALID_INSTRUMENT,
    REJ_INVALID_ORDER_ID,
    REJ_INVALID_ORDER_TYPE,
    REJ_INVALID_PRICE,
    REJ_INVALID_PROTECTION,
    REJ_INVALID_QUANTITY,
    REJ_INVALID_SIDE,
    REJ_INVALID_STOP_PRICE,
    REJ_INVALID_STP_MODE,
    REJ_INVALID_SYMBOL,
    REJ_INVALID_TIF,
    REJ_INVALID_TIMESTAMP,
    REJ_MISSING_PRICE,
    REJ_MISSING_STOP_PRICE,
    REJ_OFF_LOT_GRID,
    REJ_OFF_TICK_GRID,
    REJ_ORDER_NOT_OPEN,
    REJ_QUANTITY_TOO_LOW,
    REJ_UNEXPECTED_PRICE,
    REJ_UNEXPECTED_PROTECTION,
    REJ_UNEXPECTED_STOP_PRICE,
    REJ_UNKNOWN_ORDER,
    REJ_UNKNOWN_SYMBOL,
    SELL,
    SIDES,
    STALE,
    STATUSES,
    STOP,
    STOP_LIMIT,
    STP_CANCEL_BOTH,
    STP_CANCEL_OLDEST,
    STP_DECREMENT,
    STP_MODES,
    STP_NONE,
    TIFS,
)
from .events import Event
from .instrument import Instrument, OffGridError

SNAPSHOT_FORMAT: Final = "apps.matching.engine/snapshot"
SNAPSHOT_VERSION: Final = 1

_SHARD_BITS: Final = 10
_SHARD_MASK: Final = (1 << _SHARD_BITS) - 1
# Shard by *higher* hash bits: sequential int ids (hash(n) == n) then share a shard in runs of
# 1024, so the ids of recent orders - the ones being cancelled and filled - live in a couple
# of cache-resident dicts. Low bits would scatter consecutive ids over all shards, and on the
# target VM each cache miss costs ~0.4 us.
_SHARD_SHIFT: Final = 10
# Larger than any heap key (|price| <= MAX_TICKS): "no price bound" for unprotected markets.
_NO_BOUND: Final = 1 << 64
# A level's queue is rebuilt when lazily-deleted entries outnumber live ones this much.
_COMPACT_SLACK: Final = 32

_SIDE_SET: Final = frozenset(SIDES)
_TYPE_SET: Final = frozenset(ORDER_TYPES)
_TIF_SET: Final = frozenset(TIFS)
_STP_SET: Final = frozenset(STP_MODES)
_CANON: Final[dict[str, str]] = {s: s for s in (*SIDES, *ORDER_TYPES, *TIFS, *STP_MODES, *STATUSES)}
_STP_CANON: Final[dict[str, str]] = {s: s for s in STP_MODES}


def _canon(value: object, allowed: frozenset[str]) -> str | None:
    """Map an enumerated input to the engine's constant object, or None if not allowed."""
    if type(value) is not str or value not in allowed:
        return None
    return _CANON[value]


def _is_id(value: object) -> bool:
    t = type(value)
    return t is str or t is int


def _ticks_ok(value: object) -> bool:
    return type(value) is int and 0 < value <= MAX_TICKS


def _safe_id(value: object) -> str | int | None:
    """Echo an id in a rejected event only if it is serializable as-is."""
    if type(value) is str or type(value) is int:
        return value
    return None


def _priority_key(order: Order) -> int:
    key: int = order[O_PRIORITY]
    return key


def _id_key(order_id: str | int) -> tuple[int, int, str]:
    """Total order over mixed int/str ids (canonical snapshot order)."""
    if isinstance(order_id, int):
        return (0, order_id, "")
    return (1, 0, order_id)


def _fok_fillable(
    levels: dict[int, Level], bound: int, qty: int, account: object, stp: str
) -> bool:
    """Can ``qty`` fill completely at keys <= bound, honouring self-trade prevention?

    A same-account resting order blocks the fill under cancel-newest, cancel-both and
    decrement (each would cancel or shrink the taker before it is complete); under
    cancel-oldest it is skipped, because matching will cancel it instead of trading.
    """
    need = qty
    for key in sorted(levels):
        if key > bound:
            break
        level = levels[key]
        if not level[L_COUNT]:
            continue
        if stp is STP_NONE:
            need -= level[L_QTY]
            if need <= 0:
                return True
            continue
        for maker in level[L_QUEUE]:
            if maker[O_STATUS] is not OPEN:
                continue
            if maker[O_ACCOUNT] == account:
                if stp is STP_CANCEL_OLDEST:
                    continue
                return False
            need -= maker[O_REMAINING]
            if need <= 0:
                return True
    return False


class Engine:
    """A set of order books plus the order table. Not thread-safe; one writer at a time."""

    __slots__ = ("_books", "_seq", "_shards")

    def __init__(self) -> None:
        self._books: dict[str, Book] = {}
        # order id -> record while open (resting / pending stop), -> FILLED/CANCELLED after.
        self._shards: list[dict[str | int, Order | str]] = [{} for _ in range(1 << _SHARD_BITS)]
        self._seq = 0

    # ================================================================== commands
    def process(self, command: Command) -> list[Event]:
        """Apply one command dataclass (see ``commands``)."""
        t = type(command)
        c: Any = command
        if t is NewOrder:
            return self.new_order(
                c.ts,
                c.order_id,
                c.account,
                c.symbol,
                c.side,
                c.order_type,
                c.tif,
                c.qty,
                c.price,
                c.stop_price,
                c.stp,
                c.protection,
            )
        if t is Cancel:
            return self.cancel(c.ts, c.order_id, c.account)
        if t is Replace:
            return self.replace(
                c.ts, c.order_id, c.account, c.new_qty, c.new_price, c.new_stop_price
            )
        if t is EndOfSession:
            return self.end_of_session(c.ts, c.symbol)
        if t is AddInstrument:
            return self.add_instrument(c.ts, c.symbol, c.tick_size, c.lot_size)
        return [self._rejected(getattr(command, "ts", None), None, None, None, REJ_INVALID_COMMAND)]

    def process_many(self, commands: Iterable[Command]) -> list[Event]:
        out: list[Event] = []
        for command in commands:
            out.extend(self.process(command))
        return out

    # ------------------------------------------------------------------ new order
    def new_order(
        self,
        ts: int,
        order_id: str | int,
        account: str | int,
        symbol: str,
        side: str,
        order_type: str,
        tif: str,
        qty: int,
        price: int | None = None,
        stop_price: int | None = None,
        stp: str = STP_NONE,
        protection: int | None = None,
    ) -> list[Event]:
        """Submit an order. ``qty`` in lots, prices in ticks, ``protection`` in ticks.

        Enumerated arguments may be any equal ``str``; passing the objects from
        ``constants`` (``BUY``, ``LIMIT``, ``GTC`` ...) takes the fast path.
        """
        try:
            book = self._books[symbol]
            si = hash(order_id) >> _SHARD_SHIFT & _SHARD_MASK
            shard = self._shards[si]
            if stp is not STP_NONE:
                stp = _STP_CANON[stp]
        except (KeyError, TypeError):  # unknown/unhashable symbol, unhashable id, bad stp
            return self._new_order_slow(
                ts,
                order_id,
                account,
                symbol,
                side,
                order_type,
                tif,
                qty,
                price,
                stop_price,
                stp,
                protection,
            )
        tid = type(order_id)
        tacc = type(account)
        if (
            order_id in shard
            or type(ts) is not int
            or type(qty) is not int
            or (tid is not int and tid is not str)
            or (tacc is not int and tacc is not str)
        ):
            return self._new_order_slow(
                ts,
                order_id,
                account,
                symbol,
                side,
                order_type,
                tif,
                qty,
                price,
                stop_price,
                stp,
                protection,
            )
        if order_type is LIMIT:
            # (x - 1) >> RANGE_BITS is 0 exactly when 0 < x <= MAX: one test for both values.
            if (
                type(price) is not int
                or (qty - 1 | price - 1) >> RANGE_BITS
                or stop_price is not None
                or protection is not None
            ):
                return self._new_order_slow(
                    ts,
                    order_id,
                    account,
                    symbol,
                    side,
                    order_type,
                    tif,
                    qty,
                    price,
                    stop_price,
                    stp,
                    protection,
                )
            if tif is GTC or tif is DAY:
                # Fast path: a limit order that cannot trade only joins its level's queue.
                if side is BUY:
                    opp = book.ask_heap
                    if not opp or price < opp[0]:
                        seq = self._seq + 1
                        self._seq = seq
                        o = [
                            order_id,
                            account,
                            symbol,
                            BUY,
                            LIMIT,
                            tif,
                            price,
                            None,
                            qty,
                            qty,
                            0,
                            OPEN,
                            stp,
                            None,
                            seq,
                            si,
                        ]
                        shard[order_id] = o
                        levels = book.bids
                        key = -price
                        lv = levels.get(key)
                        if lv is None:
                            levels[key] = [qty, 1, deque((o,))]
                            heappush(book.bid_heap, key)
                        else:
                            lv[0] += qty
                            lv[1] += 1
                            lv[2].append(o)
                        return [
                            (
                                EV_ACCEPTED,
                                seq,
                                ts,
                                symbol,
                                order_id,
                                account,
                                BUY,
                                LIMIT,
                                tif,
                                qty,
                                price,
                                None,
                            )
                        ]
                elif side is SELL:
                    opp = book.bid_heap
                    if not opp or price > -opp[0]:
                        seq = self._seq + 1
                        self._seq = seq
                        o = [
                            order_id,
                            account,
                            symbol,
                            SELL,
                            LIMIT,
                            tif,
                            price,
                            None,
                            qty,
                            qty,
                            0,
                            OPEN,
                            stp,
                            None,
                            seq,
                            si,
                        ]
                        shard[order_id] = o
                        levels = book.asks
                        lv = levels.get(price)
                        if lv is None:
                            levels[price] = [qty, 1, deque((o,))]
                            heappush(book.ask_heap, price)
                        else:
                            lv[0] += qty
                            lv[1] += 1
                            lv[2].append(o)
                        return [
                            (
                                EV_ACCEPTED,
                                seq,
                                ts,
                                symbol,
                                order_id,
                                account,
                                SELL,
                                LIMIT,
                                tif,
                                qty,
                                price,
                                None,
                            )
                        ]
                else:
                    return self._new_order_slow(
                        ts,
                        order_id,
                        account,
                        symbol,
                        side,
                        order_type,
                        tif,
                        qty,
                        price,
                        stop_price,
                        stp,
                        protection,
                    )
            elif (tif is not IOC and tif is not FOK) or (side is not BUY and side is not SELL):
                return self._new_order_slow(
                    ts,
                    order_id,
                    account,
                    symbol,
                    side,
                    order_type,
                    tif,
                    qty,
                    price,
                    stop_price,
                    stp,
                    protection,
                )
        else:
            if (
                (side is not BUY and side is not SELL)
                or (tif is not GTC and tif is not DAY and tif is not IOC and tif is not FOK)
                or (qty - 1) >> RANGE_BITS
            ):
                return self._new_order_slow(
                    ts,
                    order_id,
                    account,
                    symbol,
                    side,
                    order_type,
                    tif,
                    qty,
                    price,
                    stop_price,
                    stp,
                    protection,
                )
            if order_type is MARKET:
                bad = price is not None or stop_price is not None
            elif order_type is STOP:
                bad = price is not None or not _ticks_ok(stop_price)
            else:  # STOP_LIMIT, or not an order type at all
                bad = (
                    order_type is not STOP_LIMIT
                    or not _ticks_ok(price)
                    or not _ticks_ok(stop_price)
                    or protection is not None
                )
            if bad or (
                protection is not None
                and (type(protection) is not int or not 0 <= protection <= MAX_TICKS)
            ):
                return self._new_order_slow(
                    ts,
                    order_id,
                    account,
                    symbol,
                    side,
                    order_type,
                    tif,
                    qty,
                    price,
                    stop_price,
                    stp,
                    protection,
                )
        # General path: anything that may trade, trigger or wait.
        seq = self._seq + 1
        self._seq = seq
        o = [
            order_id,
            account,
            symbol,
            side,
            order_type,
            tif,
            price,
            stop_price,
            qty,
            qty,
            0,
            OPEN,
            stp,
            protection,
            seq,
            si,
        ]
        ev: list[Event] = [
            (
                EV_ACCEPTED,
                seq,
                ts,
                symbol,
                order_id,
                account,
                side,
                order_type,
                tif,
                qty,
                price,
                stop_price,
            )
        ]
        if order_type is STOP or order_type is STOP_LIMIT:
            self._arm_stop(book, shard, o, ts, ev)
            return ev
        result = self._match(book, o, shard, ts, ev, order_id, account, side, qty, price, tif, stp)
        if result is not None and (book.buy_stops or book.sell_stops):
            self._cascade(book, result[0], result[1], ts, ev)
        return ev

    def _arm_stop(
        self,
        book: Book,
        shard: dict[str | int, Order | str],
        o: Order,
        ts: int,
        ev: list[Event],
    ) -> None:
        """Park a stop, or fire it at once if the last trade price already satisfies it."""
        last = book.last_price
        stop = o[O_STOP]
        if last is not None and (last >= stop if o[O_SIDE] is BUY else last <= stop):
            self._fire(book, shard, o, last, ts, ev, cascade=True)
            return
        o[O_STATUS] = PENDING
        shard[o[O_ID]] = o
        if o[O_SIDE] is BUY:
            heappush(book.buy_stops, (stop, o[O_PRIORITY], o))
        else:
            heappush(book.sell_stops, (-stop, o[O_PRIORITY], o))

    def _new_order_slow(
        self,
        ts: Any,
        order_id: Any,
        account: Any,
        symbol: Any,
        side: Any,
        order_type: Any,
        tif: Any,
        qty: Any,
        price: Any,
        stop_price: Any,
        stp: Any,
        protection: Any,
    ) -> list[Event]:
        """Anything the fast path did not take: equal-but-not-identical enum strings (retried
        with the canonical objects), and every invalid order (rejected with its reason)."""
        c_side = _canon(side, _SIDE_SET)
        c_type = _canon(order_type, _TYPE_SET)
        c_tif = _canon(tif, _TIF_SET)
        c_stp = _canon(stp, _STP_SET)
        if (
            c_side is not None
            and c_type is not None
            and c_tif is not None
            and c_stp is not None
            and (
                c_side is not side
                or c_type is not order_type
                or c_tif is not tif
                or c_stp is not stp
            )
        ):
            return self.new_order(
                ts,
                order_id,
                account,
                symbol,
                c_side,
                c_type,
                c_tif,
                qty,
                price,
                stop_price,
                c_stp,
                protection,
            )
        reason = self._new_order_reason(
            ts,
            order_id,
            account,
            symbol,
            side,
            order_type,
            tif,
            qty,
            price,
            stop_price,
            stp,
            protection,
        )
        if reason is None:  # pragma: no cover - the fast checks and the reasons agree
            raise AssertionError("valid order refused by the fast path")
        return [self._rejected(ts, CMD_NEW_ORDER, order_id, symbol, reason)]

    def _new_order_reason(
        self,
        ts: Any,
        order_id: Any,
        account: Any,
        symbol: Any,
        side: Any,
        order_type: Any,
        tif: Any,
        qty: Any,
        price: Any,
        stop_price: Any,
        stp: Any,
        protection: Any,
    ) -> str | None:
        """The first failed check, in the documented precedence order; None if valid."""
        if type(ts) is not int:
            return REJ_INVALID_TIMESTAMP
        if not _is_id(order_id):
            return REJ_INVALID_ORDER_ID
        if type(symbol) is not str or symbol not in self._books:
            return REJ_UNKNOWN_SYMBOL
        if order_id in self._shards[hash(order_id) >> _SHARD_SHIFT & _SHARD_MASK]:
            return REJ_DUPLICATE_ORDER_ID
        if not _is_id(account):
            return REJ_INVALID_ACCOUNT
        if _canon(side, _SIDE_SET) is None:
            return REJ_INVALID_SIDE
        otype = _canon(order_type, _TYPE_SET)
        if otype is None:
            return REJ_INVALID_ORDER_TYPE
        if _canon(tif, _TIF_SET) is None:
            return REJ_INVALID_TIF
        if _canon(stp, _STP_SET) is None:
            return REJ_INVALID_STP_MODE
        if type(qty) is not int or not 0 < qty <= MAX_LOTS:
            return REJ_INVALID_QUANTITY
        if otype is LIMIT or otype is STOP_LIMIT:
            if price is None:
                return REJ_MISSING_PRICE
            if not _ticks_ok(price):
                return REJ_INVALID_PRICE
        elif price is not None:
            return REJ_UNEXPECTED_PRICE
        if otype is STOP or otype is STOP_LIMIT:
            if stop_price is None:
                return REJ_MISSING_STOP_PRICE
            if not _ticks_ok(stop_price):
                return REJ_INVALID_STOP_PRICE
        elif stop_price is not None:
            return REJ_UNEXPECTED_STOP_PRICE
        if protection is not None:
            if otype is not MARKET and otype is not STOP:
                return REJ_UNEXPECTED_PROTECTION
            if type(protection) is not int or not 0 <= protection <= MAX_TICKS:
                return REJ_INVALID_PROTECTION
        return None

    def new_order_decimal(
        self,
        ts: int,
        order_id: str | int,
        account: str | int,
        symbol: str,
        side: str,
        order_type: str,
        tif: str,
        qty: Decimal,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        stp: str = STP_NONE,
        protection: int | None = None,
    ) -> list[Event]:
        """``new_order`` with Decimal quantity/prices converted on the symbol's grids.

        Off-grid values are rejected with ``OFF_LOT_GRID``/``OFF_TICK_GRID`` (never rounded);
        non-Decimal values with the usual ``INVALID_*`` reason. Checks that precede the
        quantity check (timestamp, id, symbol, duplicate, account, enumerations) still win.
        """
        try:
            book = self._books.get(symbol)
        except TypeError:
            book = None
        if book is None:
            return self.new_order(
                ts, order_id, account, symbol, side, order_type, tif, 0, None, None, stp, protection
            )
        inst = book.instrument
        grid_reason: str | None = None
        lots: Any = qty
        ticks: Any = price
        stop_ticks: Any = stop_price
        try:
            lots = inst.qty_to_lots(qty)
        except OffGridError:
            grid_reason = REJ_OFF_LOT_GRID
        except TypeError:
            grid_reason = REJ_INVALID_QUANTITY
        if grid_reason is None and price is not None:
            try:
                ticks = inst.price_to_ticks(price)
            except OffGridError:
                grid_reason = REJ_OFF_TICK_GRID
            except TypeError:
                grid_reason = REJ_INVALID_PRICE
        if grid_reason is None and stop_price is not None:
            try:
                stop_ticks = inst.price_to_ticks(stop_price)
            except OffGridError:
                grid_reason = REJ_OFF_TICK_GRID
            except TypeError:
                grid_reason = REJ_INVALID_STOP_PRICE
        if grid_reason is not None:
            earlier = self._new_order_reason(
                ts, order_id, account, symbol, side, order_type, tif, 1, None, None, STP_NONE, None
            )
            if earlier is not None and earlier not in (REJ_MISSING_PRICE, REJ_MISSING_STOP_PRICE):
                grid_reason = earlier
            return [self._rejected(ts, CMD_NEW_ORDER, order_id, symbol, grid_reason)]
        return self.new_order(
            ts,
            order_id,
            account,
            symbol,
            side,
            order_type,
            tif,
            lots,
            ticks,
            stop_ticks,
            stp,
            protection,
        )

    # ------------------------------------------------------------------ matching
    def _match(
        self,
        book: Book,
        o: Order,
        shard: dict[str | int, Order | str],
        ts: int,
        ev: list[Event],
        oid: str | int,
        acct: str | int,
        side: str,
        rem: int,
        price: int | None,
        tif: str,
        stp: str,
    ) -> tuple[int, int] | None:
        """Run ``o`` as the aggressor, then rest or cancel its remainder.

        The caller passes the order's fields it already holds in locals (cheaper than
        re-reading them here). Returns (lowest, highest) trade price of this aggression, or
        None if nothing traded. A closed taker's record is simply dropped: only its status
        string stays in the order table.
        """
        if side is BUY:
            oheap = book.ask_heap
            olevels = book.asks
            sign = 1
        else:
            oheap = book.bid_heap
            olevels = book.bids
            sign = -1
        if price is None:
            prot = o[O_PROTECTION]
            bound = oheap[0] + prot if prot is not None and oheap else _NO_BOUND
        else:
            bound = price * sign
        seq = self._seq
        sym = book.symbol
        if tif is FOK and not _fok_fillable(olevels, bound, rem, acct, stp):
            seq += 1
            shard[oid] = CANCELLED
            ev.append((EV_CANCELLED, seq, ts, sym, oid, acct, rem, 0, CXL_FOK_UNFILLABLE))
            self._seq = seq
            return None
        shards = self._shards
        append = ev.append
        stp_on = stp is not STP_NONE
        first = last = None
        killed = False
        while rem and oheap:
            k = oheap[0]
            if k > bound:
                break
            lv = olevels[k]
            dq = lv[2]
            px = k * sign
            count = lv[1]  # live orders here; written back once per level
            before = rem  # lv[0] is reduced by (before - rem) once per level
            while True:  # the level is live: it holds at least one OPEN order
                m = dq.popleft()
                if m[11] is not OPEN:  # O_STATUS; lazily deleted (cancelled or replaced)
                    continue
                if stp_on and m[1] == acct:  # O_ACCOUNT
                    dq.appendleft(m)
                    lv[0] -= before - rem
                    lv[1] = count
                    self._seq = seq
                    rem, killed = self._self_trade(o, m, lv, rem, ts, ev)
                    before = rem
                    seq = self._seq
                    count = lv[1]
                    if killed or not count:
                        break
                    continue
                mrem = m[9]  # O_REMAINING
                if mrem <= rem:
                    mid = m[0]
                    shards[m[15]][mid] = FILLED  # O_SHARD
                    rem -= mrem
                    seq += 1
                    append((EV_TRADE, seq, ts, sym, px, mrem, side, mid, m[1], oid, acct, 0, rem))
                    last = px
                    count -= 1
                    if not count or not rem:
                        break
                else:
                    dq.appendleft(m)
                    m[9] = mrem - rem
                    seq += 1
                    append(
                        (
                            EV_TRADE,
                            seq,
                            ts,
                            sym,
                            px,
                            rem,
                            side,
                            m[0],
                            m[1],
                            oid,
                            acct,
                            mrem - rem,
                            0,
                        )
                    )
                    last = px
                    rem = 0
                    break
            if first is None:
                first = last
            if count:
                lv[0] -= before - rem
                lv[1] = count
            else:
                heappop(oheap)
                del olevels[k]
                while oheap and not olevels[oheap[0]][1]:
                    del olevels[heappop(oheap)]
            if killed:
                break
        if killed:
            shard[oid] = CANCELLED
        elif not rem:
            shard[oid] = FILLED
        elif price is None or tif is IOC or tif is FOK:
            reason = (
                CXL_PROTECTION
                if price is None and oheap and oheap[0] > bound
                else CXL_IOC_REMAINDER
            )
            seq += 1
            shard[oid] = CANCELLED
            append((EV_CANCELLED, seq, ts, sym, oid, acct, rem, 0, reason))
        else:
            o[O_REMAINING] = rem
            o[O_STATUS] = OPEN
            shard[oid] = o
            _rest(book, o)
        self._seq = seq
        if last is None:
            return None
        book.last_price = last
        assert first is not None
        return (first, last) if side is BUY else (last, first)

    def _self_trade(
        self, o: Order, m: Order, lv: Level, rem: int, ts: int, ev: list[Event]
    ) -> tuple[int, bool]:
        """Apply the taker's STP mode against same-account maker ``m`` (front of ``lv``).

        Returns the taker's new remaining quantity and whether the taker is finished.
        Event order: the maker's cancellation first, then the taker's.
        """
        stp = o[O_STP]
        sym = o[O_SYMBOL]
        mid = m[O_ID]
        mrem = m[O_REMAINING]
        seq = self._seq
        if stp is STP_DECREMENT:
            d = rem if rem < mrem else mrem
            m[O_REMAINING] = mrem - d
            m[O_CANCELLED] += d
            lv[L_QTY] -= d
            if mrem == d:
                lv[L_QUEUE].popleft()
                lv[L_COUNT] -= 1
                m[O_STATUS] = CANCELLED
                self._shards[hash(mid) >> _SHARD_SHIFT & _SHARD_MASK][mid] = CANCELLED
            seq += 1
            ev.append((EV_CANCELLED, seq, ts, sym, mid, m[O_ACCOUNT], d, mrem - d, CXL_STP))
            rem -= d
            o[O_CANCELLED] += d
            seq += 1
            ev.append((EV_CANCELLED, seq, ts, sym, o[O_ID], o[O_ACCOUNT], d, rem, CXL_STP))
            self._seq = seq
            return rem, not rem
        if stp is STP_CANCEL_OLDEST or stp is STP_CANCEL_BOTH:
            lv[L_QUEUE].popleft()
            lv[L_QTY] -= mrem
            lv[L_COUNT] -= 1
            m[O_REMAINING] = 0
            m[O_CANCELLED] += mrem
            m[O_STATUS] = CANCELLED
            self._shards[hash(mid) >> _SHARD_SHIFT & _SHARD_MASK][mid] = CANCELLED
            seq += 1
            ev.append((EV_CANCELLED, seq, ts, sym, mid, m[O_ACCOUNT], mrem, 0, CXL_STP))
            if stp is STP_CANCEL_OLDEST:
                self._seq = seq
                return rem, False
        # cancel-newest, or the taker half of cancel-both
        o[O_CANCELLED] += rem
        seq += 1
        ev.append((EV_CANCELLED, seq, ts, sym, o[O_ID], o[O_ACCOUNT], rem, 0, CXL_STP))
        self._seq = seq
        return 0, True

    # ------------------------------------------------------------------ stops
    def _fire(
        self,
        book: Book,
        shard: dict[str | int, Order | str],
        o: Order,
        trigger_price: int,
        ts: int,
        ev: list[Event],
        cascade: bool,
    ) -> tuple[int, int] | None:
        """Trigger a stop: it becomes a market (stop) or limit (stop-limit) order and runs.

        Its time priority restarts at the triggered event, which is what keeps every level's
        queue ordered by ``O_PRIORITY``.
        """
        seq = self._seq + 1
        self._seq = seq
        o[O_PRIORITY] = seq
        o[O_STATUS] = OPEN
        ev.append(
            (EV_TRIGGERED, seq, ts, book.symbol, o[O_ID], o[O_ACCOUNT], o[O_STOP], trigger_price)
        )
        result = self._match(
            book,
            o,
            shard,
            ts,
            ev,
            o[O_ID],
            o[O_ACCOUNT],
            o[O_SIDE],
            o[O_REMAINING],
            o[O_PRICE],
            o[O_TIF],
            o[O_STP],
        )
        if cascade and result is not None:
            self._cascade(book, result[0], result[1], ts, ev)
            return None
        return result

    def _cascade(self, book: Book, lo: int, hi: int, ts: int, ev: list[Event]) -> None:
        """Fire every stop that the trades in [lo, hi] triggered, and what those trigger.

        Deterministic order: stops triggered by the same aggression fire in time priority
        (``O_PRIORITY``: acceptance or last priority-losing replace); stops that those trigger
        in turn are queued behind them, again in time priority among themselves.
        """
        if not book.buy_stops and not book.sell_stops:
            return
        queue: deque[tuple[Order, int]] = deque()
        _collect_triggered(book, lo, hi, queue)
        while queue:
            o, trigger_price = queue.popleft()
            if o[O_STATUS] is not PENDING:  # pragma: no cover - nothing cancels mid-command
                continue
            oid = o[O_ID]
            shard = self._shards[hash(oid) >> _SHARD_SHIFT & _SHARD_MASK]
            result = self._fire(book, shard, o, trigger_price, ts, ev, cascade=False)
            if result is not None:
                _collect_triggered(book, result[0], result[1], queue)

    # ------------------------------------------------------------------ cancel
    def cancel(self, ts: int, order_id: str | int, account: str | int | None = None) -> list[Event]:
        """Cancel an open order (resting or pending stop).

        ``account=None`` skips the ownership check (operator action); otherwise a different
        account gets ``ACCOUNT_MISMATCH``.
        """
        try:
            shard = self._shards[hash(order_id) >> _SHARD_SHIFT & _SHARD_MASK]
            o = shard[order_id]
        except (KeyError, TypeError):
            o = None
        if (
            type(o) is not list
            or type(ts) is not int
            or (
                account is not None and account != o[1]  # O_ACCOUNT
            )
        ):
            return [
                self._rejected(
                    ts, CMD_CANCEL, order_id, None, self._order_reason(ts, order_id, account)
                )
            ]
        # The record itself is dropped (only the queue may still point at it, lazily), so
        # only its status needs to change; the order table keeps just "cancelled".
        shard[order_id] = CANCELLED
        rem = o[9]  # O_REMAINING
        sym = o[2]  # O_SYMBOL
        if o[11] is OPEN:  # O_STATUS; resting (else a pending stop: its heap entry is lazy)
            o[11] = CANCELLED
            book = self._books[sym]
            if o[3] is BUY:  # O_SIDE
                levels = book.bids
                key = -o[6]  # O_PRICE
            else:
                levels = book.asks
                key = o[6]
            lv = levels[key]
            lv[0] -= rem
            count = lv[1] - 1
            lv[1] = count
            if not count:
                heap = book.bid_heap if o[3] is BUY else book.ask_heap
                if heap[0] == key:
                    heappop(heap)
                    del levels[key]
                    while heap and not levels[heap[0]][1]:
                        del levels[heappop(heap)]
                else:
                    lv[2].clear()
            elif len(lv[2]) > (count << 2) + _COMPACT_SLACK:
                lv[2] = deque([x for x in lv[2] if x[11] is OPEN])
        else:
            o[11] = CANCELLED
        seq = self._seq + 1
        self._seq = seq
        return [(EV_CANCELLED, seq, ts, sym, order_id, o[1], rem, 0, CXL_USER)]

    def _order_reason(self, ts: Any, order_id: Any, account: Any) -> str:
        """Why a cancel/replace of ``order_id`` is refused (documented precedence)."""
        if type(ts) is not int:
            return REJ_INVALID_TIMESTAMP
        if not _is_id(order_id):
            return REJ_INVALID_ORDER_ID
        o = self._shards[hash(order_id) >> _SHARD_SHIFT & _SHARD_MASK].get(order_id)
        if o is None:
            return REJ_UNKNOWN_ORDER
        if type(o) is str:
            return REJ_ORDER_NOT_OPEN
        if account is not None and account != o[O_ACCOUNT]:
            return REJ_ACCOUNT_MISMATCH
        raise AssertionError("order is open and owned")  # pragma: no cover

    # ------------------------------------------------------------------ replace
    def replace(
        self,
        ts: int,
        order_id: str | int,
        account: str | int | None = None,
        new_qty: int | None = None,
        new_price: int | None = None,
        new_stop_price: int | None = None,
    ) -> list[Event]:
        """Amend an open order. ``new_qty`` is the new *total* quantity (FIX semantics).

        The open quantity becomes ``new_qty - filled - cancelled`` and must stay > 0
        (else ``QUANTITY_TOO_LOW``). Priority is kept only when price and stop price are
        unchanged and the open quantity does not grow; otherwise the order goes to the back
        of its (new) queue, and a new price that crosses trades at once as the aggressor.
        """
        try:
            shard = self._shards[hash(order_id) >> _SHARD_SHIFT & _SHARD_MASK]
            o = shard.get(order_id)
        except TypeError:
            o = None
        if (
            type(o) is not list
            or type(ts) is not int
            or (account is not None and account != o[O_ACCOUNT])
        ):
            return [
                self._rejected(
                    ts, CMD_REPLACE, order_id, None, self._order_reason(ts, order_id, account)
                )
            ]
        sym = o[O_SYMBOL]
        pending = o[O_STATUS] is PENDING
        reason = None
        if new_qty is not None and (type(new_qty) is not int or not 0 < new_qty <= MAX_LOTS):
            reason = REJ_INVALID_QUANTITY
        elif new_price is not None and o[O_PRICE] is None:
            reason = REJ_UNEXPECTED_PRICE
        elif new_price is not None and not _ticks_ok(new_price):
            reason = REJ_INVALID_PRICE
        elif new_stop_price is not None and not pending:
            reason = REJ_UNEXPECTED_STOP_PRICE
        elif new_stop_price is not None and not _ticks_ok(new_stop_price):
            reason = REJ_INVALID_STOP_PRICE
        qty = o[O_QTY] if new_qty is None else new_qty
        remaining = qty - o[O_QTY] + o[O_REMAINING]
        if reason is None and remaining <= 0:
            reason = REJ_QUANTITY_TOO_LOW
        if reason is not None:
            return [self._rejected(ts, CMD_REPLACE, order_id, sym, reason)]
        price = o[O_PRICE] if new_price is None else new_price
        stop = o[O_STOP] if new_stop_price is None else new_stop_price
        keep = price == o[O_PRICE] and stop == o[O_STOP] and remaining <= o[O_REMAINING]
        seq = self._seq + 1
        self._seq = seq
        ev: list[Event] = [
            (EV_REPLACED, seq, ts, sym, order_id, o[O_ACCOUNT], qty, remaining, price, stop, keep)
        ]
        book = self._books[sym]
        if keep:
            if not pending:
                if o[O_SIDE] is BUY:
                    book.bids[-o[O_PRICE]][L_QTY] -= o[O_REMAINING] - remaining
                else:
                    book.asks[o[O_PRICE]][L_QTY] -= o[O_REMAINING] - remaining
            o[O_QTY] = qty
            o[O_REMAINING] = remaining
            return ev
        # Priority lost: a fresh record takes the order's place; the old one goes stale where
        # it sits (level queue or stop heap) and is skipped there.
        n = o.copy()
        n[O_QTY] = qty
        n[O_REMAINING] = remaining
        n[O_PRICE] = price
        n[O_STOP] = stop
        n[O_PRIORITY] = seq
        o[O_STATUS] = STALE
        shard[order_id] = n
        if pending:
            self._arm_stop(book, shard, n, ts, ev)
            return ev
        _unlink(book, o, o[O_REMAINING])
        result = self._match(
            book,
            n,
            shard,
            ts,
            ev,
            order_id,
            n[O_ACCOUNT],
            n[O_SIDE],
            remaining,
            price,
            n[O_TIF],
            n[O_STP],
        )
        if result is not None:
            self._cascade(book, result[0], result[1], ts, ev)
        return ev

    # ------------------------------------------------------------------ session
    def end_of_session(self, ts: int, symbol: str | None = None) -> list[Event]:
        """Expire every DAY order (resting or pending stop) of ``symbol``, or of all symbols.

        Expiry order: time priority (``priority``), across symbols when ``symbol`` is None.
        """
        if type(ts) is not int:
            return [self._rejected(ts, CMD_END_OF_SESSION, None, None, REJ_INVALID_TIMESTAMP)]
        if symbol is not None and (type(symbol) is not str or symbol not in self._books):
            return [self._rejected(ts, CMD_END_OF_SESSION, None, symbol, REJ_UNKNOWN_SYMBOL)]
        targets = [symbol] if symbol is not None else sorted(self._books)
        victims = [o for sym in targets for o in self._books[sym].open_orders() if o[O_TIF] is DAY]
        victims.sort(key=_priority_key)
        ev: list[Event] = []
        seq = self._seq
        for o in victims:
            oid = o[O_ID]
            rem = o[O_REMAINING]
            status = o[O_STATUS]
            self._shards[hash(oid) >> _SHARD_SHIFT & _SHARD_MASK][oid] = CANCELLED
            o[O_REMAINING] = 0
            o[O_CANCELLED] += rem
            o[O_STATUS] = CANCELLED
            if status is OPEN:
                _unlink(self._books[o[O_SYMBOL]], o, rem)
            seq += 1
            ev.append((EV_CANCELLED, seq, ts, o[O_SYMBOL], oid, o[O_ACCOUNT], rem, 0, CXL_EXPIRED))
        for sym in targets:
            _compact_stops(self._books[sym])
        seq += 1
        self._seq = seq
        ev.append((EV_SESSION_ENDED, seq, ts, symbol, len(victims)))
        return ev

    def add_instrument(
        self, ts: int, symbol: str, tick_size: Decimal, lot_size: Decimal
    ) -> list[Event]:
        """Create the book for a new symbol (a command, so the worker journals it)."""
        if type(ts) is not int:
            return [self._rejected(ts, CMD_ADD_INSTRUMENT, None, None, REJ_INVALID_TIMESTAMP)]
        if type(symbol) is not str or not symbol:
            return [self._rejected(ts, CMD_ADD_INSTRUMENT, None, None, REJ_INVALID_SYMBOL)]
        if symbol in self._books:
            return [self._rejected(ts, CMD_ADD_INSTRUMENT, None, symbol, REJ_DUPLICATE_SYMBOL)]
        try:
            inst = Instrument(symbol, tick_size, lot_size)
        except (TypeError, ValueError):
            return [self._rejected(ts, CMD_ADD_INSTRUMENT, None, symbol, REJ_INVALID_INSTRUMENT)]
        self._books[symbol] = Book(inst)
        seq = self._seq + 1
        self._seq = seq
        return [(EV_INSTRUMENT_ADDED, seq, ts, symbol, str(inst.tick_size), str(inst.lot_size))]

    def _rejected(
        self, ts: Any, command: str | None, order_id: Any, symbol: Any, reason: str
    ) -> Event:
        seq = self._seq + 1
        self._seq = seq
        return (
            EV_REJECTED,
            seq,
            ts if type(ts) is int else None,
            command,
            _safe_id(order_id),
            symbol if type(symbol) is str else None,
            reason,
        )

    # ================================================================== queries
    @property
    def seq(self) -> int:
        """Sequence number of the last event emitted (0 before the first)."""
        return self._seq

    def symbols(self) -> list[str]:
        return sorted(self._books)

    def instrument(self, symbol: str) -> Instrument:
        """KeyError for an unknown symbol (as for every per-symbol query)."""
        return self._books[symbol].instrument

    def quote(self, symbol: str) -> Quote:
        """Best bid/offer with aggregated quantity."""
        return self._books[symbol].quote()

    def depth(self, symbol: str, levels: int | None = 10) -> Depth:
        """Top ``levels`` aggregated price levels per side (None = all), best first."""
        return self._books[symbol].depth(levels)

    def top_orders(self, symbol: str, side: str, n: int = 10) -> list[OrderView]:
        """The first ``n`` resting orders of ``side`` in matching priority (queue position)."""
        return [order_view(o) for o in self._books[symbol].top_orders(side == BUY, n)]

    def last_price(self, symbol: str) -> int | None:
        return self._books[symbol].last_price

    def order(self, order_id: str | int) -> OrderView | None:
        """Full state of an open order (resting or pending stop); None otherwise."""
        o = self._lookup(order_id)
        return order_view(o) if type(o) is list else None

    def order_status(self, order_id: str | int) -> str | None:
        """``pending``/``open``/``filled``/``cancelled`` for any order ever accepted, else None.

        Closed orders are remembered by id and final status only; their history is in the
        events (trade/cancelled) the engine emitted.
        """
        o = self._lookup(order_id)
        if o is None or type(o) is str:
            return o
        return o[O_STATUS]

    def _lookup(self, order_id: Any) -> Order | str | None:
        if not _is_id(order_id):
            return None
        return self._shards[hash(order_id) >> _SHARD_SHIFT & _SHARD_MASK].get(order_id)

    def open_orders(self, account: str | int | None = None) -> list[OrderView]:
        """Resting and pending-stop orders (of ``account``, or all), in time priority."""
        mine = [
            o
            for b in self._books.values()
            for o in b.open_orders()
            if account is None or o[O_ACCOUNT] == account
        ]
        mine.sort(key=_priority_key)
        return [order_view(o) for o in mine]

    # ================================================================== persistence
    def snapshot(self) -> bytes:
        """Full logical state as canonical JSON bytes (sorted keys, no whitespace).

        Lazily-deleted entries are not part of the logical state, so two engines that
        behave identically from here on have identical snapshots.
        """
        books = []
        for sym in sorted(self._books):
            b = self._books[sym]
            books.append(
                {
                    "symbol": sym,
                    "tick_size": str(b.instrument.tick_size),
                    "lot_size": str(b.instrument.lot_size),
                    "last_price": b.last_price,
                    "bids": [o[O_ID] for o in b.resting_orders(True)],
                    "asks": [o[O_ID] for o in b.resting_orders(False)],
                    "buy_stops": [o[O_ID] for o in b.pending_stops(True)],
                    "sell_stops": [o[O_ID] for o in b.pending_stops(False)],
                }
            )
        open_orders = [o for b in self._books.values() for o in b.open_orders()]
        open_orders.sort(key=_priority_key)
        records = [order_record(o) for o in open_orders]
        closed = [
            [oid, st] for shard in self._shards for oid, st in shard.items() if type(st) is str
        ]
        closed.sort(key=lambda item: _id_key(item[0]))
        doc = {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "seq": self._seq,
            "order_fields": list(ORDER_FIELDS),
            "open_orders": records,
            "closed_orders": closed,
            "books": books,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
            "ascii"
        )

    def state_hash(self) -> str:
        """sha256 (hex) of ``snapshot()``: equal hashes <=> equal logical state."""
        return hashlib.sha256(self.snapshot()).hexdigest()

    @classmethod
    def restore(cls, data: bytes | str) -> Engine:
        """Rebuild an engine from ``snapshot()`` output. ValueError if it is malformed."""
        try:
            return cls._restore(json.loads(data))
        except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
            raise ValueError(f"malformed engine snapshot: {exc}") from exc

    @classmethod
    def _restore(cls, doc: dict[str, Any]) -> Engine:
        if doc.get("format") != SNAPSHOT_FORMAT or doc.get("version") != SNAPSHOT_VERSION:
            raise ValueError("not an engine snapshot of a supported version")
        if doc["order_fields"] != list(ORDER_FIELDS):
            raise ValueError("snapshot order layout does not match this engine")
        eng = cls()
        eng._seq = int(doc["seq"])
        for b in doc["books"]:
            inst = Instrument(b["symbol"], Decimal(b["tick_size"]), Decimal(b["lot_size"]))
            book = Book(inst)
            book.last_price = b["last_price"]
            eng._books[inst.symbol] = book
        by_id: dict[str | int, Order] = {}
        for oid, status in doc["closed_orders"]:
            if status != FILLED and status != CANCELLED:
                raise ValueError(f"bad closed status {status!r}")
            eng._shards[hash(oid) >> _SHARD_SHIFT & _SHARD_MASK][oid] = _CANON[status]
        for rec in doc["open_orders"]:
            o: Order = list(rec)
            if len(o) != len(ORDER_FIELDS):
                raise ValueError(f"bad order record {rec!r}")
            for i in (O_SIDE, O_TYPE, O_TIF, O_STATUS, O_STP):
                o[i] = _CANON[o[i]]
            oid = o[O_ID]
            si = hash(oid) >> _SHARD_SHIFT & _SHARD_MASK
            o.append(si)  # O_SHARD
            shard = eng._shards[si]
            if oid in shard:
                raise ValueError(f"duplicate order id {oid!r} in snapshot")
            by_id[oid] = o
            shard[oid] = o
        placed = 0
        for b in doc["books"]:
            book = eng._books[b["symbol"]]
            for name, want_side in (("bids", BUY), ("asks", SELL)):
                for oid in b[name]:
                    o = by_id[oid]
                    if o[O_STATUS] is not OPEN or o[O_SIDE] is not want_side:
                        raise ValueError(f"order {oid!r} cannot rest in {name}")
                    _rest(book, o)
                    placed += 1
            for name, want_side in (("buy_stops", BUY), ("sell_stops", SELL)):
                for oid in b[name]:
                    o = by_id[oid]
                    if o[O_STATUS] is not PENDING or o[O_SIDE] is not want_side:
                        raise ValueError(f"order {oid!r} is not a pending {name[:-1]}")
                    if want_side is BUY:
                        heappush(book.buy_stops, (o[O_STOP], o[O_PRIORITY], o))
                    else:
                        heappush(book.sell_stops, (-o[O_STOP], o[O_PRIORITY], o))
                    placed += 1
        if placed != len(by_id):
            raise ValueError("snapshot books do not hold exactly the open orders")
        return eng


# ====================================================================== book helpers
def _rest(book: Book, o: Order) -> None:
    """Append ``o`` (status OPEN) to the back of its price level."""
    qty = o[O_REMAINING]
    if o[O_SIDE] is BUY:
        levels = book.bids
        key = -o[O_PRICE]
        heap = book.bid_heap
    else:
        levels = book.asks
        key = o[O_PRICE]
        heap = book.ask_heap
    lv = levels.get(key)
    if lv is None:
        levels[key] = [qty, 1, deque((o,))]
        heappush(heap, key)
    else:
        lv[L_QTY] += qty
        lv[L_COUNT] += 1
        lv[L_QUEUE].append(o)


def _unlink(book: Book, o: Order, qty: int) -> None:
    """Take a resting order (already marked not-OPEN) with open ``qty`` out of its level.

    The queue entry stays (lazy deletion) unless the level empties or is mostly garbage.
    Keeps "the top of each heap is a live level" true.
    """
    if o[O_SIDE] is BUY:
        levels = book.bids
        key = -o[O_PRICE]
        heap = book.bid_heap
    else:
        levels = book.asks
        key = o[O_PRICE]
        heap = book.ask_heap
    lv = levels[key]
    lv[L_QTY] -= qty
    count = lv[L_COUNT] - 1
    lv[L_COUNT] = count
    if not count:
        if heap[0] == key:
            heappop(heap)
            del levels[key]
            while heap and not levels[heap[0]][L_COUNT]:
                del levels[heappop(heap)]
        else:
            lv[L_QUEUE].clear()
    elif len(lv[L_QUEUE]) > (count << 2) + _COMPACT_SLACK:
        lv[L_QUEUE] = deque([x for x in lv[L_QUEUE] if x[O_STATUS] is OPEN])


def _collect_triggered(book: Book, lo: int, hi: int, queue: deque[tuple[Order, int]]) -> None:
    """Pop stops triggered by trades in [lo, hi] and queue them in time priority."""
    found: list[tuple[Order, int]] = []
    stops = book.buy_stops
    while stops and stops[0][0] <= hi:
        o = heappop(stops)[2]
        if o[O_STATUS] is PENDING:
            found.append((o, hi))
    stops = book.sell_stops
    while stops and -stops[0][0] >= lo:
        o = heappop(stops)[2]
        if o[O_STATUS] is PENDING:
            found.append((o, lo))
    if found:
        found.sort(key=_found_key)
        queue.extend(found)


def _found_key(item: tuple[Order, int]) -> int:
    key: int = item[0][O_PRIORITY]
    return key


def _stop_entry_key(entry: tuple[int, int, Order]) -> tuple[int, int]:
    return entry[0], entry[1]


def _compact_stops(book: Book) -> None:
    """Drop cancelled/stale entries from the stop heaps (called at end of session)."""
    for buy in (True, False):
        heap = book.buy_stops if buy else book.sell_stops
        live = [e for e in heap if e[2][O_STATUS] is PENDING]
        if len(live) != len(heap):
            live.sort(key=_stop_entry_key)  # a sorted list is a valid heap
            if buy:
                book.buy_stops = live
            else:
                book.sell_stops = live


__all__ = ["SNAPSHOT_FORMAT", "SNAPSHOT_VERSION", "Engine"]
