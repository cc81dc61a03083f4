"""Names shared by the engine, its events, commands and snapshots.

Every enumerated value is a short string: readable in journals and snapshots, and cheap to
compare. Inside the engine the canonical objects defined here are stored, so hot paths can
compare with ``is``; anything that arrives from outside (commands, snapshots) is mapped to
these objects first (see ``canonical``).
"""

from __future__ import annotations

from typing import Final

# Sides.
BUY: Final = "buy"
SELL: Final = "sell"

# Order types. A stop becomes a market order when triggered, a stop-limit a limit order.
LIMIT: Final = "limit"
MARKET: Final = "market"
STOP: Final = "stop"
STOP_LIMIT: Final = "stop_limit"

# Time in force.
GTC: Final = "GTC"
DAY: Final = "DAY"
IOC: Final = "IOC"
FOK: Final = "FOK"

# Self-trade prevention modes, chosen by the incoming (taker) order.
STP_NONE: Final = "none"
STP_CANCEL_NEWEST: Final = "cancel_newest"
STP_CANCEL_OLDEST: Final = "cancel_oldest"
STP_CANCEL_BOTH: Final = "cancel_both"
STP_DECREMENT: Final = "decrement"

# Order statuses. PENDING = a stop waiting for its trigger; OPEN = resting in the book.
PENDING: Final = "pending"
OPEN: Final = "open"
FILLED: Final = "filled"
CANCELLED: Final = "cancelled"
# Internal only: a record superseded by a replace that lost priority. It may still sit in a
# price-level queue or a stop heap (lazy deletion) but is never visible in queries/snapshots.
STALE: Final = "stale"

# Event kinds (first element of every event tuple).
EV_ACCEPTED: Final = "accepted"
EV_REJECTED: Final = "rejected"
EV_TRADE: Final = "trade"
EV_CANCELLED: Final = "cancelled"
EV_REPLACED: Final = "replaced"
EV_TRIGGERED: Final = "triggered"
EV_INSTRUMENT_ADDED: Final = "instrument_added"
EV_SESSION_ENDED: Final = "session_ended"

# Command names, as reported in rejected events.
CMD_NEW_ORDER: Final = "new_order"
CMD_CANCEL: Final = "cancel"
CMD_REPLACE: Final = "replace"
CMD_END_OF_SESSION: Final = "end_of_session"
CMD_ADD_INSTRUMENT: Final = "add_instrument"

# Cancel reasons.
CXL_USER: Final = "USER"
CXL_IOC_REMAINDER: Final = "IOC_REMAINDER"  # IOC remainder, and unfilled part of market orders
CXL_FOK_UNFILLABLE: Final = "FOK_UNFILLABLE"
CXL_PROTECTION: Final = "PROTECTION"  # market order stopped by its protection limit
CXL_STP: Final = "STP"
CXL_EXPIRED: Final = "EXPIRED"

# Reject reasons (machine-readable).
REJ_INVALID_TIMESTAMP: Final = "INVALID_TIMESTAMP"
REJ_INVALID_ORDER_ID: Final = "INVALID_ORDER_ID"
REJ_UNKNOWN_SYMBOL: Final = "UNKNOWN_SYMBOL"
REJ_DUPLICATE_ORDER_ID: Final = "DUPLICATE_ORDER_ID"
REJ_INVALID_ACCOUNT: Final = "INVALID_ACCOUNT"
REJ_INVALID_SIDE: Final = "INVALID_SIDE"
REJ_INVALID_ORDER_TYPE: Final = "INVALID_ORDER_TYPE"
REJ_INVALID_TIF: Final = "INVALID_TIF"
REJ_INVALID_STP_MODE: Final = "INVALID_STP_MODE"
REJ_INVALID_QUANTITY: Final = "INVALID_QUANTITY"
REJ_OFF_LOT_GRID: Final = "OFF_LOT_GRID"
REJ_MISSING_PRICE: Final = "MISSING_PRICE"
REJ_UNEXPECTED_PRICE: Final = "UNEXPECTED_PRICE"
REJ_INVALID_PRICE: Final = "INVALID_PRICE"
REJ_OFF_TICK_GRID: Final = "OFF_TICK_GRID"
REJ_MISSING_STOP_PRICE: Final = "MISSING_STOP_PRICE"
REJ_UNEXPECTED_STOP_PRICE: Final = "UNEXPECTED_STOP_PRICE"
REJ_INVALID_STOP_PRICE: Final = "INVALID_STOP_PRICE"
REJ_UNEXPECTED_PROTECTION: Final = "UNEXPECTED_PROTECTION"
REJ_INVALID_PROTECTION: Final = "INVALID_PROTECTION"
REJ_UNKNOWN_ORDER: Final = "UNKNOWN_ORDER"
REJ_ORDER_NOT_OPEN: Final = "ORDER_NOT_OPEN"
REJ_ACCOUNT_MISMATCH: Final = "ACCOUNT_MISMATCH"
REJ_QUANTITY_TOO_LOW: Final = "QUANTITY_TOO_LOW"
REJ_DUPLICATE_SYMBOL: Final = "DUPLICATE_SYMBOL"
REJ_INVALID_SYMBOL: Final = "INVALID_SYMBOL"
REJ_INVALID_INSTRUMENT: Final = "INVALID_INSTRUMENT"
REJ_INVALID_COMMAND: Final = "INVALID_COMMAND"

SIDES: Final = (BUY, SELL)
ORDER_TYPES: Final = (LIMIT, MARKET, STOP, STOP_LIMIT)
TIFS: Final = (GTC, DAY, IOC, FOK)
STP_MODES: Final = (STP_NONE, STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH, STP_DECREMENT)
STATUSES: Final = (PENDING, OPEN, FILLED, CANCELLED)

# Upper bound (inclusive) for prices (ticks) and quantities (lots): keeps every integer, and
# sums of a few of them, inside a signed 64-bit range for downstream consumers. A power of two
# so the hot path can test "0 < x <= 2**62" as "not (x - 1) >> 62".
RANGE_BITS: Final = 62
MAX_TICKS: Final = 1 << RANGE_BITS
MAX_LOTS: Final = 1 << RANGE_BITS

_CANONICAL: Final[dict[str, str]] = {
    s: s for s in (*SIDES, *ORDER_TYPES, *TIFS, *STP_MODES, *STATUSES, STALE)
}


def canonical(value: str) -> str:
    """Return the engine's own object for an enumerated string (so ``is`` checks hold)."""
    return _CANONICAL[value]
