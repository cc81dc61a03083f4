"""Deposits, withdrawals and the customers' whitelisted bank accounts.

State changes go through `apps.funding.services` (which lock, post to the ledger and audit);
these models hold data only.

Bank account numbers are not stored: the payment gateway tokenises the number when the account
is added (`PaymentGateway.bank_account_tokenize`) and payouts use that token. We keep the last
four characters for display and an HMAC-SHA256 fingerprint (keyed with SECRET_KEY) to refuse
duplicates, so a database leak exposes no usable account number.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.instruments.models import CURRENCY_REGEX, validate_currency
from apps.ledger.models import CashAccount, Hold, Posting


class BankAccountStatus(models.TextChoices):
    PENDING_VERIFICATION = "pending_verification", "Pending verification"
    WHITELISTED = "whitelisted", "Whitelisted"
    REMOVED = "removed", "Removed"


class BankAccount(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bank_accounts"
    )
    holder_name = models.CharField(max_length=140)
    bank_name = models.CharField(max_length=140)
    account_number_last4 = models.CharField(max_length=4)
    account_number_fingerprint = models.CharField(max_length=64, editable=False)
    currency = models.CharField(max_length=3, validators=[validate_currency])
    gateway = models.CharField(max_length=32)
    gateway_token = models.CharField(max_length=128, editable=False)
    status = models.CharField(
        max_length=32,
        choices=BankAccountStatus.choices,
        default=BankAccountStatus.PENDING_VERIFICATION,
        db_index=True,
    )
    whitelisted_at = models.DateTimeField(null=True, blank=True)
    whitelisted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    removed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("verify_bankaccount", "Can whitelist or remove customer bank accounts")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=BankAccountStatus.values),
                name="funding_bankaccount_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_REGEX),
                name="funding_bankaccount_currency_iso4217",
            ),
            models.CheckConstraint(
                condition=~Q(status=BankAccountStatus.WHITELISTED)
                | Q(whitelisted_at__isnull=False),
                name="funding_bankaccount_whitelisted_has_time",
            ),
            models.UniqueConstraint(
                fields=["user", "account_number_fingerprint", "currency"],
                condition=~Q(status=BankAccountStatus.REMOVED),
                name="funding_bankaccount_unique_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bank_name} ••••{self.account_number_last4} ({self.currency})"

    @property
    def masked_number(self) -> str:
        return f"••••{self.account_number_last4}"


class DepositStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class Deposit(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deposits"
    )
    account = models.ForeignKey(CashAccount, on_delete=models.PROTECT, related_name="deposits")
    amount = models.DecimalField(max_digits=24, decimal_places=8)
    currency = models.CharField(max_length=3, validators=[validate_currency])
    status = models.CharField(
        max_length=16, choices=DepositStatus.choices, default=DepositStatus.PENDING, db_index=True
    )
    gateway = models.CharField(max_length=32)
    gateway_reference = models.CharField(max_length=128, blank=True)
    idempotency_key = models.CharField(max_length=64)
    failure_reason = models.CharField(max_length=255, blank=True)
    posting = models.OneToOneField(
        Posting, on_delete=models.PROTECT, null=True, blank=True, related_name="deposit"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"], name="funding_deposit_idempotency_key_unique"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="funding_deposit_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(status__in=DepositStatus.values), name="funding_deposit_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status=DepositStatus.COMPLETED, posting__isnull=False)
                | (~Q(status=DepositStatus.COMPLETED) & Q(posting__isnull=True)),
                name="funding_deposit_completed_iff_posted",
            ),
        ]

    def __str__(self) -> str:
        return f"Deposit #{self.pk} {self.amount} {self.currency} ({self.status})"


class WithdrawalStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    APPROVED = "approved", "Approved"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


# Final states: the hold is consumed (completed) or released (the others).
WITHDRAWAL_FINAL_STATES: tuple[str, ...] = (
    WithdrawalStatus.COMPLETED,
    WithdrawalStatus.FAILED,
    WithdrawalStatus.REJECTED,
    WithdrawalStatus.CANCELLED,
)


class Withdrawal(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="withdrawals"
    )
    account = models.ForeignKey(CashAccount, on_delete=models.PROTECT, related_name="withdrawals")
    bank_account = models.ForeignKey(
        BankAccount, on_delete=models.PROTECT, related_name="withdrawals"
    )
    amount = models.DecimalField(max_digits=24, decimal_places=8)
    currency = models.CharField(max_length=3, validators=[validate_currency])
    status = models.CharField(max_length=32, choices=WithdrawalStatus.choices, db_index=True)
    hold = models.OneToOneField(
        Hold, on_delete=models.PROTECT, null=True, blank=True, related_name="withdrawal"
    )
    requires_approvals = models.PositiveSmallIntegerField(
        default=0, help_text="Distinct staff approvals needed before the payout (0 = none)."
    )
    gateway = models.CharField(max_length=32)
    gateway_reference = models.CharField(max_length=128, blank=True)
    failure_reason = models.CharField(
        max_length=500, blank=True, help_text="Why it failed, was rejected or was cancelled."
    )
    posting = models.OneToOneField(
        Posting, on_delete=models.PROTECT, null=True, blank=True, related_name="withdrawal"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("approve_withdrawal", "Can approve or reject withdrawals")]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="funding_withdrawal_amount_gt_0"
            ),
            models.CheckConstraint(
                condition=Q(status__in=WithdrawalStatus.values),
                name="funding_withdrawal_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(status=WithdrawalStatus.COMPLETED, posting__isnull=False)
                | (~Q(status=WithdrawalStatus.COMPLETED) & Q(posting__isnull=True)),
                name="funding_withdrawal_completed_iff_posted",
            ),
        ]

    def __str__(self) -> str:
        return f"Withdrawal #{self.pk} {self.amount} {self.currency} ({self.status})"


class WithdrawalApproval(models.Model):
    withdrawal = models.ForeignKey(Withdrawal, on_delete=models.PROTECT, related_name="approvals")
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Maker-checker: the same staff member cannot count twice.
            models.UniqueConstraint(
                fields=["withdrawal", "staff"], name="funding_withdrawal_approval_distinct_staff"
            )
        ]

    def __str__(self) -> str:
        return f"Approval of withdrawal #{self.withdrawal_id} by {self.staff_id}"
