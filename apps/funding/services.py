"""Writes for deposits, withdrawals and customer bank accounts.

Money moves only through `apps.ledger.services`; every state change writes its audit record in
the same transaction as the change. Gateway calls and Celery enqueues happen outside any
transaction (enqueues via `transaction.on_commit`), so a rollback can never leave money moved
at the provider without a trace here, nor a task running for a row that does not exist.

Locks follow the platform order: cash accounts (ascending id) → withdrawal / deposit row →
hold (taken by the ledger services) → audit chain.

Flows:

- Deposit: `deposit_request` (pending) → after commit `deposit_process` (task) calls the gateway
  → `deposit_gateway_result_apply`: success posts [house_bank -amount, customer +amount] and
  completes it; failure marks it failed (nothing posted); pending leaves it for a later retry.
- Withdrawal: `withdrawal_request` checks, in this order, trading eligibility (KYC), a fresh
  OTP (step-up), the whitelisted bank account, the amount and the available cash, then creates
  the withdrawal and a hold for it in one transaction. At or below the approval threshold it
  is `approved` at once; above it, `pending_approval` until WITHDRAWAL_APPROVALS_REQUIRED (>= 2)
  *different* staff users approve it in the admin (maker-checker; the requester never counts).
  Then `withdrawal_process` (task) marks it `processing`, calls the gateway's payout, and
  `withdrawal_payout_result_apply` consumes the hold with [customer -amount, house_bank
  +amount] (completed) or releases it (failed: the funds are available again). Staff may reject
  it until its payout starts, the customer may cancel it while it waits for approval; both
  release the hold.

Every background step re-reads the row under lock and does nothing unless it is in the state the
step expects, so a task that runs twice (retry, redelivery, the stalled-work sweeper) changes
nothing the second time; the gateway itself is idempotent on our references.
"""

import datetime as dt
import hashlib
import hmac
import logging
import re
import uuid
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import User
from apps.accounts.services import OtpInvalid
from apps.audit.services import audit_record
from apps.common.errors import DomainError, Forbidden, InvalidInput, InvalidTransition, NotFound
from apps.funding.gateways import GatewayResult, GatewayStatus, get_gateway
from apps.funding.models import (
    BankAccount,
    BankAccountStatus,
    Deposit,
    DepositStatus,
    Withdrawal,
    WithdrawalApproval,
    WithdrawalStatus,
)
from apps.kyc.selectors import trading_eligibility
from apps.ledger.currencies import currency_decimals, validate_money_amount
from apps.ledger.errors import InsufficientFunds
from apps.ledger.models import AccountKind, HoldReason, PostingKind
from apps.ledger.selectors import cash_account_for
from apps.ledger.services import (
    cash_account_get_or_create,
    cash_accounts_lock,
    hold_consume,
    hold_place,
    hold_release,
    house_account,
    ledger_post,
)

logger = logging.getLogger(__name__)

DEPOSIT_REF = "funding.deposit"
WITHDRAWAL_REF = "funding.withdrawal"
MAX_REASON_LENGTH = 500
ACCOUNT_NUMBER_RE = re.compile(r"^[A-Z0-9]{6,34}$")


class NotEligible(DomainError):
    """Account inactive, email not verified or KYC not approved (code from the KYC gate)."""

    status_code = 403


class OtpRequired(DomainError):
    code = "otp_required"
    status_code = 403


class Conflict(DomainError):
    status_code = 409


# --- helpers ---------------------------------------------------------------------------------


def _require_eligible(user: User) -> None:
    eligibility = trading_eligibility(user=user)
    if not eligibility.allowed:
        raise NotEligible(eligibility.message, code=eligibility.code)


def _enqueue(task_name: str, object_id: int) -> None:
    """Hand work to Celery. Runs after commit; in eager mode (tests) the task runs inline."""
    from apps.funding import tasks

    task = getattr(tasks, task_name)
    if settings.CELERY_TASK_ALWAYS_EAGER:
        task.apply(args=(object_id,))
    else:
        task.delay(object_id)


def _enqueue_on_commit(task_name: str, object_id: int) -> None:
    # robust: a broker outage must not turn a committed request into an error response; the
    # stalled-work sweeper (funding_resume_stalled) picks the row up later.
    transaction.on_commit(partial(_enqueue, task_name, object_id), robust=True)


def _require_staff(staff: Any, permission: str) -> User:
    if not (
        isinstance(staff, User)
        and staff.is_active
        and staff.is_staff
        and staff.has_perm(permission)
    ):
        raise Forbidden("You are not allowed to do this.", code="permission_denied")
    return staff


def otp_step_up_verify(*, user: User, otp: str, purpose: str, ip: str | None = None) -> TOTPDevice:
    """Require a fresh code from the user's authenticator app for a sensitive action.

    Backup codes do not count here. django-otp refuses a code at or before the device's last
    used time step (replay) and throttles the device after a failure. Runs in its own
    transaction so that a later refusal of the action does not roll back the code's use or the
    failure count. Raises `OtpRequired` (no code / no authenticator) or `OtpInvalid`.
    """
    token = (otp or "").strip().replace(" ", "")
    if not token:
        raise OtpRequired("Enter the current code from your authenticator app to confirm.")
    with transaction.atomic():
        devices = list(
            TOTPDevice.objects.devices_for_user(user, confirmed=True)
            .select_for_update()
            .order_by("pk")
        )
        if not devices:
            raise OtpRequired(
                "Set up an authenticator app first: this action needs a code from it.",
                code="otp_required",
            )
        device = next((d for d in devices if d.verify_token(token)), None)
        audit_record(
            action="mfa.step_up_verified" if device else "mfa.step_up_failed",
            actor=user,
            obj=device or user,
            after={"purpose": purpose},
            ip=ip,
        )
    if device is None:
        raise OtpInvalid("That code is not valid or was already used.")
    return device


def withdrawal_approval_threshold(*, currency: str) -> Decimal:
    """Withdrawals strictly above this amount need staff approvals (maker-checker)."""
    raw = settings.WITHDRAWAL_APPROVAL_THRESHOLDS.get(
        currency, settings.WITHDRAWAL_APPROVAL_THRESHOLD
    )
    return Decimal(str(raw))


# --- bank accounts ---------------------------------------------------------------------------


def _account_number_normalize(account_number: str) -> str:
    number = re.sub(r"[\s\-]", "", account_number or "").upper()
    if not ACCOUNT_NUMBER_RE.fullmatch(number):
        raise InvalidInput(
            "Enter the account number or IBAN: 6 to 34 letters and digits.",
            fields={"account_number": ["6 to 34 letters and digits."]},
        )
    return number


def _account_number_fingerprint(number: str) -> str:
    return hmac.new(
        settings.SECRET_KEY.encode(), f"bank-account:{number}".encode(), hashlib.sha256
    ).hexdigest()


def _name(value: str, field: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(
            f"{field.replace('_', ' ').capitalize()} is required.", fields={field: ["Required."]}
        )
    if len(value) > 140:
        raise InvalidInput("At most 140 characters.", fields={field: ["At most 140 characters."]})
    return value


def bank_account_add(
    *,
    user: User,
    holder_name: str,
    bank_name: str,
    account_number: str,
    currency: str,
    otp: str,
    ip: str | None = None,
) -> BankAccount:
    """Register a payout bank account (OTP step-up). It starts `pending_verification`; staff
    whitelist it in the admin after checking it belongs to the customer."""
    holder_name = _name(holder_name, "holder_name")
    bank_name = _name(bank_name, "bank_name")
    number = _account_number_normalize(account_number)
    currency = (currency or "").strip().upper()
    currency_decimals(currency)
    otp_step_up_verify(user=user, otp=otp, purpose="bank_account_add", ip=ip)

    fingerprint = _account_number_fingerprint(number)
    duplicate = Conflict("This bank account is already registered.", code="bank_account_duplicate")
    active = BankAccount.objects.filter(
        user=user, account_number_fingerprint=fingerprint, currency=currency
    ).exclude(status=BankAccountStatus.REMOVED)
    if active.exists():
        raise duplicate
    gateway = get_gateway()
    token = gateway.bank_account_tokenize(
        account_number=number, holder_name=holder_name, currency=currency
    )
    try:
        with transaction.atomic():
            bank_account = BankAccount.objects.create(
                user=user,
                holder_name=holder_name,
                bank_name=bank_name,
                account_number_last4=number[-4:],
                account_number_fingerprint=fingerprint,
                currency=currency,
                gateway=gateway.name,
                gateway_token=token,
            )
            audit_record(
                action="funding.bank_account_added",
                actor=user,
                obj=bank_account,
                after={
                    "holder_name": holder_name,
                    "bank_name": bank_name,
                    "last4": bank_account.account_number_last4,
                    "currency": currency,
                },
                ip=ip,
            )
    except IntegrityError:
        raise duplicate from None
    return bank_account


def bank_account_whitelist(
    *, bank_account_id: int, staff: Any, ip: str | None = None
) -> BankAccount:
    """Staff confirm the account belongs to the customer (e.g. from a statement or a
    micro-deposit); withdrawals may then go to it. Staff cannot whitelist their own account."""
    staff = _require_staff(staff, "funding.verify_bankaccount")
    with transaction.atomic():
        bank_account = BankAccount.objects.select_for_update().filter(pk=bank_account_id).first()
        if bank_account is None:
            raise NotFound("Bank account not found.", code="not_found")
        if bank_account.user_id == staff.pk:
            raise Forbidden("You cannot verify your own bank account.", code="own_bank_account")
        if bank_account.status == BankAccountStatus.WHITELISTED:
            return bank_account
        if bank_account.status != BankAccountStatus.PENDING_VERIFICATION:
            raise InvalidTransition(
                "A removed bank account cannot be whitelisted.", code="bank_account_removed"
            )
        bank_account.status = BankAccountStatus.WHITELISTED
        bank_account.whitelisted_at = timezone.now()
        bank_account.whitelisted_by = staff
        bank_account.save(update_fields=["status", "whitelisted_at", "whitelisted_by"])
        audit_record(
            action="funding.bank_account_whitelisted",
            actor=staff,
            obj=bank_account,
            before={"status": BankAccountStatus.PENDING_VERIFICATION},
            after={"status": bank_account.status},
            ip=ip,
        )
    return bank_account


def bank_account_remove(*, bank_account_id: int, actor: Any, ip: str | None = None) -> BankAccount:
    """Remove a bank account (its owner, or staff allowed to verify bank accounts). Payouts to
    it that have not started yet will fail and return the funds."""
    is_staff = (
        isinstance(actor, User) and actor.is_staff and actor.has_perm("funding.verify_bankaccount")
    )
    with transaction.atomic():
        rows = BankAccount.objects.select_for_update().filter(pk=bank_account_id)
        if not is_staff:
            rows = rows.filter(user=actor)
        bank_account = rows.first()
        if bank_account is None:
            raise NotFound("Bank account not found.", code="not_found")
        if bank_account.status == BankAccountStatus.REMOVED:
            return bank_account
        before = {"status": bank_account.status}
        bank_account.status = BankAccountStatus.REMOVED
        bank_account.removed_at = timezone.now()
        bank_account.save(update_fields=["status", "removed_at"])
        audit_record(
            action="funding.bank_account_removed",
            actor=actor,
            obj=bank_account,
            before=before,
            after={"status": bank_account.status},
            ip=ip,
        )
    return bank_account


# --- deposits --------------------------------------------------------------------------------


def _existing_deposit(*, user: User, key: str, amount: Decimal, currency: str) -> Deposit | None:
    deposit = Deposit.objects.filter(user=user, idempotency_key=key).first()
    if deposit is not None and (deposit.amount != amount or deposit.currency != currency):
        raise Conflict(
            "This idempotency key was already used for a different deposit.",
            code="idempotency_key_reused",
        )
    return deposit


def deposit_request(
    *,
    user: User,
    amount: Decimal,
    currency: str,
    idempotency_key: str = "",
    ip: str | None = None,
) -> tuple[Deposit, bool]:
    """Create a pending deposit; the gateway is charged after commit (Celery).

    Returns (deposit, created). Repeating a request with the same idempotency key returns the
    first deposit (created=False); reusing a key for a different amount or currency is refused.
    Deposits need the same eligibility as trading (an approved KYC: no unverified money in).
    """
    currency = (currency or "").strip().upper()
    amount = validate_money_amount(amount, currency=currency)
    key = (idempotency_key or "").strip() or uuid.uuid4().hex
    if len(key) > 64:
        raise InvalidInput(
            "The idempotency key is too long.", fields={"idempotency_key": ["At most 64."]}
        )
    _require_eligible(user)
    existing = _existing_deposit(user=user, key=key, amount=amount, currency=currency)
    if existing is not None:
        return existing, False
    account = cash_account_get_or_create(user=user, currency=currency)
    gateway = get_gateway()
    try:
        with transaction.atomic():
            deposit = Deposit.objects.create(
                user=user,
                account=account,
                amount=amount,
                currency=currency,
                gateway=gateway.name,
                idempotency_key=key,
            )
            audit_record(
                action="funding.deposit_requested",
                actor=user,
                obj=deposit,
                after={"amount": amount, "currency": currency, "gateway": gateway.name},
                ip=ip,
            )
            _enqueue_on_commit("deposit_process_task", deposit.pk)
    except IntegrityError:  # a concurrent request with the same key won
        existing = _existing_deposit(user=user, key=key, amount=amount, currency=currency)
        if existing is None:
            raise
        return existing, False
    return deposit, True


def deposit_process(*, deposit_id: int) -> Deposit:
    """Charge a pending deposit at the gateway and apply the result (Celery task body).

    Must not run inside a transaction: the gateway call is a side effect.
    """
    deposit = Deposit.objects.filter(pk=deposit_id).first()
    if deposit is None:
        raise NotFound(f"Deposit #{deposit_id} does not exist.", code="not_found")
    if deposit.status != DepositStatus.PENDING:
        return deposit
    result = get_gateway().charge(deposit)
    return deposit_gateway_result_apply(deposit_id=deposit_id, result=result)


def deposit_gateway_result_apply(*, deposit_id: int, result: GatewayResult) -> Deposit:
    """Record the gateway's answer for a pending deposit (also the entry point for webhooks).

    Succeeded: post [house_bank -amount, customer +amount] and complete. Failed: mark failed,
    nothing posted. Pending: remember the reference only. A deposit no longer pending is left
    alone (idempotent). Locks: customer + house bank accounts → deposit → (ledger) → audit.
    """
    row = Deposit.objects.filter(pk=deposit_id).values("account_id", "currency").first()
    if row is None:
        raise NotFound(f"Deposit #{deposit_id} does not exist.", code="not_found")
    with transaction.atomic():
        bank = house_account(kind=AccountKind.HOUSE_BANK, currency=row["currency"])
        cash_accounts_lock(account_ids=[row["account_id"], bank.pk])
        deposit = Deposit.objects.select_for_update().get(pk=deposit_id)
        if deposit.status != DepositStatus.PENDING:
            return deposit
        if result.reference:
            deposit.gateway_reference = result.reference[:128]
        if result.status == GatewayStatus.PENDING:
            deposit.save(update_fields=["gateway_reference", "updated_at"])
            return deposit
        if result.status == GatewayStatus.SUCCEEDED:
            deposit.posting = ledger_post(
                lines=[(bank.pk, -deposit.amount), (deposit.account_id, deposit.amount)],
                kind=PostingKind.DEPOSIT,
                reference_type=DEPOSIT_REF,
                reference_id=deposit.pk,
                memo=f"Deposit #{deposit.pk} via {deposit.gateway}",
            )
            deposit.status = DepositStatus.COMPLETED
            deposit.completed_at = timezone.now()
        else:
            deposit.status = DepositStatus.FAILED
            deposit.failure_reason = (result.failure_reason or "The payment failed.")[:255]
        deposit.save(
            update_fields=[
                "status",
                "posting",
                "completed_at",
                "failure_reason",
                "gateway_reference",
                "updated_at",
            ]
        )
        audit_record(
            action=f"funding.deposit_{deposit.status}",
            obj=deposit,
            before={"status": DepositStatus.PENDING},
            after={
                "status": deposit.status,
                "gateway_reference": deposit.gateway_reference,
                "failure_reason": deposit.failure_reason,
                "posting": deposit.posting_id,
            },
        )
    return deposit


# --- withdrawals -----------------------------------------------------------------------------


def withdrawal_request(
    *,
    user: User,
    amount: Decimal,
    bank_account_id: int,
    otp: str,
    ip: str | None = None,
) -> Withdrawal:
    """Request a payout to one of the user's whitelisted bank accounts (see the module doc for
    the order of checks and the codes: eligibility code, `otp_required` / `otp_invalid`,
    `bank_account_not_found`, `bank_account_not_whitelisted`, `invalid_input` /
    `invalid_precision`, `insufficient_funds`)."""
    _require_eligible(user)
    otp_step_up_verify(user=user, otp=otp, purpose="withdrawal", ip=ip)

    bank_account = BankAccount.objects.filter(pk=bank_account_id, user=user).first()
    if bank_account is None:
        raise NotFound("Bank account not found.", code="bank_account_not_found")
    if bank_account.status != BankAccountStatus.WHITELISTED:
        raise Conflict(
            "Withdrawals can only go to a verified (whitelisted) bank account.",
            code="bank_account_not_whitelisted",
        )
    currency = bank_account.currency
    amount = validate_money_amount(amount, currency=currency)
    account = cash_account_for(user=user, currency=currency)
    if account is None:
        raise InsufficientFunds(f"You have no {currency} to withdraw.")

    threshold = withdrawal_approval_threshold(currency=currency)
    approvals = settings.WITHDRAWAL_APPROVALS_REQUIRED if amount > threshold else 0
    gateway = get_gateway()
    with transaction.atomic():
        cash_accounts_lock(account_ids=[account.pk])
        withdrawal = Withdrawal.objects.create(
            user=user,
            account=account,
            bank_account=bank_account,
            amount=amount,
            currency=currency,
            status=WithdrawalStatus.PENDING_APPROVAL if approvals else WithdrawalStatus.APPROVED,
            requires_approvals=approvals,
            gateway=gateway.name,
        )
        withdrawal.hold = hold_place(
            account=account.pk,
            amount=amount,
            reason=HoldReason.WITHDRAWAL,
            reference_type=WITHDRAWAL_REF,
            reference_id=withdrawal.pk,
            actor=user,
        )
        withdrawal.save(update_fields=["hold"])
        audit_record(
            action="funding.withdrawal_requested",
            actor=user,
            obj=withdrawal,
            after={
                "amount": amount,
                "currency": currency,
                "bank_account": bank_account.pk,
                "status": withdrawal.status,
                "requires_approvals": approvals,
            },
            ip=ip,
        )
        if not approvals:
            _enqueue_on_commit("withdrawal_process_task", withdrawal.pk)
    return withdrawal


def withdrawal_approve(*, withdrawal_id: int, staff: Any, ip: str | None = None) -> Withdrawal:
    """One staff approval of a withdrawal above the threshold (maker-checker).

    The approvals must come from distinct active staff users with the `approve_withdrawal`
    permission, none of them the requester. When the last required approval arrives the
    withdrawal becomes `approved` and its payout starts after commit. Locks: withdrawal; audit.
    """
    staff = _require_staff(staff, "funding.approve_withdrawal")
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().filter(pk=withdrawal_id).first()
        if withdrawal is None:
            raise NotFound("Withdrawal not found.", code="not_found")
        if withdrawal.user_id == staff.pk:
            raise Forbidden("You cannot approve your own withdrawal.", code="own_withdrawal")
        if withdrawal.status != WithdrawalStatus.PENDING_APPROVAL:
            raise InvalidTransition(
                f"Withdrawal #{withdrawal.pk} is {withdrawal.get_status_display().lower()}, "
                "not waiting for approval.",
                code="withdrawal_not_pending_approval",
            )
        if WithdrawalApproval.objects.filter(withdrawal=withdrawal, staff=staff).exists():
            raise Conflict(
                "You already approved this withdrawal; another staff member must approve it.",
                code="already_approved",
            )
        WithdrawalApproval.objects.create(withdrawal=withdrawal, staff=staff)
        count = WithdrawalApproval.objects.filter(withdrawal=withdrawal).count()
        if count >= withdrawal.requires_approvals:
            withdrawal.status = WithdrawalStatus.APPROVED
            withdrawal.save(update_fields=["status", "updated_at"])
            _enqueue_on_commit("withdrawal_process_task", withdrawal.pk)
        audit_record(
            action="funding.withdrawal_approved",
            actor=staff,
            obj=withdrawal,
            after={
                "approvals": count,
                "required": withdrawal.requires_approvals,
                "status": withdrawal.status,
            },
            ip=ip,
        )
    return withdrawal


def _withdrawal_release(
    *,
    withdrawal_id: int,
    user: User | None,
    allowed: tuple[str, ...],
    new_status: str,
    reason: str,
    actor: Any,
    action: str,
    ip: str | None,
) -> Withdrawal:
    """Move a withdrawal to a final state that returns the funds (release its hold)."""
    rows = Withdrawal.objects.filter(pk=withdrawal_id)
    if user is not None:
        rows = rows.filter(user=user)
    account_id = rows.values_list("account_id", flat=True).first()
    if account_id is None:
        raise NotFound("Withdrawal not found.", code="not_found")
    with transaction.atomic():
        cash_accounts_lock(account_ids=[account_id])
        withdrawal = Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
        if withdrawal.status not in allowed:
            raise InvalidTransition(
                f"Withdrawal #{withdrawal.pk} is {withdrawal.get_status_display().lower()}; "
                "it can no longer be changed.",
                code="withdrawal_not_cancellable"
                if new_status == WithdrawalStatus.CANCELLED
                else "invalid_transition",
            )
        before = {"status": withdrawal.status}
        if withdrawal.hold_id is not None:
            hold_release(hold=withdrawal.hold_id, actor=actor, memo=reason)
        withdrawal.status = new_status
        withdrawal.failure_reason = reason[:MAX_REASON_LENGTH]
        withdrawal.save(update_fields=["status", "failure_reason", "updated_at"])
        audit_record(
            action=action,
            actor=actor,
            obj=withdrawal,
            before=before,
            after={"status": new_status, "reason": withdrawal.failure_reason},
            ip=ip,
        )
    return withdrawal


def withdrawal_reject(
    *, withdrawal_id: int, staff: Any, reason: str, ip: str | None = None
) -> Withdrawal:
    """Staff refuse a withdrawal before its payout starts; the funds are released."""
    staff = _require_staff(staff, "funding.approve_withdrawal")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(
            "Give a reason: the customer is shown it.", fields={"reason": ["Required."]}
        )
    return _withdrawal_release(
        withdrawal_id=withdrawal_id,
        user=None,
        allowed=(WithdrawalStatus.PENDING_APPROVAL, WithdrawalStatus.APPROVED),
        new_status=WithdrawalStatus.REJECTED,
        reason=reason,
        actor=staff,
        action="funding.withdrawal_rejected",
        ip=ip,
    )


def withdrawal_cancel(*, user: User, withdrawal_id: int, ip: str | None = None) -> Withdrawal:
    """The customer withdraws their request while it waits for approval; funds released."""
    return _withdrawal_release(
        withdrawal_id=withdrawal_id,
        user=user,
        allowed=(WithdrawalStatus.PENDING_APPROVAL,),
        new_status=WithdrawalStatus.CANCELLED,
        reason="Cancelled by the customer.",
        actor=user,
        action="funding.withdrawal_cancelled",
        ip=ip,
    )


def withdrawal_process(*, withdrawal_id: int) -> Withdrawal:
    """Start (or resume) the payout of an approved withdrawal (Celery task body).

    approved → processing (committed first), then the gateway payout outside any transaction,
    then `withdrawal_payout_result_apply`. A withdrawal already `processing` (a crash or retry
    after the gateway call) asks the gateway again, which answers idempotently. Any other state
    is left alone. If the bank account was removed meanwhile the payout fails and funds return.
    """
    with transaction.atomic():
        withdrawal = (
            Withdrawal.objects.select_for_update()
            .select_related("bank_account")
            .filter(pk=withdrawal_id)
            .first()
        )
        if withdrawal is None:
            raise NotFound(f"Withdrawal #{withdrawal_id} does not exist.", code="not_found")
        if withdrawal.status == WithdrawalStatus.APPROVED:
            withdrawal.status = WithdrawalStatus.PROCESSING
            withdrawal.save(update_fields=["status", "updated_at"])
            audit_record(
                action="funding.withdrawal_processing",
                obj=withdrawal,
                before={"status": WithdrawalStatus.APPROVED},
                after={"status": withdrawal.status},
            )
        elif withdrawal.status != WithdrawalStatus.PROCESSING:
            return withdrawal
    if withdrawal.bank_account.status != BankAccountStatus.WHITELISTED:
        result = GatewayResult(
            GatewayStatus.FAILED, "", "The bank account is no longer whitelisted."
        )
    else:
        result = get_gateway().payout(withdrawal)
    return withdrawal_payout_result_apply(withdrawal_id=withdrawal_id, result=result)


def withdrawal_payout_result_apply(*, withdrawal_id: int, result: GatewayResult) -> Withdrawal:
    """Record the gateway's answer for a processing withdrawal (also for webhooks).

    Succeeded: consume the hold with [customer -amount, house_bank +amount]; completed.
    Failed: release the hold (the funds are available again); failed with the reason.
    Pending: remember the reference. Not processing: left alone (idempotent).
    Locks: customer + house bank accounts → withdrawal → hold → audit.
    """
    row = Withdrawal.objects.filter(pk=withdrawal_id).values("account_id", "currency").first()
    if row is None:
        raise NotFound(f"Withdrawal #{withdrawal_id} does not exist.", code="not_found")
    with transaction.atomic():
        bank = house_account(kind=AccountKind.HOUSE_BANK, currency=row["currency"])
        cash_accounts_lock(account_ids=[row["account_id"], bank.pk])
        withdrawal = Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
        if withdrawal.status != WithdrawalStatus.PROCESSING:
            return withdrawal
        if result.reference:
            withdrawal.gateway_reference = result.reference[:128]
        if result.status == GatewayStatus.PENDING:
            withdrawal.save(update_fields=["gateway_reference", "updated_at"])
            return withdrawal
        if withdrawal.hold_id is None:  # cannot happen: created together with the withdrawal
            raise InvalidTransition(f"Withdrawal #{withdrawal.pk} has no hold.")
        if result.status == GatewayStatus.SUCCEEDED:
            withdrawal.posting = hold_consume(
                hold=withdrawal.hold_id,
                amount=withdrawal.amount,
                lines=[(withdrawal.account_id, -withdrawal.amount), (bank.pk, withdrawal.amount)],
                kind=PostingKind.WITHDRAWAL,
                reference_type=WITHDRAWAL_REF,
                reference_id=withdrawal.pk,
                memo=f"Withdrawal #{withdrawal.pk} to {withdrawal.bank_account_id}",
            )
            withdrawal.status = WithdrawalStatus.COMPLETED
            withdrawal.completed_at = timezone.now()
        else:
            reason = (result.failure_reason or "The payout failed.")[:MAX_REASON_LENGTH]
            hold_release(hold=withdrawal.hold_id, memo=reason)
            withdrawal.status = WithdrawalStatus.FAILED
            withdrawal.failure_reason = reason
        withdrawal.save(
            update_fields=[
                "status",
                "posting",
                "completed_at",
                "failure_reason",
                "gateway_reference",
                "updated_at",
            ]
        )
        audit_record(
            action=f"funding.withdrawal_{withdrawal.status}",
            obj=withdrawal,
            before={"status": WithdrawalStatus.PROCESSING},
            after={
                "status": withdrawal.status,
                "gateway_reference": withdrawal.gateway_reference,
                "failure_reason": withdrawal.failure_reason,
                "posting": withdrawal.posting_id,
            },
        )
    return withdrawal


# --- recovery --------------------------------------------------------------------------------


def funding_resume_stalled(*, older_than: dt.timedelta | None = None) -> int:
    """Re-enqueue background steps that should have run by now (Celery beat).

    Covers an enqueue lost because the broker was down at commit time, and payouts left
    `processing` by a crash. Safe because every step is idempotent. Returns how many.
    """
    age = older_than or dt.timedelta(seconds=settings.FUNDING_RESUME_AFTER_SECONDS)
    cutoff = timezone.now() - age
    deposits = list(
        Deposit.objects.filter(status=DepositStatus.PENDING, updated_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )
    withdrawals = list(
        Withdrawal.objects.filter(
            Q(status=WithdrawalStatus.APPROVED) | Q(status=WithdrawalStatus.PROCESSING),
            updated_at__lt=cutoff,
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )
    for deposit_id in deposits:
        _enqueue("deposit_process_task", deposit_id)
    for withdrawal_id in withdrawals:
        _enqueue("withdrawal_process_task", withdrawal_id)
    if deposits or withdrawals:
        logger.warning(
            "re-enqueued %d stalled deposit(s) and %d withdrawal(s)",
            len(deposits),
            len(withdrawals),
        )
    return len(deposits) + len(withdrawals)
