"""Market data derived from each batch's events: trades, BBO, conflated L2 depth changes.

Published on pub/sub (``md:<SYMBOL>``), so it is best effort by nature; the output stream is
the record. BBO and trades go out with every batch that changed them. Depth changes of the top
``levels`` price levels are conflated per symbol to one message per ``interval`` seconds: the
engine's public depth query sorts the book's price levels, so running it after every batch would
cost more than the matching on deep books (an engine-side per-level query would remove this).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from apps.matching.engine import Engine, Event

_TRADE = "trade"
_REJECTED = "rejected"
_SESSION_ENDED = "session_ended"

Message = tuple[str, bytes]
_Levels = dict[tuple[str, int], tuple[int, int]]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


class MarketData:
    def __init__(
        self, *, shard: int, channel_prefix: str, levels: int = 10, interval: float = 0.05
    ) -> None:
        self.shard = shard
        self.prefix = channel_prefix
        self.levels = levels
        self.interval = interval
        self._bbo: dict[str, list[Any]] = {}
        self._depth: dict[str, _Levels] = {}
        self._depth_at: dict[str, float] = {}
        self._dirty: dict[str, int] = {}  # symbol -> seq of the last event touching its book

    def channel(self, symbol: str) -> str:
        return f"{self.prefix}:{symbol}"

    def _depth_now(self, engine: Engine, symbol: str) -> _Levels:
        d = engine.depth(symbol, self.levels)
        now: _Levels = {("buy", lv.price): (lv.qty, lv.orders) for lv in d.bids}
        now.update({("sell", lv.price): (lv.qty, lv.orders) for lv in d.asks})
        return now

    def _depth_changes(self, engine: Engine, symbol: str, at: float) -> list[list[Any]]:
        now = self._depth_now(engine, symbol)
        before = self._depth.get(symbol, {})
        changes = [[s, p, q, n] for (s, p), (q, n) in now.items() if before.get((s, p)) != (q, n)]
        changes += [[s, p, 0, 0] for (s, p) in before if (s, p) not in now]
        changes.sort()
        self._depth[symbol] = now
        self._depth_at[symbol] = at
        return changes

    def on_batch(
        self, engine: Engine, events: Sequence[Event], ts: int, at: float
    ) -> list[Message]:
        # Comprehensions rather than one loop with branches: they run the per-event work at C
        # speed, and a batch holds hundreds of events.
        symbols = {e[3] for e in events if e[0] != _REJECTED}
        trades = [e for e in events if e[0] == _TRADE]
        if None in symbols:  # a session ended for every symbol
            symbols.discard(None)
            symbols.update(engine.symbols())
        out: list[Message] = []
        for sym in symbols:
            try:
                q = engine.quote(sym)
            except KeyError:
                continue
            seq = _last_seq(events, sym)
            msg: dict[str, Any] = {"symbol": sym, "shard": self.shard, "seq": seq, "ts": ts}
            mine = [[t[1], t[4], t[5], t[6]] for t in trades if t[3] == sym]
            if mine:
                msg["trades"] = mine
            bbo = [q.bid, q.bid_qty, q.ask, q.ask_qty]
            if bbo != self._bbo.get(sym):
                self._bbo[sym] = bbo
                msg["bbo"] = bbo
            self._dirty[sym] = seq
            if at - self._depth_at.get(sym, 0.0) >= self.interval:
                del self._dirty[sym]
                changes = self._depth_changes(engine, sym, at)
                if changes:
                    msg["depth"] = changes
            if len(msg) > 4:
                out.append((self.channel(sym), _dumps(msg)))
        return out

    def flush_due(self, engine: Engine, ts: int, at: float) -> list[Message]:
        """Conflated depth updates whose interval has elapsed since the last one."""
        out: list[Message] = []
        for sym, seq in list(self._dirty.items()):
            if at - self._depth_at.get(sym, 0.0) < self.interval:
                continue
            del self._dirty[sym]
            changes = self._depth_changes(engine, sym, at)
            if changes:
                msg = {"symbol": sym, "shard": self.shard, "seq": seq, "ts": ts, "depth": changes}
                out.append((self.channel(sym), _dumps(msg)))
        return out

    def full(self, engine: Engine, ts: int, at: float) -> list[Message]:
        """A resync message per symbol (full top-of-book depth), sent when the worker starts."""
        out: list[Message] = []
        for sym in engine.symbols():
            self._depth.pop(sym, None)
            q = engine.quote(sym)
            self._bbo[sym] = bbo = [q.bid, q.bid_qty, q.ask, q.ask_qty]
            msg = {
                "symbol": sym,
                "shard": self.shard,
                "seq": engine.seq,
                "ts": ts,
                "bbo": bbo,
                "depth": self._depth_changes(engine, sym, at),
                "snapshot": True,
            }
            out.append((self.channel(sym), _dumps(msg)))
        return out


def _last_seq(events: Sequence[Event], symbol: str) -> int:
    """Seq of the last event of the batch about ``symbol`` (or about every symbol)."""
    for e in reversed(events):
        if e[0] != _REJECTED and (e[3] == symbol or e[3] is None):
            return int(e[1])
    return int(events[-1][1])
