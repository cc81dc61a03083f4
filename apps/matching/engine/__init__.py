"""Pure, deterministic price-time matching engine (standard library only).

Commands go in (``Engine.process(cmd)`` or the positional methods ``new_order``, ``cancel``,
``replace``, ``end_of_session``, ``add_instrument``); lists of event tuples come out
(layouts in ``events.EVENT_FIELDS``). The engine never reads a clock, never makes random ids,
never does I/O and never raises for a bad command: time (``ts``), order ids and accounts
come in with the commands, and a bad command yields one ``rejected`` event.

Units: prices are ``int`` ticks and quantities ``int`` lots. Decimal appears only at the
edges: ``Instrument.price_to_ticks``/``ticks_to_price``/``qty_to_lots``/``lots_to_qty`` (exact,
``OffGridError`` off the grid) and ``Engine.new_order_decimal``.

Invariants (held after every command; the test-suite checks them on random sequences):

1. Per order: ``qty == filled + remaining + cancelled`` (``qty`` is the total quantity as last
   amended by a replace); ``remaining > 0`` exactly when the order is open (resting or
   pending stop).
2. The book is never crossed: best bid < best ask after each command.
3. Price-time priority: better price first; within a level, first come first served, where
   the time priority of an order is set when it is accepted, when a stop triggers, or when a
   replace loses priority. Reducing quantity keeps priority; a price change or a quantity
   increase loses it.
4. Event sequence numbers start at 1 and increase by exactly 1 per event, across commands.
5. Determinism: the same command sequence gives byte-identical events (``events.event_to_json``)
   and the same ``state_hash()``; ``Engine.restore(e.snapshot())`` followed by the remaining
   commands gives the same events and hash as the uninterrupted run.
6. Aggregates are exact: L2 depth quantity/count equal the sum/number of live resting orders.

Rules in brief (details in the method docstrings):

* Orders: limit, market (never rests; unfilled part cancelled ``IOC_REMAINDER``; optional
  ``protection`` = max ticks through the best opposite price at arrival, remainder then
  cancelled ``PROTECTION``), stop (market when triggered), stop-limit (limit when triggered).
* Stops trigger on this symbol's trade prices: a buy stop when a trade prints at or above its
  stop price, a sell stop at or below. A stop whose condition already holds on the last trade
  price when accepted triggers at once. Stops triggered by one aggressing order fire in time
  priority after that order finishes; stops triggered by those fire after them (FIFO).
* TIF: GTC, DAY (expired by ``end_of_session``), IOC (remainder cancelled), FOK (fillability
  checked before any fill; if it cannot fill completely it is accepted and immediately
  cancelled with reason ``FOK_UNFILLABLE``, nothing trades).
* Self-trade prevention, chosen by the incoming order, applies when it meets a resting order
  of the same account: ``cancel_newest`` (cancel the incoming remainder), ``cancel_oldest``
  (cancel the resting order, keep matching), ``cancel_both``, ``decrement`` (reduce both by the
  smaller open quantity, no trade; an order reduced to zero is cancelled), ``none``.
* Replace of a pending stop may change quantity, limit price and stop price; if the new stop
  price is already satisfied by the last trade price, it triggers at once.
* Rejections (``rejected`` event, machine-readable ``reason``) follow a fixed precedence:
  timestamp, order id, symbol, duplicate id, account, side, type, TIF, STP mode, quantity,
  price, stop price, protection (new orders); timestamp, order id, unknown, not open, account
  (cancel/replace), then the replace's own fields. A rejected command changes nothing but the
  sequence number.

State kept: full records of open orders (resting or pending stops); for every closed order
only its id and final status (``order_status``), enough to reject a reused id and to tell
``ORDER_NOT_OPEN`` from ``UNKNOWN_ORDER``. The history of a closed order is in the events.
Integer order ids give the best memory locality (see ``engine._SHARD_SHIFT``).

Runtime: the engine creates no reference cycles, so a process may run it with the cyclic
garbage collector frozen/disabled (``gc.freeze(); gc.disable()``) for flat latency.
"""

from . import constants
from .book import Depth, DepthLevel, OrderView, Quote
from .commands import (
    AddInstrument,
    Cancel,
    Command,
    EndOfSession,
    NewOrder,
    Replace,
    command_from_dict,
    command_to_dict,
)
from .constants import (
    BUY,
    DAY,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    STOP,
    STOP_LIMIT,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    STP_DECREMENT,
    STP_NONE,
)
from .engine import SNAPSHOT_FORMAT, SNAPSHOT_VERSION, Engine
from .events import (
    EVENT_FIELDS,
    Event,
    event_from_json,
    event_to_dict,
    event_to_json,
    events_digest,
    events_to_bytes,
)
from .instrument import Instrument, OffGridError

__all__ = [
    "BUY",
    "DAY",
    "EVENT_FIELDS",
    "FOK",
    "GTC",
    "IOC",
    "LIMIT",
    "MARKET",
    "SELL",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_VERSION",
    "STOP",
    "STOP_LIMIT",
    "STP_CANCEL_BOTH",
    "STP_CANCEL_NEWEST",
    "STP_CANCEL_OLDEST",
    "STP_DECREMENT",
    "STP_NONE",
    "AddInstrument",
    "Cancel",
    "Command",
    "Depth",
    "DepthLevel",
    "EndOfSession",
    "Engine",
    "Event",
    "Instrument",
    "NewOrder",
    "OffGridError",
    "OrderView",
    "Quote",
    "Replace",
    "command_from_dict",
    "command_to_dict",
    "constants",
    "event_from_json",
    "event_to_dict",
    "event_to_json",
    "events_digest",
    "events_to_bytes",
]
