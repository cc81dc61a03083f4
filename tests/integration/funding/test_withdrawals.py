"""Withdrawals: the gate (KYC → OTP step-up → whitelisted bank account → cash), the hold, the
payout, maker-checker approval in the admin, failures returning the funds, idempotent tasks."""

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.common.errors import Forbidden
from apps.funding.gateways import GatewayResult, GatewayStatus
from apps.funding.models import (
    BankAccount,
    BankAccountStatus,
    Withdrawal,
    WithdrawalApproval,
    WithdrawalStatus,
)
from apps.funding.services import (
    bank_account_remove,
    funding_resume_stalled,
    withdrawal_approve,
    withdrawal_payout_result_apply,
    withdrawal_process,
    withdrawal_request,
)
from apps.funding.tasks import withdrawal_process_task
from apps.kyc.models import KycApplication
from apps.ledger.errors import InsufficientFunds
from apps.ledger.models import AccountKind, CashAccount, Hold, HoldStatus, Posting
from apps.ledger.services import house_account
from tests.factories import StaffFactory, TOTPDeviceFactory, UserFactory, totp_now
from tests.integration.funding.factories import BankAccountFactory, fresh_otp
from tests.integration.ledger.factories import funded_account

pytestmark = pytest.mark.django_db

WITHDRAWALS = reverse("funding_api:withdrawals")
CHANGELIST = reverse("admin:funding_withdrawal_changelist")
Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]
D = Decimal


@pytest.fixture
def cash(user: User, kyc_approved: KycApplication) -> CashAccount:
    return funded_account(user=user, amount="1000")


@pytest.fixture
def bank(user: User) -> BankAccount:
    bank_account: BankAccount = BankAccountFactory.create(user=user)
    return bank_account


def _withdraw(
    client: APIClient, capture: Capture, *, amount: str, bank_account_id: int, otp: str
) -> Any:
    with capture(execute=True):
        return client.post(
            WITHDRAWALS,
            {"amount": amount, "bank_account_id": bank_account_id, "otp": otp},
            format="json",
        )


def _state(account: CashAccount) -> tuple[Decimal, Decimal]:
    account.refresh_from_db()
    return account.balance, account.held


def _admin_action(client: Client, action: str, *withdrawals: Withdrawal, **extra: str) -> Any:
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(w.pk) for w in withdrawals], **extra}
    if action == "approve_selected":
        data["index"] = "0"
    return client.post(CHANGELIST, data, follow=True)


def _messages(response: Any) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


# --- happy path --------------------------------------------------------------------------------


def test_withdrawal_below_threshold_pays_out_and_consumes_the_hold(
    verified_api_client: APIClient,
    totp_device: TOTPDevice,
    cash: CashAccount,
    bank: BankAccount,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    response = _withdraw(
        verified_api_client,
        django_capture_on_commit_callbacks,
        amount="300.50",
        bank_account_id=bank.pk,
        otp=totp_now(totp_device),
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["amount"] == "300.50000000"
    assert body["bank_account"]["account_number"] == f"••••{bank.account_number_last4}"
    assert body["approvals_required"] == 0

    withdrawal = Withdrawal.objects.get()
    assert withdrawal.status == WithdrawalStatus.COMPLETED
    assert withdrawal.gateway_reference == f"sim_po_{withdrawal.pk}"
    assert _state(cash) == (D("699.50"), D("0"))
    assert withdrawal.hold is not None
    withdrawal.hold.refresh_from_db()
    assert withdrawal.hold.status == HoldStatus.CONSUMED
    assert withdrawal.posting is not None
    lines = {line.account.kind: line.amount for line in withdrawal.posting.lines.all()}
    assert lines == {AccountKind.CUSTOMER: D("-300.50"), AccountKind.HOUSE_BANK: D("300.50")}
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "mfa.step_up_verified",
        "funding.withdrawal_requested",
        "ledger.hold_placed",
        "funding.withdrawal_processing",
        "funding.withdrawal_completed",
    } <= actions
    detail = verified_api_client.get(reverse("funding_api:withdrawal", args=[withdrawal.pk]))
    assert detail.json()["status"] == "completed"


# --- refusals: one code each, nothing written --------------------------------------------------


def _assert_nothing_written(cash: CashAccount) -> None:
    assert not Withdrawal.objects.exists()
    assert not Hold.objects.exists()
    assert _state(cash) == (D("1000"), D("0"))


def test_refused_without_kyc_approval(
    verified_api_client: APIClient,
    user: User,
    totp_device: TOTPDevice,
    bank: BankAccount,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    cash = funded_account(user=user, amount="1000")
    response = _withdraw(
        verified_api_client,
        django_capture_on_commit_callbacks,
        amount="10",
        bank_account_id=bank.pk,
        otp=totp_now(totp_device),
    )
    assert response.status_code == 403
    assert response.json()["code"] == "kyc_not_approved"
    _assert_nothing_written(cash)
    assert not AuditEvent.objects.filter(action__startswith="mfa.step_up").exists()


@pytest.mark.parametrize(
    ("otp", "status", "code"), [("", 403, "otp_required"), ("000000", 400, "otp_invalid")]
)
def test_refused_without_a_valid_otp(
    verified_api_client: APIClient,
    totp_device: TOTPDevice,
    cash: CashAccount,
    bank: BankAccount,
    django_capture_on_commit_callbacks: Capture,
    otp: str,
    status: int,
    code: str,
) -> None:
    if otp and otp == totp_now(totp_device):  # astronomically unlikely, but deterministic
        otp = "999999" if otp != "999999" else "111111"
    response = _withdraw(
        verified_api_client,
        django_capture_on_commit_callbacks,
        amount="10",
        bank_account_id=bank.pk,
        otp=otp,
    )
    assert response.status_code == status
    assert response.json()["code"] == code
    _assert_nothing_written(cash)


def test_a_replayed_otp_is_refused(
    verified_api_client: APIClient,
    totp_device: TOTPDevice,
    cash: CashAccount,
    bank: BankAccount,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    code = totp_now(totp_device)
    first = _withdraw(
        verified_api_client,
        django_capture_on_commit_callbacks,
        amount="10",
        bank_account_id=bank.pk,
        otp=code,
    )
    assert first.status_code == 201
    replay = _withdraw(
        verified_api_client,
        django_capture_on_commit_callbacks,
        amount="10",
        bank_account_id=bank.pk,
        otp=code,
    )
    assert replay.status_code == 400
    assert replay.json()["code"] == "otp_invalid"
    assert Withdrawal.objects.count() == 1
    assert _state(cash) == (D("990"), D("0"))
    assert AuditEvent.objects.filter(action="mfa.step_up_failed").count() == 1


def test_backup_codes_do_not_count_as_step_up(
    verified_api_client: APIClient,
    user: User,
    totp_device: TOTPDevice,
    cash: CashAccount,
    bank: BankAccount,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    static = StaticDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    static.token_set.create(token="abcd-ef01")
    response = _withdraw(
        verified_api_client,
        django_capture_on_commit_callbacks,
        amount="10",
        bank_account_id=bank.pk,
        otp="abcd-ef01",
    )
    assert response.json()["code"] == "otp_invalid"
    _assert_nothing_written(cash)


@pytest.mark.parametrize(
    ("owner", "status", "http", "code"),
    [
        ("self", BankAccountStatus.PENDING_VERIFICATION, 409, "bank_account_not_whitelisted"),
        ("self", BankAccountStatus.REMOVED, 409, "bank_account_not_whitelisted"),
        ("other", BankAccountStatus.WHITELISTED, 404, "bank_account_not_found"),
    ],
)
def test_refused_unless_to_an_own_whitelisted_bank_account(
    verified_api_client: APIClient,
    user: User,
    totp_device: TOTPDevice,
    cash: CashAccount,
    django_capture_on_commit_callbacks: Capture,
    owner: str,
    status: str,
    http: int,
    code: str,
) -> None:
    bank = BankAccountFactory.create(
        user=user if owner == "self" else UserFactory.create(), status=status
    )
    response = _withdraw(
        verified_api_client,
        django_capture_on_commit_callbacks,
        amount="10",
        bank_account_id=bank.pk,
        otp=totp_now(totp_device),
    )
    assert response.status_code == http
    assert response.json()["code"] == code
    _assert_nothing_written(cash)


@pytest.mark.parametrize(
    ("amount", "http", "code"),
    [
        ("1000.01", 409, "insufficient_funds"),
        ("10.001", 400, "invalid_precision"),
        ("0", 400, "invalid_input"),
    ],
)
def test_refused_above_available_cash_or_with_a_bad_amount(
    verified_api_client: APIClient,
    totp_device: TOTPDevice,
    cash: CashAccount,
    bank: BankAccount,
    django_capture_on_commit_callbacks: Capture,
    amount: str,
    http: int,
    code: str,
) -> None:
    response = _withdraw(
        verified_api_client,
        django_capture_on_commit_callbacks,
        amount=amount,
        bank_account_id=bank.pk,
        otp=totp_now(totp_device),
    )
    assert response.status_code == http
    assert response.json()["code"] == code
    _assert_nothing_written(cash)


def test_held_cash_is_not_available_for_a_second_withdrawal(
    user: User, totp_device: TOTPDevice, cash: CashAccount, bank: BankAccount
) -> None:
    cash_funded = funded_account(user=user, amount="20000")
    first = withdrawal_request(
        user=user, amount=D("20500"), bank_account_id=bank.pk, otp=fresh_otp(totp_device)
    )
    assert first.status == WithdrawalStatus.PENDING_APPROVAL
    assert _state(cash_funded) == (D("21000"), D("20500"))
    with pytest.raises(InsufficientFunds):
        withdrawal_request(
            user=user, amount=D("500.01"), bank_account_id=bank.pk, otp=fresh_otp(totp_device)
        )
    assert Withdrawal.objects.count() == 1


# --- failures return the funds -----------------------------------------------------------------


def test_payout_failure_returns_the_funds(
    verified_api_client: APIClient,
    totp_device: TOTPDevice,
    cash: CashAccount,
    bank: BankAccount,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    response = _withdraw(
        verified_api_client,
        django_capture_on_commit_callbacks,
        amount="200.13",
        bank_account_id=bank.pk,
        otp=totp_now(totp_device),
    )
    assert response.status_code == 201
    withdrawal = Withdrawal.objects.get()
    assert withdrawal.status == WithdrawalStatus.FAILED
    assert withdrawal.failure_reason == "The bank rejected the transfer."
    assert withdrawal.posting is None
    assert _state(cash) == (D("1000"), D("0"))
    assert withdrawal.hold is not None
    withdrawal.hold.refresh_from_db()
    assert (withdrawal.hold.status, withdrawal.hold.released_amount) == (
        HoldStatus.RELEASED,
        D("200.13"),
    )
    assert not Posting.objects.filter(kind="withdrawal").exists()


def test_bank_account_removed_before_payout_fails_and_returns_the_funds(
    user: User,
    totp_device: TOTPDevice,
    cash: CashAccount,
    bank: BankAccount,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        withdrawal = withdrawal_request(
            user=user, amount=D("50"), bank_account_id=bank.pk, otp=totp_now(totp_device)
        )
    bank_account_remove(bank_account_id=bank.pk, actor=user)
    assert withdrawal_process(withdrawal_id=withdrawal.pk).status == WithdrawalStatus.FAILED
    withdrawal.refresh_from_db()
    assert "no longer whitelisted" in withdrawal.failure_reason
    assert _state(cash) == (D("1000"), D("0"))


# --- idempotency -------------------------------------------------------------------------------


def test_payout_task_running_twice_changes_nothing(
    user: User,
    totp_device: TOTPDevice,
    cash: CashAccount,
    bank: BankAccount,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        withdrawal = withdrawal_request(
            user=user, amount=D("100"), bank_account_id=bank.pk, otp=totp_now(totp_device)
        )
    assert len(callbacks) == 1  # the payout waits for the commit
    assert withdrawal.status == WithdrawalStatus.APPROVED
    for _ in range(3):
        assert withdrawal_process_task.apply(args=(withdrawal.pk,)).get() == "completed"
    assert Posting.objects.filter(kind="withdrawal").count() == 1
    assert _state(cash) == (D("900"), D("0"))
    # A late duplicate gateway answer is ignored too.
    withdrawal_payout_result_apply(
        withdrawal_id=withdrawal.pk, result=GatewayResult(GatewayStatus.FAILED, "x", "late")
    )
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.COMPLETED
    assert _state(cash) == (D("900"), D("0"))


def test_a_payout_left_processing_by_a_crash_is_resumed_once(
    user: User, totp_device: TOTPDevice, cash: CashAccount, bank: BankAccount
) -> None:
    withdrawal = withdrawal_request(
        user=user, amount=D("100"), bank_account_id=bank.pk, otp=totp_now(totp_device)
    )
    # The worker marked it processing and died before recording the gateway's answer.
    Withdrawal.objects.filter(pk=withdrawal.pk).update(status=WithdrawalStatus.PROCESSING)
    assert funding_resume_stalled(older_than=dt.timedelta(seconds=-1)) == 1
    assert funding_resume_stalled(older_than=dt.timedelta(seconds=-1)) == 0
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.COMPLETED
    assert Posting.objects.filter(kind="withdrawal").count() == 1


# --- maker-checker -----------------------------------------------------------------------------


def test_large_withdrawal_needs_two_distinct_staff_approvals_in_the_admin(
    verified_api_client: APIClient,
    user: User,
    totp_device: TOTPDevice,
    kyc_approved: KycApplication,
    bank: BankAccount,
    staff_client: Client,
    staff_user: User,
    login_client: Callable[..., Client],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    cash = funded_account(user=user, amount="25000")
    response = _withdraw(
        verified_api_client,
        django_capture_on_commit_callbacks,
        amount="10000.01",
        bank_account_id=bank.pk,
        otp=totp_now(totp_device),
    )
    assert response.status_code == 201
    assert response.json()["status"] == "pending_approval"
    assert response.json()["approvals_required"] == 2
    withdrawal = Withdrawal.objects.get()
    assert _state(cash) == (D("25000"), D("10000.01"))

    # First staff approval: still waiting.
    first = _admin_action(staff_client, "approve_selected", withdrawal)
    assert ("success", "Recorded your approval on 1 withdrawal(s).") in _messages(first)
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.PENDING_APPROVAL

    # The same staff member again: refused, not counted.
    again = _admin_action(staff_client, "approve_selected", withdrawal)
    errors = [text for level, text in _messages(again) if level == "error"]
    assert len(errors) == 1
    assert "another staff member" in errors[0]
    assert WithdrawalApproval.objects.filter(withdrawal=withdrawal).count() == 1

    # The requester can never approve their own withdrawal, even as staff.
    User.objects.filter(pk=user.pk).update(is_staff=True, is_superuser=True)
    user.refresh_from_db()
    with pytest.raises(Forbidden) as own:
        withdrawal_approve(withdrawal_id=withdrawal.pk, staff=user)
    assert own.value.code == "own_withdrawal"

    # A second, different staff member: approved → paid out after commit.
    checker = StaffFactory.create()
    checker_client = login_client(checker, TOTPDeviceFactory(user=checker))
    with django_capture_on_commit_callbacks(execute=True):
        second = _admin_action(checker_client, "approve_selected", withdrawal)
    assert ("success", "Recorded your approval on 1 withdrawal(s).") in _messages(second)
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.COMPLETED
    assert _state(cash) == (D("14999.99"), D("0"))
    approvers = set(withdrawal.approvals.values_list("staff_id", flat=True))
    assert approvers == {staff_user.pk, checker.pk}
    assert AuditEvent.objects.filter(action="funding.withdrawal_approved").count() == 2

    # Nothing left to approve.
    late = _admin_action(checker_client, "approve_selected", withdrawal)
    assert any(level == "error" for level, _ in _messages(late))


def test_staff_without_the_permission_cannot_approve(
    user: User, totp_device: TOTPDevice, kyc_approved: KycApplication, bank: BankAccount
) -> None:
    funded_account(user=user, amount="20000")
    withdrawal = withdrawal_request(
        user=user, amount=D("15000"), bank_account_id=bank.pk, otp=totp_now(totp_device)
    )
    plain_staff = UserFactory.create(is_staff=True)
    with pytest.raises(Forbidden):
        withdrawal_approve(withdrawal_id=withdrawal.pk, staff=plain_staff)
    with pytest.raises(Forbidden):
        withdrawal_approve(withdrawal_id=withdrawal.pk, staff=UserFactory.create())


def test_admin_reject_with_reason_releases_the_funds(
    user: User,
    totp_device: TOTPDevice,
    kyc_approved: KycApplication,
    bank: BankAccount,
    staff_client: Client,
) -> None:
    cash = funded_account(user=user, amount="20000")
    withdrawal = withdrawal_request(
        user=user, amount=D("15000"), bank_account_id=bank.pk, otp=totp_now(totp_device)
    )
    page = _admin_action(staff_client, "reject_selected", withdrawal)
    assert page.status_code == 200
    assert "Reason for rejection" in page.content.decode()

    empty = _admin_action(staff_client, "reject_selected", withdrawal, apply="1", reason=" ")
    assert ("error", "A reason is required; nothing was changed.") in _messages(empty)
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.PENDING_APPROVAL

    done = _admin_action(
        staff_client, "reject_selected", withdrawal, apply="1", reason="Source of funds unclear."
    )
    assert ("success", "Rejected 1 withdrawal(s); the funds were released.") in _messages(done)
    withdrawal.refresh_from_db()
    assert withdrawal.status == WithdrawalStatus.REJECTED
    assert withdrawal.failure_reason == "Source of funds unclear."
    assert _state(cash) == (D("20000"), D("0"))
    assert AuditEvent.objects.filter(action="funding.withdrawal_rejected").count() == 1


def test_customer_can_cancel_only_while_waiting_for_approval(
    verified_api_client: APIClient,
    user: User,
    totp_device: TOTPDevice,
    kyc_approved: KycApplication,
    bank: BankAccount,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    cash = funded_account(user=user, amount="20000")
    pending = withdrawal_request(
        user=user, amount=D("15000"), bank_account_id=bank.pk, otp=fresh_otp(totp_device)
    )
    with django_capture_on_commit_callbacks(execute=True):
        small = withdrawal_request(
            user=user, amount=D("100"), bank_account_id=bank.pk, otp=fresh_otp(totp_device)
        )
    cancel = verified_api_client.post(reverse("funding_api:withdrawal-cancel", args=[pending.pk]))
    assert cancel.status_code == 200
    assert cancel.json()["status"] == "cancelled"
    assert _state(cash) == (D("19900"), D("0"))

    too_late = verified_api_client.post(reverse("funding_api:withdrawal-cancel", args=[small.pk]))
    assert too_late.status_code == 409
    assert too_late.json()["code"] == "withdrawal_not_cancellable"
    again = verified_api_client.post(reverse("funding_api:withdrawal-cancel", args=[pending.pk]))
    assert again.status_code == 409


def test_house_bank_mirrors_net_customer_money(
    user: User, totp_device: TOTPDevice, cash: CashAccount, bank: BankAccount
) -> None:
    withdrawal_request(
        user=user, amount=D("400"), bank_account_id=bank.pk, otp=totp_now(totp_device)
    )
    withdrawal_process(withdrawal_id=Withdrawal.objects.get().pk)
    house_bank = house_account(kind=AccountKind.HOUSE_BANK, currency="USD")
    assert house_bank.balance == D("-600")
    assert _state(cash) == (D("600"), D("0"))
