"""The back-office pages render, are read-only, and their actions go through the services."""

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse

from apps.funding.models import BankAccount, Deposit, Withdrawal
from apps.funding.services import deposit_process, deposit_request, withdrawal_request
from apps.ledger.models import CashAccount, Hold, Posting
from tests.factories import TOTPDeviceFactory, totp_now
from tests.integration.funding.factories import BankAccountFactory
from tests.integration.ledger.factories import approved_user, funded_account

pytestmark = pytest.mark.django_db

MODELS = [CashAccount, Posting, Hold, BankAccount, Deposit, Withdrawal]


def _some_of_everything() -> None:
    owner = approved_user()
    device = TOTPDeviceFactory(user=owner)
    funded_account(user=owner, amount="30000")
    bank = BankAccountFactory.create(user=owner)
    deposit, _ = deposit_request(user=owner, amount=Decimal("12.50"), currency="USD")
    deposit_process(deposit_id=deposit.pk)
    withdrawal_request(
        user=owner, amount=Decimal("20000"), bank_account_id=bank.pk, otp=totp_now(device)
    )


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_and_change_pages_render_read_only(staff_client: Client, model: Any) -> None:
    _some_of_everything()
    opts = model._meta
    changelist = staff_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    assert changelist.status_code == 200
    obj = model.objects.order_by("pk").first()
    change_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    page = staff_client.get(change_url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert staff_client.post(change_url, {}).status_code == 403
    add_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
    assert staff_client.get(add_url).status_code == 403


def test_posting_page_shows_its_lines(staff_client: Client) -> None:
    account = funded_account(amount="42")
    posting = Posting.objects.get()
    page = staff_client.get(reverse("admin:ledger_posting_change", args=[posting.pk]))
    content = page.content.decode()
    assert "42.00000000" in content
    assert "-42.00000000" in content
    assert account.pk


def test_block_and_unblock_trading_from_the_admin(staff_client: Client) -> None:
    account = funded_account(amount="1")
    changelist = reverse("admin:ledger_cashaccount_changelist")
    data = {"action": "block_trading", ACTION_CHECKBOX_NAME: [str(account.pk)], "index": "0"}
    response = staff_client.post(changelist, data, follow=True)
    assert response.status_code == 200
    account.refresh_from_db()
    assert account.trading_blocked
    assert "Blocked from the back office" in account.trading_blocked_reason
    staff_client.post(changelist, {**data, "action": "unblock_trading"}, follow=True)
    account.refresh_from_db()
    assert not account.trading_blocked
