"""Session closes of the trading calendars (pure functions), for DAY-order expiry.

`last_session_close(calendar, now)` is the most recent close at or before `now`, with the date
of the session it ends (the id of the end-of-session command is built from it, so asking again
for the same close gives the same id).

- `always_open`: a DAY order lives until the end of its UTC day, so every UTC midnight closes
  the session of the day before it.
- `xnys`: 16:00 America/New_York on trading days (weekdays that are not exchange holidays).
"""

import datetime as dt

from apps.instruments.calendars import NEW_YORK, XNYS_CLOSE, XNYS_HOLIDAYS

# A calendar with no trading day in this many days is misconfigured; stop looking.
_MAX_LOOKBACK_DAYS = 30


def _xnys_trading_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in XNYS_HOLIDAYS


def last_session_close(calendar: str, now: dt.datetime) -> tuple[dt.date, dt.datetime] | None:
    """(session date, close instant in UTC) of the latest close <= `now`, or None if none is
    found in the last month."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if calendar == "always_open":
        midnight = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight - dt.timedelta(days=1)).date(), midnight
    if calendar == "xnys":
        local_now = now.astimezone(NEW_YORK)
        day = local_now.date()
        for _ in range(_MAX_LOOKBACK_DAYS):
            if _xnys_trading_day(day):
                close = dt.datetime.combine(day, XNYS_CLOSE, tzinfo=NEW_YORK)
                if close <= local_now:
                    return day, close.astimezone(dt.UTC)
            day -= dt.timedelta(days=1)
        return None
    raise ValueError(f"unknown trading calendar {calendar!r}")
