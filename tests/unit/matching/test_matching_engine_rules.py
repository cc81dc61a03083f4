"""One test (or a few) per rule of the matching engine (issue 3)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.matching.engine import (
    AddInstrument,
    Cancel,
    Command,
    EndOfSession,
    Engine,
    Event,
    NewOrder,
    Replace,
    command_from_dict,
    command_to_dict,
    event_to_dict,
)

SYM = "AAPL"


def make_engine(*symbols: str) -> Engine:
    eng = Engine()
    for i, sym in enumerate(symbols or (SYM,)):
        eng.add_instrument(i, sym, Decimal("0.01"), Decimal("1"))
    return eng


class Driver:
    """Thin helper: auto timestamps, and events as dicts for readable assertions."""

    def __init__(self, *symbols: str) -> None:
        self.eng = make_engine(*symbols)
        self.ts = 100

    def _ts(self) -> int:
        self.ts += 1
        return self.ts

    def new(
        self,
        oid: Any,
        side: str,
        qty: int,
        price: int | None = None,
        *,
        account: Any = "A",
        otype: str | None = None,
        tif: str = "GTC",
        stop: int | None = None,
        stp: str = "none",
        protection: int | None = None,
        symbol: str = SYM,
    ) -> list[dict[str, Any]]:
        if otype is None:
            otype = "limit" if price is not None else "market"
        return dicts(
            self.eng.new_order(
                self._ts(),
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
        )

    def cancel(self, oid: Any, account: Any = None) -> list[dict[str, Any]]:
        return dicts(self.eng.cancel(self._ts(), oid, account))

    def replace(
        self,
        oid: Any,
        account: Any = None,
        qty: int | None = None,
        price: int | None = None,
        stop: int | None = None,
    ) -> list[dict[str, Any]]:
        return dicts(self.eng.replace(self._ts(), oid, account, qty, price, stop))

    def eos(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return dicts(self.eng.end_of_session(self._ts(), symbol))

    def bids(self) -> list[tuple[int, int, int]]:
        return [tuple(x) for x in self.eng.depth(SYM, None).bids]  # type: ignore[misc]

    def asks(self) -> list[tuple[int, int, int]]:
        return [tuple(x) for x in self.eng.depth(SYM, None).asks]  # type: ignore[misc]


def dicts(events: list[Event]) -> list[dict[str, Any]]:
    return [event_to_dict(e) for e in events]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] + (":" + e["reason"] if "reason" in e else "") for e in events]


def trades(events: list[dict[str, Any]]) -> list[tuple[Any, Any, int, int]]:
    """(maker, taker, price, qty) of each trade."""
    return [
        (e["maker_order_id"], e["taker_order_id"], e["price"], e["qty"])
        for e in events
        if e["kind"] == "trade"
    ]


# ------------------------------------------------------------------ instruments & books
def test_add_instrument_event_and_errors() -> None:
    eng = Engine()
    assert dicts(eng.add_instrument(1, "X", Decimal("0.05"), Decimal("10"))) == [
        {
            "kind": "instrument_added",
            "seq": 1,
            "ts": 1,
            "symbol": "X",
            "tick_size": "0.05",
            "lot_size": "10",
        }
    ]
    assert eng.add_instrument(2, "X", Decimal("0.01"), Decimal("1"))[0][-1] == ("DUPLICATE_SYMBOL")
    assert eng.add_instrument(3, "Y", Decimal("0"), Decimal("1"))[0][-1] == ("INVALID_INSTRUMENT")
    assert eng.add_instrument(4, "Y", 0.01, Decimal("1"))[0][-1] == (  # type: ignore[arg-type]
        "INVALID_INSTRUMENT"
    )
    assert eng.add_instrument(5, "", Decimal("1"), Decimal("1"))[0][-1] == "INVALID_SYMBOL"
    assert eng.add_instrument(1.0, "Z", Decimal("1"), Decimal("1"))[0][-1] == (  # type: ignore[arg-type]
        "INVALID_TIMESTAMP"
    )
    assert eng.symbols() == ["X"]
    assert eng.instrument("X").tick_size == Decimal("0.05")


def test_one_book_per_symbol() -> None:
    d = Driver("AAPL", "MSFT")
    d.new(1, "sell", 5, 100, symbol="AAPL")
    evs = d.new(2, "buy", 5, 100, symbol="MSFT", account="B")
    assert kinds(evs) == ["accepted"]
    assert d.eng.quote("MSFT").bid == 100
    assert d.eng.quote("AAPL").ask == 100
    assert d.eng.quote("AAPL").bid is None


# ------------------------------------------------------------------ price-time priority
def test_price_then_time_priority() -> None:
    d = Driver()
    d.new(1, "sell", 5, 101, account="M1")
    d.new(2, "sell", 5, 100, account="M2")
    d.new(3, "sell", 5, 100, account="M3")
    d.new(4, "sell", 5, 99, account="M4")
    evs = d.new(5, "buy", 12, 101, account="T")
    assert trades(evs) == [(4, 5, 99, 5), (2, 5, 100, 5), (3, 5, 100, 2)]
    assert d.asks() == [(100, 3, 1), (101, 5, 1)]
    assert d.bids() == []


def test_trade_event_fields() -> None:
    d = Driver()
    d.new("m", "sell", 5, 100, account="maker")
    evs = d.new("t", "buy", 3, 100, account="taker")
    assert evs[1] == {
        "kind": "trade",
        "seq": evs[0]["seq"] + 1,
        "ts": d.ts,
        "symbol": SYM,
        "price": 100,
        "qty": 3,
        "aggressor_side": "buy",
        "maker_order_id": "m",
        "maker_account": "maker",
        "taker_order_id": "t",
        "taker_account": "taker",
        "maker_remaining": 2,
        "taker_remaining": 0,
    }
    assert d.eng.order_status("t") == "filled"
    assert d.eng.order("m").remaining == 2  # type: ignore[union-attr]


def test_limit_remainder_rests_at_its_price_and_book_never_crosses() -> None:
    d = Driver()
    d.new(1, "sell", 5, 100)
    evs = d.new(2, "buy", 8, 102, account="B")
    assert kinds(evs) == ["accepted", "trade"]
    assert d.bids() == [(102, 3, 1)]
    assert d.asks() == []


# ------------------------------------------------------------------ market orders
def test_market_order_never_rests() -> None:
    d = Driver()
    d.new(1, "sell", 5, 100)
    evs = d.new(2, "buy", 8, account="B")
    assert kinds(evs) == ["accepted", "trade", "cancelled:IOC_REMAINDER"]
    assert evs[-1]["qty"] == 3
    assert d.bids() == []
    assert d.eng.order_status(2) == "cancelled"
    evs = d.new(3, "sell", 1, account="B")  # empty book
    assert kinds(evs) == ["accepted", "cancelled:IOC_REMAINDER"]


def test_market_protection_limits_slippage() -> None:
    d = Driver()
    for oid, px in ((1, 100), (2, 101), (3, 102), (4, 103)):
        d.new(oid, "sell", 1, px)
    evs = d.new(5, "buy", 4, account="B", protection=2)
    assert [t[2] for t in trades(evs)] == [100, 101, 102]
    assert kinds(evs)[-1] == "cancelled:PROTECTION"
    assert evs[-1]["qty"] == 1
    assert d.asks() == [(103, 1, 1)]
    evs = d.new(6, "buy", 4, account="B", protection=0)
    assert [t[2] for t in trades(evs)] == [103]
    assert kinds(evs)[-1] == "cancelled:IOC_REMAINDER"  # book exhausted, not protection


def test_sell_market_protection() -> None:
    d = Driver()
    d.new(1, "buy", 1, 100)
    d.new(2, "buy", 1, 98)
    evs = d.new(3, "sell", 2, account="B", protection=1)
    assert [t[2] for t in trades(evs)] == [100]
    assert kinds(evs)[-1] == "cancelled:PROTECTION"


# ------------------------------------------------------------------ stops
def test_buy_stop_becomes_market_when_last_trade_reaches_it() -> None:
    d = Driver()
    d.new(1, "sell", 5, 100, account="S")
    d.new(2, "sell", 5, 105, account="S")
    evs = d.new("stop", "buy", 3, otype="stop", stop=100, account="B")
    assert kinds(evs) == ["accepted"]
    assert d.eng.order_status("stop") == "pending"
    evs = d.new(3, "buy", 1, 100, account="C")  # prints 100 -> triggers
    assert kinds(evs) == ["accepted", "trade", "triggered", "trade"]
    assert evs[2]["order_id"] == "stop"
    assert evs[2]["trigger_price"] == 100
    assert trades(evs)[1] == (1, "stop", 100, 3)
    assert d.eng.order_status("stop") == "filled"


def test_sell_stop_limit_becomes_limit_and_rests() -> None:
    d = Driver()
    d.new(1, "buy", 2, 100, account="M")
    d.new("sl", "sell", 5, 99, otype="stop_limit", stop=100, account="S")
    evs = d.new(2, "sell", 1, 100, account="T")
    assert kinds(evs) == ["accepted", "trade", "triggered", "trade"]
    assert trades(evs)[1] == (1, "sl", 100, 1)
    view = d.eng.order("sl")
    assert view is not None
    assert view.status == "open"
    assert view.remaining == 4
    assert view.triggered
    assert d.asks() == [(99, 4, 1)]


def test_stop_not_triggered_by_trade_on_wrong_side_of_stop() -> None:
    d = Driver()
    d.new(1, "sell", 5, 100)
    d.new("s", "buy", 1, otype="stop", stop=101, account="B")
    d.new(2, "buy", 1, 100, account="C")
    assert d.eng.order_status("s") == "pending"


def test_stop_already_satisfied_triggers_on_acceptance() -> None:
    d = Driver()
    d.new(1, "sell", 5, 100)
    d.new(2, "buy", 1, 100, account="B")  # last = 100
    evs = d.new("s", "buy", 2, otype="stop", stop=99, account="C")
    assert kinds(evs) == ["accepted", "triggered", "trade"]
    assert evs[1]["trigger_price"] == 100


def test_no_trade_yet_means_stops_wait() -> None:
    d = Driver()
    d.new(1, "sell", 5, 100)
    evs = d.new("s", "buy", 2, otype="stop", stop=1, account="C")
    assert kinds(evs) == ["accepted"]


def test_several_stops_fire_in_time_priority_and_cascade() -> None:
    d = Driver()
    for oid, px in ((1, 100), (2, 101), (3, 102), (4, 103)):
        d.new(oid, "sell", 1, px, account="S")
    d.new("s_late", "buy", 1, otype="stop", stop=100, account="B")
    d.new("s_high", "buy", 1, otype="stop", stop=102, account="B")  # triggered by s_early's trade
    d.new("s_early", "buy", 1, otype="stop", stop=101, account="B")
    # trade at 100 triggers s_late (stop 100) only; s_late prints 101 -> s_early;
    # s_early prints 102 -> s_high.
    evs = d.new(5, "buy", 1, 100, account="C")
    fired = [e["order_id"] for e in evs if e["kind"] == "triggered"]
    assert fired == ["s_late", "s_early", "s_high"]
    assert [t[2] for t in trades(evs)] == [100, 101, 102, 103]


def test_stops_triggered_together_fire_in_acceptance_order() -> None:
    d = Driver()
    d.new(1, "sell", 10, 100, account="S")
    d.new("b", "buy", 1, otype="stop", stop=100, account="B")
    d.new("a", "buy", 1, otype="stop", stop=99, account="B")
    d.new("c", "buy", 1, otype="stop_limit", price=100, stop=98, account="B")
    evs = d.new(2, "buy", 1, 100, account="C")
    assert [e["order_id"] for e in evs if e["kind"] == "triggered"] == ["b", "a", "c"]


def test_sell_stops_trigger_on_a_falling_sweep() -> None:
    d = Driver()
    d.new(1, "buy", 1, 100, account="M")
    d.new(2, "buy", 1, 99, account="M")
    d.new(3, "buy", 5, 90, account="M")
    d.new("s", "sell", 1, otype="stop", stop=99, account="S")
    evs = d.new(4, "sell", 2, 99, account="T")  # prints 100 then 99
    assert [e["order_id"] for e in evs if e["kind"] == "triggered"] == ["s"]
    assert evs[-1]["kind"] == "trade"
    assert evs[-1]["price"] == 90
    assert d.eng.last_price(SYM) == 90


# ------------------------------------------------------------------ time in force
def test_ioc_remainder_is_cancelled() -> None:
    d = Driver()
    d.new(1, "sell", 2, 100)
    evs = d.new(2, "buy", 5, 101, tif="IOC", account="B")
    assert kinds(evs) == ["accepted", "trade", "cancelled:IOC_REMAINDER"]
    assert evs[-1]["qty"] == 3
    assert d.bids() == []


def test_fok_fills_completely_or_not_at_all() -> None:
    d = Driver()
    d.new(1, "sell", 2, 100)
    d.new(2, "sell", 2, 101)
    before = (d.bids(), d.asks())
    evs = d.new(3, "buy", 5, 101, tif="FOK", account="B")
    assert kinds(evs) == ["accepted", "cancelled:FOK_UNFILLABLE"]
    assert (d.bids(), d.asks()) == before
    evs = d.new(4, "buy", 3, 100, tif="FOK", account="B")  # only 2 at <= 100
    assert kinds(evs) == ["accepted", "cancelled:FOK_UNFILLABLE"]
    evs = d.new(5, "buy", 4, 101, tif="FOK", account="B")
    assert kinds(evs) == ["accepted", "trade", "trade"]
    assert d.eng.order_status(5) == "filled"


def test_fok_counts_self_trade_prevention() -> None:
    d = Driver()
    d.new(1, "sell", 2, 100, account="B")
    d.new(2, "sell", 5, 100, account="S")
    evs = d.new(3, "buy", 5, 100, tif="FOK", account="B", stp="cancel_newest")
    assert kinds(evs) == ["accepted", "cancelled:FOK_UNFILLABLE"]
    evs = d.new(4, "buy", 5, 100, tif="FOK", account="B", stp="cancel_oldest")
    assert kinds(evs) == ["accepted", "cancelled:STP", "trade"]


def test_day_orders_expire_at_end_of_session_gtc_survive() -> None:
    d = Driver("AAPL", "MSFT")
    d.new(1, "buy", 1, 99, tif="DAY")
    d.new(2, "buy", 1, 98, tif="GTC")
    d.new(3, "buy", 1, otype="stop", stop=120, tif="DAY")
    d.new(4, "buy", 1, 50, tif="DAY", symbol="MSFT")
    evs = d.eos(SYM)
    assert kinds(evs) == ["cancelled:EXPIRED", "cancelled:EXPIRED", "session_ended"]
    assert [e.get("order_id") for e in evs[:2]] == [1, 3]
    assert evs[-1]["expired"] == 2
    assert evs[-1]["symbol"] == SYM
    assert d.bids() == [(98, 1, 1)]
    assert d.eng.order_status(4) == "open"
    evs = d.eos()
    assert kinds(evs) == ["cancelled:EXPIRED", "session_ended"]
    assert evs[-1]["symbol"] is None
    assert d.eos("NOPE")[0]["reason"] == "UNKNOWN_SYMBOL"


# ------------------------------------------------------------------ cancel
def test_cancel_rules() -> None:
    d = Driver()
    d.new(1, "buy", 5, 99, account="A")
    assert d.cancel(1, "B")[0]["reason"] == "ACCOUNT_MISMATCH"
    evs = d.cancel(1, "A")
    assert evs == [
        {
            "kind": "cancelled",
            "seq": evs[0]["seq"],
            "ts": d.ts,
            "symbol": SYM,
            "order_id": 1,
            "account": "A",
            "qty": 5,
            "remaining": 0,
            "reason": "USER",
        }
    ]
    assert d.bids() == []
    assert d.cancel(1, "A")[0]["reason"] == "ORDER_NOT_OPEN"
    assert d.cancel(42)[0]["reason"] == "UNKNOWN_ORDER"
    d.new("s", "sell", 1, otype="stop", stop=90)
    assert kinds(d.cancel("s")) == ["cancelled:USER"]
    assert d.eng.order_status("s") == "cancelled"


def test_cancel_partially_filled_order_keeps_invariant() -> None:
    d = Driver()
    d.new(1, "sell", 10, 100)
    d.new(2, "buy", 4, 100, account="B")
    view = d.eng.order(1)
    assert view is not None
    assert (view.filled, view.remaining, view.cancelled) == (4, 6, 0)
    evs = d.cancel(1)
    assert evs[0]["qty"] == 6


# ------------------------------------------------------------------ replace
def test_replace_quantity_down_keeps_priority() -> None:
    d = Driver()
    d.new(1, "sell", 5, 100, account="M1")
    d.new(2, "sell", 5, 100, account="M2")
    evs = d.replace(1, qty=3)
    assert evs[0]["kind"] == "replaced"
    assert evs[0]["priority_kept"] is True
    assert d.asks() == [(100, 8, 2)]
    assert trades(d.new(3, "buy", 1, 100, account="T")) == [(1, 3, 100, 1)]


@pytest.mark.parametrize("change", [{"qty": 6}, {"price": 101}])
def test_replace_quantity_up_or_price_change_loses_priority(change: dict[str, int]) -> None:
    d = Driver()
    d.new(1, "sell", 5, 100, account="M1")
    d.new(2, "sell", 5, 100, account="M2")
    d.new(3, "sell", 5, 101, account="M3")
    evs = d.replace(1, **change)
    assert evs[0]["priority_kept"] is False
    taken = trades(d.new(4, "buy", 20, 101, account="T"))
    assert [t[0] for t in taken] == ([2, 1, 3] if "qty" in change else [2, 3, 1])


def test_replace_to_crossing_price_trades_immediately() -> None:
    d = Driver()
    d.new(1, "sell", 5, 100, account="S")
    d.new(2, "buy", 5, 98, account="B")
    evs = d.replace(2, price=100)
    assert kinds(evs) == ["replaced", "trade"]
    assert trades(evs) == [(1, 2, 100, 5)]


def test_replace_rejections() -> None:
    d = Driver()
    d.new(1, "sell", 5, 100, account="S")
    d.new(2, "buy", 2, 100, account="B")  # 1 is partially filled: filled 2
    assert d.replace(2)[0]["reason"] == "ORDER_NOT_OPEN"  # filled
    assert d.replace(99)[0]["reason"] == "UNKNOWN_ORDER"
    assert d.replace(1, "B", qty=4)[0]["reason"] == "ACCOUNT_MISMATCH"
    assert d.replace(1, qty=2)[0]["reason"] == "QUANTITY_TOO_LOW"
    assert d.replace(1, qty=0)[0]["reason"] == "INVALID_QUANTITY"
    assert d.replace(1, price=-5)[0]["reason"] == "INVALID_PRICE"
    assert d.replace(1, stop=90)[0]["reason"] == "UNEXPECTED_STOP_PRICE"
    evs = d.replace(1, qty=3)  # new total 3 = filled 2 + open 1
    assert (evs[0]["qty"], evs[0]["remaining"], evs[0]["priority_kept"]) == (3, 1, True)
    view = d.eng.order(1)
    assert view is not None
    assert (view.qty, view.filled, view.remaining) == (3, 2, 1)


def test_replace_pending_stop() -> None:
    d = Driver()
    d.new(1, "sell", 5, 100, account="S")
    d.new(2, "buy", 1, 100, account="B")  # last = 100
    d.new("s", "buy", 2, otype="stop", stop=105, account="C")
    assert d.replace("s", price=101)[0]["reason"] == "UNEXPECTED_PRICE"
    evs = d.replace("s", stop=103)
    assert kinds(evs) == ["replaced"]
    assert d.eng.order_status("s") == "pending"
    evs = d.replace("s", stop=100)  # satisfied by last trade: fires now
    assert kinds(evs) == ["replaced", "triggered", "trade"]


# ------------------------------------------------------------------ self-trade prevention
def _stp_book() -> Driver:
    d = Driver()
    d.new("own", "sell", 3, 100, account="A")
    d.new("other", "sell", 5, 100, account="X")
    return d


def test_stp_cancel_newest() -> None:
    d = _stp_book()
    evs = d.new("in", "buy", 4, 100, account="A", stp="cancel_newest")
    assert kinds(evs) == ["accepted", "cancelled:STP"]
    assert evs[1]["order_id"] == "in"
    assert d.asks() == [(100, 8, 2)]


def test_stp_cancel_oldest() -> None:
    d = _stp_book()
    evs = d.new("in", "buy", 4, 100, account="A", stp="cancel_oldest")
    assert kinds(evs) == ["accepted", "cancelled:STP", "trade"]
    assert evs[1]["order_id"] == "own"
    assert trades(evs) == [("other", "in", 100, 4)]


def test_stp_cancel_both() -> None:
    d = _stp_book()
    evs = d.new("in", "buy", 4, 100, account="A", stp="cancel_both")
    assert kinds(evs) == ["accepted", "cancelled:STP", "cancelled:STP"]
    assert [e["order_id"] for e in evs[1:]] == ["own", "in"]
    assert d.asks() == [(100, 5, 1)]


def test_stp_decrement() -> None:
    d = _stp_book()
    evs = d.new("in", "buy", 5, 100, account="A", stp="decrement")
    assert kinds(evs) == ["accepted", "cancelled:STP", "cancelled:STP", "trade"]
    assert [(e["order_id"], e["qty"], e["remaining"]) for e in evs[1:3]] == [
        ("own", 3, 0),
        ("in", 3, 2),
    ]
    assert trades(evs) == [("other", "in", 100, 2)]
    # Decrementing a bigger resting order leaves it open, reduced.
    d2 = _stp_book()
    evs = d2.new("in", "buy", 1, 100, account="A", stp="decrement")
    assert [(e["order_id"], e["qty"], e["remaining"]) for e in evs[1:3]] == [
        ("own", 1, 2),
        ("in", 1, 0),
    ]
    view = d2.eng.order("own")
    assert view is not None
    assert (view.qty, view.cancelled, view.remaining) == (3, 1, 2)
    assert d2.eng.order_status("in") == "cancelled"


def test_stp_none_allows_self_trade() -> None:
    d = _stp_book()
    assert trades(d.new("in", "buy", 1, 100, account="A")) == [("own", "in", 100, 1)]


# ------------------------------------------------------------------ events & queries
def test_sequence_numbers_increase_by_one_across_commands() -> None:
    d = Driver()
    seqs = [e["seq"] for e in d.new(1, "sell", 5, 100)]
    seqs += [e["seq"] for e in d.new(2, "buy", 9, 100, account="B")]
    seqs += [e["seq"] for e in d.cancel(77)]
    seqs += [e["seq"] for e in d.eos()]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert d.eng.seq == seqs[-1]


def test_l2_depth_and_bbo() -> None:
    d = Driver()
    for oid, (side, qty, px) in enumerate(
        [
            ("buy", 1, 99),
            ("buy", 2, 99),
            ("buy", 5, 97),
            ("buy", 1, 98),
            ("sell", 4, 101),
            ("sell", 1, 103),
            ("sell", 2, 101),
        ]
    ):
        d.new(oid, side, qty, px)
    depth = d.eng.depth(SYM, 2)
    assert [tuple(x) for x in depth.bids] == [(99, 3, 2), (98, 1, 1)]
    assert [tuple(x) for x in depth.asks] == [(101, 6, 2), (103, 1, 1)]
    assert tuple(d.eng.quote(SYM)) == (99, 3, 101, 6)
    d.cancel(0)
    assert d.bids()[0] == (99, 2, 1)


def test_order_state_and_open_orders_of_account() -> None:
    d = Driver()
    d.new(1, "buy", 5, 99, account="A")
    d.new(2, "sell", 5, 101, account="B")
    d.new(3, "buy", 5, otype="stop", stop=110, account="A")
    d.new(4, "buy", 2, 98, account="A")
    d.cancel(4)
    assert [v.order_id for v in d.eng.open_orders("A")] == [1, 3]
    assert [v.status for v in d.eng.open_orders("A")] == ["open", "pending"]
    view = d.eng.order(1)
    assert view is not None
    assert view.side == "buy"
    assert view.price == 99
    assert view.qty == 5
    assert d.eng.order(4) is None
    assert d.eng.order_status(4) == "cancelled"
    assert d.eng.order_status("never") is None
    assert d.eng.order([1]) is None  # type: ignore[arg-type]


# ------------------------------------------------------------------ bad commands
BAD_NEW_ORDERS: list[tuple[dict[str, Any], str]] = [
    ({"ts": None}, "INVALID_TIMESTAMP"),
    ({"ts": 1.5}, "INVALID_TIMESTAMP"),
    ({"order_id": None}, "INVALID_ORDER_ID"),
    ({"order_id": 1.0}, "INVALID_ORDER_ID"),
    ({"order_id": True}, "INVALID_ORDER_ID"),
    ({"order_id": ["x"]}, "INVALID_ORDER_ID"),
    ({"symbol": "NOPE"}, "UNKNOWN_SYMBOL"),
    ({"symbol": ["x"]}, "UNKNOWN_SYMBOL"),
    ({"order_id": 1}, "DUPLICATE_ORDER_ID"),
    ({"account": None}, "INVALID_ACCOUNT"),
    ({"side": "long"}, "INVALID_SIDE"),
    ({"order_type": "iceberg"}, "INVALID_ORDER_TYPE"),
    ({"tif": "GTD"}, "INVALID_TIF"),
    ({"stp": "maybe"}, "INVALID_STP_MODE"),
    ({"qty": 0}, "INVALID_QUANTITY"),
    ({"qty": -3}, "INVALID_QUANTITY"),
    ({"qty": 2.5}, "INVALID_QUANTITY"),
    ({"qty": Decimal("2")}, "INVALID_QUANTITY"),
    ({"qty": 1 << 70}, "INVALID_QUANTITY"),
    ({"price": None}, "MISSING_PRICE"),
    ({"price": 0}, "INVALID_PRICE"),
    ({"price": 100.5}, "INVALID_PRICE"),
    ({"stop_price": 99}, "UNEXPECTED_STOP_PRICE"),
    ({"protection": 2}, "UNEXPECTED_PROTECTION"),
    ({"order_type": "market"}, "UNEXPECTED_PRICE"),
    ({"order_type": "market", "price": None, "protection": -1}, "INVALID_PROTECTION"),
    ({"order_type": "stop", "price": None}, "MISSING_STOP_PRICE"),
    ({"order_type": "stop_limit", "stop_price": 0}, "INVALID_STOP_PRICE"),
]


@pytest.mark.parametrize(("override", "reason"), BAD_NEW_ORDERS)
def test_bad_new_order_is_rejected_without_side_effects(
    override: dict[str, Any], reason: str
) -> None:
    d = Driver()
    d.new(1, "buy", 5, 99)
    d.new(2, "sell", 5, 101, account="B")
    before = (d.bids(), d.asks(), d.eng.open_orders())
    args: dict[str, Any] = {
        "ts": 500,
        "order_id": 10,
        "account": "A",
        "symbol": SYM,
        "side": "buy",
        "order_type": "limit",
        "tif": "GTC",
        "qty": 3,
        "price": 100,
        "stop_price": None,
        "stp": "none",
        "protection": None,
    }
    args.update(override)
    evs = dicts(d.eng.new_order(**args))
    assert len(evs) == 1
    assert evs[0]["kind"] == "rejected"
    assert evs[0]["reason"] == reason
    assert evs[0]["command"] == "new_order"
    assert (d.bids(), d.asks(), d.eng.open_orders()) == before


def test_rejected_event_layout() -> None:
    d = Driver()
    evs = d.new(5, "buy", 0, 100)
    assert evs == [
        {
            "kind": "rejected",
            "seq": evs[0]["seq"],
            "ts": d.ts,
            "command": "new_order",
            "order_id": 5,
            "symbol": SYM,
            "reason": "INVALID_QUANTITY",
        }
    ]
    assert d.eng.order_status(5) is None  # a rejected id stays free
    assert kinds(d.new(5, "buy", 1, 100)) == ["accepted"]


def test_non_interned_strings_are_accepted() -> None:
    d = Driver()
    side, otype, tif, stp = (
        "".join(x) for x in (["b", "uy"], ["lim", "it"], ["G", "TC"], ["no", "ne"])
    )
    evs = dicts(d.eng.new_order(1, 1, "A", SYM, side, otype, tif, 1, 100, None, stp))
    assert kinds(evs) == ["accepted"]
    assert evs[0]["side"] is not side
    d.new(2, "sell", 1, 100, account="B")
    assert d.eng.order_status(1) == "filled"


# ------------------------------------------------------------------ Decimal edge & commands
def test_new_order_decimal_converts_exactly_and_rejects_off_grid() -> None:
    eng = Engine()
    eng.add_instrument(1, "F", Decimal("0.05"), Decimal("0.001"))
    evs = dicts(
        eng.new_order_decimal(
            2, 1, "A", "F", "buy", "limit", "GTC", Decimal("1.25"), Decimal("10.15")
        )
    )
    assert (evs[0]["qty"], evs[0]["price"]) == (1250, 203)
    assert eng.instrument("F").ticks_to_price(evs[0]["price"]) == Decimal("10.15")
    off_tick = eng.new_order_decimal(
        3, 2, "A", "F", "buy", "limit", "GTC", Decimal("1"), Decimal("10.12")
    )
    assert off_tick[0][-1] == "OFF_TICK_GRID"
    off_lot = eng.new_order_decimal(
        4, 3, "A", "F", "buy", "limit", "GTC", Decimal("0.0005"), Decimal("10")
    )
    assert off_lot[0][-1] == "OFF_LOT_GRID"
    off_stop = eng.new_order_decimal(
        5, 4, "A", "F", "buy", "stop", "GTC", Decimal("1"), None, Decimal("10.01")
    )
    assert off_stop[0][-1] == "OFF_TICK_GRID"
    # earlier checks win over grid errors
    dup = eng.new_order_decimal(
        6, 1, "A", "F", "buy", "limit", "GTC", Decimal("0.0005"), Decimal("10")
    )
    assert dup[0][-1] == "DUPLICATE_ORDER_ID"
    unknown = eng.new_order_decimal(
        7, 9, "A", "NOPE", "buy", "limit", "GTC", Decimal("1"), Decimal("10")
    )
    assert unknown[0][-1] == "UNKNOWN_SYMBOL"
    as_float = eng.new_order_decimal(
        8,
        9,
        "A",
        "F",
        "buy",
        "limit",
        "GTC",
        1.0,  # type: ignore[arg-type]
        Decimal("10"),
    )
    assert as_float[0][-1] == "INVALID_QUANTITY"


def test_process_commands_and_their_dict_form() -> None:
    cmds: list[Command] = [
        AddInstrument(1, "X", Decimal("0.01"), Decimal("1")),
        NewOrder(2, "a", "acc", "X", "sell", "limit", "GTC", 5, 100),
        NewOrder(3, "b", "acc2", "X", "buy", "limit", "DAY", 7, 100),
        Replace(4, "b", "acc2", new_qty=6),
        Cancel(5, "a", "acc"),
        EndOfSession(6, None),
    ]
    for c in cmds:
        assert command_from_dict(command_to_dict(c)) == c
    a, b = Engine(), Engine()
    via_process = a.process_many(cmds)
    direct: list[Event] = []
    direct += b.add_instrument(1, "X", Decimal("0.01"), Decimal("1"))
    direct += b.new_order(2, "a", "acc", "X", "sell", "limit", "GTC", 5, 100)
    direct += b.new_order(3, "b", "acc2", "X", "buy", "limit", "DAY", 7, 100)
    direct += b.replace(4, "b", "acc2", 6)
    direct += b.cancel(5, "a", "acc")
    direct += b.end_of_session(6, None)
    assert via_process == direct
    assert [e[0] for e in via_process][-2:] == ["cancelled", "session_ended"]
    assert a.process("nonsense")[0][-1] == "INVALID_COMMAND"  # type: ignore[arg-type]
