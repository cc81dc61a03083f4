"""REST: the caller's cash accounts and cash activity (decimal strings, running balances)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.ledger.models import AccountKind, HoldReason, PostingKind
from apps.ledger.services import hold_place, house_account, ledger_post
from tests.factories import TOTPDeviceFactory
from tests.integration.ledger.factories import fund, funded_account

pytestmark = pytest.mark.django_db

ACCOUNTS = reverse("ledger_api:accounts")
ACTIVITY = reverse("ledger_api:cash-activity")


def test_accounts_show_balance_held_and_available_as_strings(
    verified_api_client: APIClient, user: User
) -> None:
    usd = funded_account(user=user, amount="1250.5")
    funded_account(user=user, amount="0.5", currency="EUR")
    funded_account(amount="999")  # someone else's
    hold_place(account=usd, amount=Decimal("200.25"), reason=HoldReason.ORDER)

    response = verified_api_client.get(ACCOUNTS)
    assert response.status_code == 200
    body = response.json()
    assert [row["currency"] for row in body] == ["EUR", "USD"]
    usd_row = body[1]
    assert usd_row["balance"] == "1250.50000000"
    assert usd_row["held"] == "200.25000000"
    assert usd_row["available"] == "1050.25000000"
    assert usd_row["trading_blocked"] is False
    assert all(isinstance(value, str) for value in (usd_row["balance"], usd_row["available"]))


def test_cash_activity_is_newest_first_with_running_balance_and_cursor_pages(
    verified_api_client: APIClient, user: User
) -> None:
    account = funded_account(user=user, amount="100")
    mm = house_account(kind=AccountKind.HOUSE_MARKET_MAKER, currency="USD")
    for _ in range(4):
        ledger_post(lines=[(account, Decimal("-10")), (mm, Decimal("10"))], kind=PostingKind.TRADE)
    fund(account, "5")
    funded_account(amount="77")  # another user's movements never show

    first = verified_api_client.get(ACTIVITY, {"page_size": 4})
    assert first.status_code == 200
    page = first.json()
    rows = page["results"]
    assert [row["amount"] for row in rows] == [
        "5.00000000",
        "-10.00000000",
        "-10.00000000",
        "-10.00000000",
    ]
    assert [row["balance_after"] for row in rows] == [
        "65.00000000",
        "60.00000000",
        "70.00000000",
        "80.00000000",
    ]
    assert rows[0]["kind"] == "deposit"
    assert rows[1]["kind"] == "trade"
    assert page["next"]

    second = verified_api_client.get(page["next"]).json()
    assert [row["balance_after"] for row in second["results"]] == [
        "90.00000000",
        "100.00000000",
    ]
    assert second["next"] is None


def test_cash_activity_filters(verified_api_client: APIClient, user: User) -> None:
    funded_account(user=user, amount="10")
    funded_account(user=user, amount="3", currency="EUR")
    only_eur = verified_api_client.get(ACTIVITY, {"currency": "eur"}).json()["results"]
    assert [row["currency"] for row in only_eur] == ["EUR"]
    future = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    assert verified_api_client.get(ACTIVITY, {"since": future}).json()["results"] == []
    assert len(verified_api_client.get(ACTIVITY, {"until": future}).json()["results"]) == 2
    bad = verified_api_client.get(ACTIVITY, {"since": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_input"


def test_ledger_endpoints_need_an_otp_verified_session(user: User, login_client: object) -> None:
    anonymous = APIClient()
    assert anonymous.get(ACCOUNTS).status_code in (401, 403)
    device = TOTPDeviceFactory(user=user)
    unverified = login_client(user, None, api=True)  # type: ignore[operator]
    response = unverified.get(ACCOUNTS)
    assert response.status_code == 403
    assert response.json()["code"] == "otp_required"
    assert login_client(user, device, api=True).get(ACCOUNTS).status_code == 200  # type: ignore[operator]
