"""Session closes for DAY-order expiry (pure calendar arithmetic)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from apps.settlement.sessions import last_session_close

NY = ZoneInfo("America/New_York")

# No database needed; the directory's ledger check runs after every test and wants one.
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("now", "session"),
    [
        (dt.datetime(2026, 3, 6, 16, 0, tzinfo=NY), "2026-03-06"),  # Friday, at the close
        (dt.datetime(2026, 3, 6, 15, 59, tzinfo=NY), "2026-03-05"),  # Friday, still open
        (dt.datetime(2026, 3, 7, 12, 0, tzinfo=NY), "2026-03-06"),  # Saturday
        (dt.datetime(2026, 3, 9, 9, 0, tzinfo=NY), "2026-03-06"),  # Monday morning
        (dt.datetime(2026, 4, 6, 10, 0, tzinfo=NY), "2026-04-02"),  # after Good Friday
        (dt.datetime(2026, 7, 1, 20, 30, tzinfo=dt.UTC), "2026-07-01"),  # 16:30 in New York
    ],
)
def test_xnys_close(now: dt.datetime, session: str) -> None:
    close = last_session_close("xnys", now)
    assert close is not None
    day, at = close
    assert day.isoformat() == session
    assert at.astimezone(NY).time() == dt.time(16, 0)
    assert at <= now


def test_always_open_closes_at_utc_midnight() -> None:
    now = dt.datetime(2026, 3, 3, 0, 0, 5, tzinfo=dt.UTC)
    day, at = last_session_close("always_open", now) or (None, None)
    assert day == dt.date(2026, 3, 2)
    assert at == dt.datetime(2026, 3, 3, tzinfo=dt.UTC)


def test_naive_or_unknown_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        last_session_close("xnys", dt.datetime(2026, 3, 3))
    with pytest.raises(ValueError, match="calendar"):
        last_session_close("lse", dt.datetime(2026, 3, 3, tzinfo=dt.UTC))
