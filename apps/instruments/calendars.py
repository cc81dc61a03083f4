"""Trading calendars (pure functions): is the regular session open at a given instant?

`always_open` trades 24/7. `xnys` is the NYSE regular session, 09:30-16:00 America/New_York on
weekdays, closed on the exchange holidays listed here (extend per year; the admin-managed holiday
table arrives with the instruments' sessions work).
"""

import datetime as dt
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
XNYS_OPEN = dt.time(9, 30)
XNYS_CLOSE = dt.time(16, 0)
XNYS_HOLIDAYS = frozenset(
    dt.date.fromisoformat(d)
    for d in (
        "2026-01-01", "2026-01-19", "2026-02-16", "2026-04-03", "2026-05-25", "2026-06-19",
        "2026-07-03", "2026-09-07", "2026-11-26", "2026-12-25",
        "2027-01-01", "2027-01-18", "2027-02-15", "2027-03-26", "2027-05-31", "2027-06-18",
        "2027-07-05", "2027-09-06", "2027-11-25", "2027-12-24",
    )
)  # fmt: skip


def session_open(calendar: str, at: dt.datetime) -> bool:
    if calendar == "always_open":
        return True
    if calendar == "xnys":
        local = at.astimezone(NEW_YORK)
        if local.weekday() >= 5 or local.date() in XNYS_HOLIDAYS:
            return False
        return XNYS_OPEN <= local.time() < XNYS_CLOSE
    raise ValueError(f"unknown trading calendar {calendar!r}")
