"""Bank accounts: added by the customer with an OTP step-up, whitelisted by staff in the admin."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.common.errors import Forbidden
from apps.funding.models import BankAccount, BankAccountStatus
from apps.funding.services import bank_account_whitelist
from tests.factories import StaffFactory, TOTPDeviceFactory, totp_now
from tests.integration.funding.factories import BankAccountFactory, fresh_otp

pytestmark = pytest.mark.django_db

BANK_ACCOUNTS = reverse("funding_api:bank-accounts")
CHANGELIST = reverse("admin:funding_bankaccount_changelist")
IBAN = "DE89 3704 0044 0532 0130 00"


def _body(otp: str, **overrides: str) -> dict[str, str]:
    return {
        "holder_name": "Ada Lovelace",
        "bank_name": "Example Bank",
        "account_number": IBAN,
        "currency": "USD",
        "otp": otp,
        **overrides,
    }


def _messages(response: Any) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def test_add_with_otp_stores_only_a_mask_and_a_fingerprint(
    verified_api_client: APIClient, user: User, totp_device: TOTPDevice
) -> None:
    response = verified_api_client.post(BANK_ACCOUNTS, _body(totp_now(totp_device)), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending_verification"
    assert body["account_number"] == "••••3000"
    account = BankAccount.objects.get()
    stored = " ".join(str(value) for value in account.__dict__.values())
    assert "DE89370400440532013000" not in stored
    assert account.gateway_token.startswith("sim_ba_")
    event = AuditEvent.objects.get(action="funding.bank_account_added")
    assert "DE8937" not in str(event.after)
    assert [row["id"] for row in verified_api_client.get(BANK_ACCOUNTS).json()] == [account.pk]


def test_add_needs_a_fresh_otp_and_refuses_duplicates(
    verified_api_client: APIClient, totp_device: TOTPDevice
) -> None:
    missing = verified_api_client.post(BANK_ACCOUNTS, _body(""), format="json")
    assert missing.status_code == 403
    assert missing.json()["code"] == "otp_required"
    assert not BankAccount.objects.exists()

    code = totp_now(totp_device)
    assert verified_api_client.post(BANK_ACCOUNTS, _body(code), format="json").status_code == 201
    replay = verified_api_client.post(
        BANK_ACCOUNTS, _body(code, account_number="GB29NWBK60161331926819"), format="json"
    )
    assert replay.json()["code"] == "otp_invalid"

    duplicate = verified_api_client.post(
        BANK_ACCOUNTS,
        _body(fresh_otp(totp_device), account_number=IBAN.replace(" ", "").lower()),
        format="json",
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "bank_account_duplicate"
    assert BankAccount.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"account_number": "12-3"}, "account_number"),
        ({"holder_name": "  "}, "holder_name"),
        ({"currency": "XYZ"}, "currency"),
    ],
)
def test_invalid_details_are_refused_before_the_otp_is_used(
    verified_api_client: APIClient, totp_device: TOTPDevice, overrides: dict[str, str], field: str
) -> None:
    response = verified_api_client.post(
        BANK_ACCOUNTS, _body(totp_now(totp_device), **overrides), format="json"
    )
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not AuditEvent.objects.filter(action__startswith="mfa.step_up").exists()


def test_staff_whitelist_in_the_admin(
    staff_client: Client, staff_user: User, login_client: Callable[..., Client]
) -> None:
    pending = BankAccountFactory.create(pending=True)
    page = staff_client.get(CHANGELIST)
    assert page.status_code == 200
    assert pending.user.email in page.content.decode()

    response = staff_client.post(
        CHANGELIST,
        {"action": "whitelist_selected", ACTION_CHECKBOX_NAME: [str(pending.pk)], "index": "0"},
        follow=True,
    )
    assert ("success", "Whitelisted 1 bank account(s).") in _messages(response)
    pending.refresh_from_db()
    assert pending.status == BankAccountStatus.WHITELISTED
    assert pending.whitelisted_by == staff_user
    assert AuditEvent.objects.filter(action="funding.bank_account_whitelisted").count() == 1

    remove = staff_client.post(
        CHANGELIST,
        {"action": "remove_selected", ACTION_CHECKBOX_NAME: [str(pending.pk)], "index": "0"},
        follow=True,
    )
    assert ("success", "Removed 1 bank account(s).") in _messages(remove)
    again = staff_client.post(
        CHANGELIST,
        {"action": "whitelist_selected", ACTION_CHECKBOX_NAME: [str(pending.pk)], "index": "0"},
        follow=True,
    )
    assert any(level == "error" for level, _ in _messages(again))


def test_staff_cannot_whitelist_their_own_bank_account() -> None:
    staff = StaffFactory.create()
    TOTPDeviceFactory(user=staff)
    own = BankAccountFactory.create(user=staff, pending=True)
    with pytest.raises(Forbidden):
        bank_account_whitelist(bank_account_id=own.pk, staff=staff)
    own.refresh_from_db()
    assert own.status == BankAccountStatus.PENDING_VERIFICATION


def test_customer_can_remove_a_bank_account(verified_api_client: APIClient, user: User) -> None:
    account = BankAccountFactory.create(user=user)
    url = reverse("funding_api:bank-account", args=[account.pk])
    assert verified_api_client.get(url).json()["status"] == "whitelisted"
    response = verified_api_client.delete(url)
    assert response.status_code == 200
    assert response.json()["status"] == "removed"
    assert verified_api_client.get(BANK_ACCOUNTS).json() == []
    assert verified_api_client.get(url).status_code == 404
