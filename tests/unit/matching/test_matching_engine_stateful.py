"""Random command sequences: the engine against a deliberately naive reference model.

The model below shares no code with the engine (only the vocabulary strings): it keeps every
order in one dict and, for every aggression, sorts the opposite side from scratch. It is slow
and obviously correct; the engine is fast and clever. After every command the two must agree
on the exact event bytes, the BBO, the full L2 depth, every order's state and the open orders
of every account, and the engine's invariants must hold.
"""

from __future__ import annotations

import os
import random
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from apps.matching.engine import Engine, event_to_json

MAX = 1 << 62
SYMBOLS = ("AAA", "BBB")
ACCOUNTS = ("acc1", "acc2", "acc3")
SIDES = ("buy", "sell")
TYPES = ("limit", "market", "stop", "stop_limit")
TIFS = ("GTC", "DAY", "IOC", "FOK")
STPS = ("none", "cancel_newest", "cancel_oldest", "cancel_both", "decrement")

Ev = tuple[Any, ...]


# ============================================================================ reference model
@dataclass
class MOrder:
    oid: Any
    account: Any
    symbol: str
    side: str
    otype: str
    tif: str
    price: int | None
    stop: int | None
    qty: int
    remaining: int
    cancelled: int
    status: str  # pending / open / filled / cancelled / active (while aggressing)
    stp: str
    protection: int | None
    priority: int

    @property
    def filled(self) -> int:
        return self.qty - self.remaining - self.cancelled


def _is_id(v: object) -> bool:
    return type(v) in (str, int)


def _tick_ok(v: object) -> bool:
    return type(v) is int and 0 < v <= MAX


class Model:
    def __init__(self) -> None:
        self.seq = 0
        self.instruments: dict[str, tuple[str, str]] = {}
        self.last: dict[str, int | None] = {}
        self.orders: dict[Any, MOrder] = {}
        self.out: list[Ev] = []

    # ---------------------------------------------------------------- helpers
    def emit(self, kind: str, *fields: Any) -> None:
        self.seq += 1
        self.out.append((kind, self.seq, *fields))

    def reject(self, ts: Any, command: str, oid: Any, symbol: Any, reason: str) -> None:
        self.emit(
            "rejected",
            ts if type(ts) is int else None,
            command,
            oid if _is_id(oid) else None,
            symbol if type(symbol) is str else None,
            reason,
        )

    def resting(self, symbol: str, side: str) -> list[MOrder]:
        """Open orders of one side, best first (price, then time priority)."""
        os_ = [
            o
            for o in self.orders.values()
            if o.status == "open" and o.symbol == symbol and o.side == side
        ]
        if side == "buy":
            os_.sort(key=lambda o: (-(o.price or 0), o.priority))
        else:
            os_.sort(key=lambda o: (o.price or 0, o.priority))
        return os_

    def take(self) -> list[Ev]:
        out, self.out = self.out, []
        return out

    # ---------------------------------------------------------------- commands
    def add_instrument(self, ts: Any, symbol: Any, tick: Any, lot: Any) -> list[Ev]:
        if type(ts) is not int:
            self.reject(ts, "add_instrument", None, None, "INVALID_TIMESTAMP")
        elif type(symbol) is not str or not symbol:
            self.reject(ts, "add_instrument", None, None, "INVALID_SYMBOL")
        elif symbol in self.instruments:
            self.reject(ts, "add_instrument", None, symbol, "DUPLICATE_SYMBOL")
        elif not all(isinstance(x, Decimal) and x.is_finite() and x > 0 for x in (tick, lot)):
            self.reject(ts, "add_instrument", None, symbol, "INVALID_INSTRUMENT")
        else:
            self.instruments[symbol] = (str(tick), str(lot))
            self.last[symbol] = None
            self.emit("instrument_added", ts, symbol, str(tick), str(lot))
        return self.take()

    def new_order_reason(
        self,
        ts: Any,
        oid: Any,
        account: Any,
        symbol: Any,
        side: Any,
        otype: Any,
        tif: Any,
        qty: Any,
        price: Any,
        stop: Any,
        stp: Any,
        protection: Any,
    ) -> str | None:
        if type(ts) is not int:
            return "INVALID_TIMESTAMP"
        if not _is_id(oid):
            return "INVALID_ORDER_ID"
        if type(symbol) is not str or symbol not in self.instruments:
            return "UNKNOWN_SYMBOL"
        if oid in self.orders:
            return "DUPLICATE_ORDER_ID"
        if not _is_id(account):
            return "INVALID_ACCOUNT"
        if side not in SIDES:
            return "INVALID_SIDE"
        if otype not in TYPES:
            return "INVALID_ORDER_TYPE"
        if tif not in TIFS:
            return "INVALID_TIF"
        if stp not in STPS:
            return "INVALID_STP_MODE"
        if type(qty) is not int or not 0 < qty <= MAX:
            return "INVALID_QUANTITY"
        if otype in ("limit", "stop_limit"):
            if price is None:
                return "MISSING_PRICE"
            if not _tick_ok(price):
                return "INVALID_PRICE"
        elif price is not None:
            return "UNEXPECTED_PRICE"
        if otype in ("stop", "stop_limit"):
            if stop is None:
                return "MISSING_STOP_PRICE"
            if not _tick_ok(stop):
                return "INVALID_STOP_PRICE"
        elif stop is not None:
            return "UNEXPECTED_STOP_PRICE"
        if protection is not None:
            if otype not in ("market", "stop"):
                return "UNEXPECTED_PROTECTION"
            if type(protection) is not int or not 0 <= protection <= MAX:
                return "INVALID_PROTECTION"
        return None

    def new_order(
        self,
        ts: Any,
        oid: Any,
        account: Any,
        symbol: Any,
        side: Any,
        otype: Any,
        tif: Any,
        qty: Any,
        price: Any = None,
        stop: Any = None,
        stp: Any = "none",
        protection: Any = None,
    ) -> list[Ev]:
        reason = self.new_order_reason(
            ts, oid, account, symbol, side, otype, tif, qty, price, stop, stp, protection
        )
        if reason is not None:
            self.reject(ts, "new_order", oid, symbol, reason)
            return self.take()
        self.emit("accepted", ts, symbol, oid, account, side, otype, tif, qty, price, stop)
        o = MOrder(
            oid,
            account,
            symbol,
            side,
            otype,
            tif,
            price,
            stop,
            qty,
            qty,
            0,
            "active",
            stp,
            protection,
            self.seq,
        )
        self.orders[oid] = o
        if otype in ("stop", "stop_limit"):
            self.arm(o, ts)
        else:
            self.cascade(symbol, self.execute(o, ts), ts)
        return self.take()

    def arm(self, o: MOrder, ts: int) -> None:
        last = self.last[o.symbol]
        assert o.stop is not None
        if last is not None and (last >= o.stop if o.side == "buy" else last <= o.stop):
            self.cascade(o.symbol, self.fire(o, last, ts), ts)
        else:
            o.status = "pending"

    def fire(self, o: MOrder, trigger_price: int, ts: int) -> list[int]:
        self.emit("triggered", ts, o.symbol, o.oid, o.account, o.stop, trigger_price)
        o.priority = self.seq
        o.status = "active"
        return self.execute(o, ts)

    def cascade(self, symbol: str, prices: list[int], ts: int) -> None:
        queue: deque[tuple[MOrder, int]] = deque()
        queued: set[Any] = set()

        def collect(prices: list[int]) -> None:
            if not prices:
                return
            lo, hi = min(prices), max(prices)
            found = []
            for s in self.orders.values():
                if s.status != "pending" or s.symbol != symbol or s.oid in queued:
                    continue
                assert s.stop is not None
                if s.side == "buy" and s.stop <= hi:
                    found.append((s, hi))
                elif s.side == "sell" and s.stop >= lo:
                    found.append((s, lo))
            found.sort(key=lambda x: x[0].priority)
            for s, p in found:
                queued.add(s.oid)
                queue.append((s, p))

        collect(prices)
        while queue:
            s, p = queue.popleft()
            collect(self.fire(s, p, ts))

    def execute(self, o: MOrder, ts: int) -> list[int]:
        """Aggress with ``o``; rest or cancel its remainder. Returns trade prices."""
        other = "sell" if o.side == "buy" else "buy"
        book = self.resting(o.symbol, other)
        limit = o.price
        if limit is None and o.protection is not None and book:
            best = book[0].price
            assert best is not None
            limit = best + o.protection if o.side == "buy" else best - o.protection

        def acceptable(m: MOrder) -> bool:
            assert m.price is not None
            if limit is None:
                return True
            return m.price <= limit if o.side == "buy" else m.price >= limit

        candidates = [m for m in book if acceptable(m)]
        if o.tif == "FOK":
            need = o.remaining
            ok = False
            for m in candidates:
                if o.stp != "none" and m.account == o.account:
                    if o.stp == "cancel_oldest":
                        continue
                    break
                need -= m.remaining
                if need <= 0:
                    ok = True
                    break
            if not ok:
                self.emit(
                    "cancelled", ts, o.symbol, o.oid, o.account, o.remaining, 0, "FOK_UNFILLABLE"
                )
                o.cancelled += o.remaining
                o.remaining = 0
                o.status = "cancelled"
                return []
        prices: list[int] = []
        killed = False
        for m in candidates:
            if o.remaining == 0 or killed:
                break
            if o.stp != "none" and m.account == o.account:
                if o.stp == "decrement":
                    d = min(o.remaining, m.remaining)
                    m.remaining -= d
                    m.cancelled += d
                    if m.remaining == 0:
                        m.status = "cancelled"
                    self.emit("cancelled", ts, o.symbol, m.oid, m.account, d, m.remaining, "STP")
                    o.remaining -= d
                    o.cancelled += d
                    self.emit("cancelled", ts, o.symbol, o.oid, o.account, d, o.remaining, "STP")
                    if o.remaining == 0:
                        killed = True
                    continue
                if o.stp in ("cancel_oldest", "cancel_both"):
                    self.emit("cancelled", ts, o.symbol, m.oid, m.account, m.remaining, 0, "STP")
                    m.cancelled += m.remaining
                    m.remaining = 0
                    m.status = "cancelled"
                    if o.stp == "cancel_oldest":
                        continue
                self.emit("cancelled", ts, o.symbol, o.oid, o.account, o.remaining, 0, "STP")
                o.cancelled += o.remaining
                o.remaining = 0
                killed = True
                continue
            q = min(o.remaining, m.remaining)
            m.remaining -= q
            o.remaining -= q
            if m.remaining == 0:
                m.status = "filled"
            assert m.price is not None
            self.emit(
                "trade",
                ts,
                o.symbol,
                m.price,
                q,
                o.side,
                m.oid,
                m.account,
                o.oid,
                o.account,
                m.remaining,
                o.remaining,
            )
            prices.append(m.price)
        if killed:
            o.status = "cancelled"
        elif o.remaining == 0:
            o.status = "filled"
        elif o.price is None or o.tif in ("IOC", "FOK"):
            reason = "IOC_REMAINDER"
            if o.price is None and o.protection is not None and self.resting(o.symbol, other):
                reason = "PROTECTION"
            self.emit("cancelled", ts, o.symbol, o.oid, o.account, o.remaining, 0, reason)
            o.cancelled += o.remaining
            o.remaining = 0
            o.status = "cancelled"
        else:
            o.status = "open"
        if prices:
            self.last[o.symbol] = prices[-1]
        return prices

    def order_reason(self, ts: Any, oid: Any, account: Any) -> str | None:
        if type(ts) is not int:
            return "INVALID_TIMESTAMP"
        if not _is_id(oid):
            return "INVALID_ORDER_ID"
        o = self.orders.get(oid)
        if o is None:
            return "UNKNOWN_ORDER"
        if o.status not in ("open", "pending"):
            return "ORDER_NOT_OPEN"
        if account is not None and account != o.account:
            return "ACCOUNT_MISMATCH"
        return None

    def cancel(self, ts: Any, oid: Any, account: Any = None) -> list[Ev]:
        reason = self.order_reason(ts, oid, account)
        if reason is not None:
            self.reject(ts, "cancel", oid, None, reason)
            return self.take()
        o = self.orders[oid]
        self.emit("cancelled", ts, o.symbol, oid, o.account, o.remaining, 0, "USER")
        o.cancelled += o.remaining
        o.remaining = 0
        o.status = "cancelled"
        return self.take()

    def replace(
        self,
        ts: Any,
        oid: Any,
        account: Any = None,
        new_qty: Any = None,
        new_price: Any = None,
        new_stop: Any = None,
    ) -> list[Ev]:
        reason = self.order_reason(ts, oid, account)
        if reason is not None:
            self.reject(ts, "replace", oid, None, reason)
            return self.take()
        o = self.orders[oid]
        qty = o.qty if new_qty is None else new_qty
        reason = None
        if new_qty is not None and (type(new_qty) is not int or not 0 < new_qty <= MAX):
            reason = "INVALID_QUANTITY"
        elif new_price is not None and o.price is None:
            reason = "UNEXPECTED_PRICE"
        elif new_price is not None and not _tick_ok(new_price):
            reason = "INVALID_PRICE"
        elif new_stop is not None and o.status != "pending":
            reason = "UNEXPECTED_STOP_PRICE"
        elif new_stop is not None and not _tick_ok(new_stop):
            reason = "INVALID_STOP_PRICE"
        elif qty - o.filled - o.cancelled <= 0:
            reason = "QUANTITY_TOO_LOW"
        if reason is not None:
            self.reject(ts, "replace", oid, o.symbol, reason)
            return self.take()
        remaining = qty - o.filled - o.cancelled
        price = o.price if new_price is None else new_price
        stop = o.stop if new_stop is None else new_stop
        keep = price == o.price and stop == o.stop and remaining <= o.remaining
        self.emit("replaced", ts, o.symbol, oid, o.account, qty, remaining, price, stop, keep)
        o.qty, o.remaining, o.price, o.stop = qty, remaining, price, stop
        if keep:
            return self.take()
        o.priority = self.seq
        if o.status == "pending":
            self.arm(o, ts)
        else:
            o.status = "active"
            self.cascade(o.symbol, self.execute(o, ts), ts)
        return self.take()

    def end_of_session(self, ts: Any, symbol: Any = None) -> list[Ev]:
        if type(ts) is not int:
            self.reject(ts, "end_of_session", None, None, "INVALID_TIMESTAMP")
            return self.take()
        if symbol is not None and symbol not in self.instruments:
            self.reject(ts, "end_of_session", None, symbol, "UNKNOWN_SYMBOL")
            return self.take()
        victims = sorted(
            (
                o
                for o in self.orders.values()
                if o.status in ("open", "pending")
                and o.tif == "DAY"
                and (symbol is None or o.symbol == symbol)
            ),
            key=lambda o: o.priority,
        )
        for o in victims:
            self.emit("cancelled", ts, o.symbol, o.oid, o.account, o.remaining, 0, "EXPIRED")
            o.cancelled += o.remaining
            o.remaining = 0
            o.status = "cancelled"
        self.emit("session_ended", ts, symbol, len(victims))
        return self.take()

    # ---------------------------------------------------------------- queries
    def depth(self, symbol: str, side: str) -> list[tuple[int, int, int]]:
        agg: dict[int, list[int]] = {}
        for o in self.resting(symbol, side):
            assert o.price is not None
            a = agg.setdefault(o.price, [0, 0])
            a[0] += o.remaining
            a[1] += 1
        return [(p, q, c) for p, (q, c) in agg.items()]  # insertion order = best first


# ============================================================================ state machine
prices = st.integers(97, 103)
qtys = st.integers(1, 8)


class EngineVsModel(RuleBasedStateMachine):
    sequences = 0

    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine()
        self.model = Model()
        self.ts = 0
        self.next_id = 1
        self.ids: list[Any] = []

    def tick(self) -> int:
        self.ts += 1
        return self.ts

    def both(self, method: str, *args: Any) -> None:
        got = getattr(self.engine, method)(*args)
        want = getattr(self.model, method)(*args)
        assert [event_to_json(e) for e in got] == [event_to_json(e) for e in want], (
            f"{method}{args}:\n engine={got}\n model ={want}"
        )

    @initialize()
    def instruments(self) -> None:
        EngineVsModel.sequences += 1
        for sym in SYMBOLS:
            self.both("add_instrument", self.tick(), sym, Decimal("0.01"), Decimal("1"))

    # ---------------------------------------------------------------- rules
    @rule(
        data=st.data(),
        side=st.sampled_from(SIDES),
        otype=st.sampled_from((*TYPES, "limit", "limit", "limit")),
        tif=st.sampled_from((*TIFS, "GTC", "GTC", "DAY")),
        stp=st.sampled_from(STPS),
        qty=qtys,
        account=st.sampled_from(ACCOUNTS),
        symbol=st.sampled_from(SYMBOLS),
    )
    def new_order(
        self,
        data: st.DataObject,
        side: str,
        otype: str,
        tif: str,
        stp: str,
        qty: int,
        account: str,
        symbol: str,
    ) -> None:
        price = data.draw(prices) if otype in ("limit", "stop_limit") else None
        stop = data.draw(prices) if otype in ("stop", "stop_limit") else None
        protection = (
            data.draw(st.none() | st.integers(0, 3)) if otype in ("market", "stop") else None
        )
        oid: Any = self.next_id if data.draw(st.booleans()) else f"o{self.next_id}"
        self.next_id += 1
        self.ids.append(oid)
        self.both(
            "new_order",
            self.tick(),
            oid,
            account,
            symbol,
            side,
            otype,
            tif,
            qty,
            price,
            stop,
            stp,
            protection,
        )

    @rule(
        side=st.sampled_from(SIDES),
        tif=st.sampled_from(("GTC", "GTC", "DAY", "IOC")),
        stp=st.sampled_from(STPS),
        qty=qtys,
        account=st.sampled_from(ACCOUNTS),
        price=prices,
    )
    def limit_order(
        self, side: str, tif: str, stp: str, qty: int, account: str, price: int
    ) -> None:
        # The bread and butter, weighted up so books get deep and trade often.
        oid = self.next_id
        self.next_id += 1
        self.ids.append(oid)
        self.both(
            "new_order",
            self.tick(),
            oid,
            account,
            "AAA",
            side,
            "limit",
            tif,
            qty,
            price,
            None,
            stp,
            None,
        )

    @rule(
        data=st.data(),
        side=st.sampled_from(SIDES),
        tif=st.sampled_from(TIFS),
        stp=st.sampled_from(STPS),
        qty=st.integers(1, 15),
        account=st.sampled_from(ACCOUNTS),
        symbol=st.sampled_from(SYMBOLS),
    )
    def crossing_order(
        self,
        data: st.DataObject,
        side: str,
        tif: str,
        stp: str,
        qty: int,
        account: str,
        symbol: str,
    ) -> None:
        # Priced at or through the opposite best, so it trades (or meets STP / FOK rules).
        other = self.model.resting(symbol, "sell" if side == "buy" else "buy")
        if other:
            best = other[0].price
            assert best is not None
            through = data.draw(st.integers(0, 2))
            price = best + through if side == "buy" else max(best - through, 1)
        else:
            price = data.draw(prices)
        oid = self.next_id
        self.next_id += 1
        self.ids.append(oid)
        self.both(
            "new_order",
            self.tick(),
            oid,
            account,
            symbol,
            side,
            "limit",
            tif,
            qty,
            price,
            None,
            stp,
            None,
        )

    @rule(
        data=st.data(),
        side=st.sampled_from(SIDES),
        limit=st.booleans(),
        tif=st.sampled_from(TIFS),
        qty=qtys,
        account=st.sampled_from(ACCOUNTS),
        stp=st.sampled_from(STPS),
    )
    def stop_order(
        self,
        data: st.DataObject,
        side: str,
        limit: bool,
        tif: str,
        qty: int,
        account: str,
        stp: str,
    ) -> None:
        oid = self.next_id
        self.next_id += 1
        self.ids.append(oid)
        stop = data.draw(prices)
        price = data.draw(prices) if limit else None
        protection = None if limit else data.draw(st.none() | st.integers(0, 2))
        self.both(
            "new_order",
            self.tick(),
            oid,
            account,
            "AAA",
            side,
            "stop_limit" if limit else "stop",
            tif,
            qty,
            price,
            stop,
            stp,
            protection,
        )

    @rule(data=st.data(), which=st.integers(0, 2))
    def misc(self, data: st.DataObject, which: int) -> None:
        """Rarer commands: end of session, malformed orders, cancels of bogus ids."""
        if which == 0:
            symbol = data.draw(st.sampled_from((None, *SYMBOLS, "ZZZ")))
            self.both("end_of_session", self.tick(), symbol)
        elif which == 1:
            self.bad_new_order(data)
        else:
            oid = data.draw(st.sampled_from((999_999, "nope", 1.5, None, (1, 2))))
            self.both("cancel", self.tick(), oid, None)

    def bad_new_order(self, data: st.DataObject) -> None:
        args: list[Any] = [
            self.tick(),
            self.next_id,
            "acc1",
            "AAA",
            "buy",
            "limit",
            "GTC",
            5,
            100,
            None,
            "none",
            None,
        ]
        self.next_id += 1
        field = data.draw(st.integers(0, 11))
        bad = data.draw(
            st.sampled_from(
                [
                    None,
                    0,
                    -1,
                    1.5,
                    "x",
                    "",
                    True,
                    10**30,
                    ["list"],
                    "ZZZ",
                    99,
                    "sell",
                    "stop",
                ]
            )
        )
        dup = data.draw(st.booleans())
        if field == 1 and self.ids and dup:
            bad = data.draw(st.sampled_from(self.ids))  # duplicate id
        args[field] = bad
        self.both("new_order", *args)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), owner=st.integers(0, 3).map(bool))
    def cancel(self, data: st.DataObject, owner: bool) -> None:
        oid = self._pick(data)
        account = self._account(data, oid, owner)
        self.both("cancel", self.tick(), oid, account)

    @precondition(lambda self: self.ids)
    @rule(
        data=st.data(),
        owner=st.integers(0, 3).map(bool),
        new_qty=st.none() | st.integers(-1, 12),
        new_price=st.none() | prices,
        new_stop=st.none() | prices,
    )
    def replace(
        self,
        data: st.DataObject,
        owner: bool,
        new_qty: int | None,
        new_price: int | None,
        new_stop: int | None,
    ) -> None:
        oid = self._pick(data)
        account = self._account(data, oid, owner)
        self.both("replace", self.tick(), oid, account, new_qty, new_price, new_stop)

    def _pick(self, data: st.DataObject) -> Any:
        """Mostly an open order (that is where the interesting cases are), else any id."""
        live = [o.oid for o in self.model.orders.values() if o.status in ("open", "pending")]
        prefer_live = data.draw(st.integers(0, 4)) > 0
        if live and prefer_live:
            return data.draw(st.sampled_from(live))
        return data.draw(st.sampled_from(self.ids))

    def _account(self, data: st.DataObject, oid: Any, owner: bool) -> Any:
        if owner:
            o = self.model.orders.get(oid)
            return o.account if o is not None else "acc1"
        return data.draw(st.sampled_from((None, *ACCOUNTS)))

    # ---------------------------------------------------------------- checks
    @invariant()
    def same_state(self) -> None:
        assert_same_state(self.engine, self.model)


def assert_same_state(eng: Engine, model: Model) -> None:
    assert eng.seq == model.seq
    for sym in model.instruments:
        bids = model.depth(sym, "buy")
        asks = model.depth(sym, "sell")
        depth = eng.depth(sym, None)
        assert [tuple(x) for x in depth.bids] == bids
        assert [tuple(x) for x in depth.asks] == asks
        assert [tuple(x) for x in eng.depth(sym, 2).bids] == bids[:2]
        q = eng.quote(sym)
        assert (q.bid, q.bid_qty) == ((bids[0][0], bids[0][1]) if bids else (None, 0))
        assert (q.ask, q.ask_qty) == ((asks[0][0], asks[0][1]) if asks else (None, 0))
        if q.bid is not None and q.ask is not None:
            assert q.bid < q.ask, "crossed book"
        assert eng.last_price(sym) == model.last[sym]
    for oid, mo in model.orders.items():
        assert mo.qty == mo.filled + mo.remaining + mo.cancelled
        assert eng.order_status(oid) == mo.status
        view = eng.order(oid)
        if mo.status in ("open", "pending"):
            assert view is not None
            assert (
                view.qty,
                view.remaining,
                view.filled,
                view.cancelled,
                view.price,
                view.stop_price,
                view.priority,
                view.account,
                view.side,
            ) == (
                mo.qty,
                mo.remaining,
                mo.filled,
                mo.cancelled,
                mo.price,
                mo.stop,
                mo.priority,
                mo.account,
                mo.side,
            )
            assert view.qty == view.filled + view.remaining + view.cancelled
            assert view.remaining > 0
        else:
            assert view is None
    for acct in ACCOUNTS:
        want = sorted(
            (
                o
                for o in model.orders.values()
                if o.account == acct and o.status in ("open", "pending")
            ),
            key=lambda o: o.priority,
        )
        assert [v.order_id for v in eng.open_orders(acct)] == [o.oid for o in want]


EXAMPLES = int(os.environ.get("MATCHING_STATEFUL_EXAMPLES", "1000"))
STEPS = int(os.environ.get("MATCHING_STATEFUL_STEPS", "30"))


def test_engine_matches_reference_model() -> None:
    EngineVsModel.sequences = 0
    run_state_machine_as_test(
        EngineVsModel,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert EngineVsModel.sequences >= EXAMPLES


def test_long_random_sequences_match_reference_model() -> None:
    """Deep, cheap complement to the Hypothesis run: long seeded sequences, same checks."""
    for seed in range(int(os.environ.get("MATCHING_SOAK_SEEDS", "12"))):
        rng = random.Random(seed)
        eng, model = Engine(), Model()
        ts = 0
        ids: list[Any] = []
        for sym in SYMBOLS:
            ts += 1
            assert eng.add_instrument(ts, sym, Decimal("0.01"), Decimal("1")) == (
                model.add_instrument(ts, sym, Decimal("0.01"), Decimal("1"))
            )
        for step in range(400):
            args: tuple[Any, ...]
            ts += 1
            r = rng.random()
            live = [o.oid for o in model.orders.values() if o.status in ("open", "pending")]
            if r < 0.55 or not ids:
                oid: Any = len(ids) + 1 if rng.random() < 0.7 else f"s{len(ids) + 1}"
                ids.append(oid)
                otype = rng.choice(TYPES + ("limit",) * 6)
                sym = rng.choice(SYMBOLS)
                args = (
                    ts,
                    oid,
                    rng.choice(ACCOUNTS),
                    sym,
                    rng.choice(SIDES),
                    otype,
                    rng.choice(TIFS + ("GTC",) * 4),
                    rng.randint(1, 12),
                    rng.randint(96, 104) if otype in ("limit", "stop_limit") else None,
                    rng.randint(96, 104) if otype in ("stop", "stop_limit") else None,
                    rng.choice(STPS + ("none",) * 3),
                    rng.choice((None, 0, 1, 3)) if otype in ("market", "stop") else None,
                )
                method = "new_order"
            elif r < 0.75:
                oid = rng.choice(live) if live and rng.random() < 0.9 else rng.choice(ids)
                acct = model.orders[oid].account if rng.random() < 0.9 else rng.choice(ACCOUNTS)
                args = (ts, oid, acct)
                method = "cancel"
            elif r < 0.97:
                oid = rng.choice(live) if live and rng.random() < 0.9 else rng.choice(ids)
                args = (
                    ts,
                    oid,
                    None,
                    rng.choice((None, rng.randint(1, 14))),
                    rng.choice((None, rng.randint(96, 104))),
                    rng.choice((None, None, rng.randint(96, 104))),
                )
                method = "replace"
            else:
                args = (ts, rng.choice((None, *SYMBOLS)))
                method = "end_of_session"
            got = getattr(eng, method)(*args)
            want = getattr(model, method)(*args)
            assert [event_to_json(e) for e in got] == [event_to_json(e) for e in want], (
                f"seed {seed} step {step} {method}{args}:\n engine={got}\n model ={want}"
            )
            assert_same_state(eng, model)
