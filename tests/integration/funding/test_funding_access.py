"""A user can never see or touch another user's funding objects: 404 `not_found`, not 403."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.funding.models import Deposit, Withdrawal, WithdrawalStatus
from apps.funding.services import deposit_request, withdrawal_request
from apps.kyc.models import KycApplication
from apps.ledger.models import CashAccount
from tests.factories import TOTPDeviceFactory, totp_now
from tests.integration.funding.factories import BankAccountFactory
from tests.integration.ledger.factories import approved_user, funded_account

pytestmark = pytest.mark.django_db


def test_second_user_gets_404_on_every_object_of_the_first(
    verified_api_client: APIClient,
    user: User,
    totp_device: TOTPDevice,
    kyc_approved: KycApplication,
) -> None:
    owner = approved_user()
    device = TOTPDeviceFactory(user=owner)
    funded_account(user=owner, amount="50000")
    bank = BankAccountFactory.create(user=owner)
    deposit, _ = deposit_request(user=owner, amount=Decimal("10"), currency="USD")
    withdrawal = withdrawal_request(
        user=owner, amount=Decimal("20000"), bank_account_id=bank.pk, otp=totp_now(device)
    )
    assert withdrawal.status == WithdrawalStatus.PENDING_APPROVAL

    requests = [
        ("get", reverse("funding_api:deposit", args=[deposit.pk])),
        ("get", reverse("funding_api:withdrawal", args=[withdrawal.pk])),
        ("post", reverse("funding_api:withdrawal-cancel", args=[withdrawal.pk])),
        ("get", reverse("funding_api:bank-account", args=[bank.pk])),
        ("delete", reverse("funding_api:bank-account", args=[bank.pk])),
    ]
    for method, url in requests:
        response = getattr(verified_api_client, method)(url)
        assert response.status_code == 404, (method, url)
        assert response.json()["code"] == "not_found", (method, url)

    # Their lists and accounts show nothing of the owner's either.
    for name in ("deposits", "withdrawals"):
        assert verified_api_client.get(reverse(f"funding_api:{name}")).json()["results"] == []
    assert verified_api_client.get(reverse("funding_api:bank-accounts")).json() == []
    assert verified_api_client.get(reverse("ledger_api:accounts")).json() == []
    assert verified_api_client.get(reverse("ledger_api:cash-activity")).json()["results"] == []

    # A withdrawal to the owner's bank account is refused without revealing it.
    response = verified_api_client.post(
        reverse("funding_api:withdrawals"),
        {"amount": "1", "bank_account_id": bank.pk, "otp": totp_now(totp_device)},
        format="json",
    )
    assert response.status_code == 404
    assert response.json()["code"] == "bank_account_not_found"

    # Nothing changed for the owner.
    withdrawal.refresh_from_db()
    bank.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.PENDING_APPROVAL
    assert bank.status == "whitelisted"
    assert Deposit.objects.filter(user=owner).count() == 1
    assert Withdrawal.objects.filter(user=user).count() == 0
    assert not CashAccount.objects.filter(owner=user).exists()


def test_funding_endpoints_need_otp_verified_authentication(
    user: User, login_client: object
) -> None:
    anonymous = APIClient()
    assert anonymous.get(reverse("funding_api:deposits")).status_code in (401, 403)
    unverified: Client = login_client(user, None, api=True)  # type: ignore[operator]
    response = unverified.post(
        reverse("funding_api:deposits"), {"amount": "1", "currency": "USD"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "otp_required"
