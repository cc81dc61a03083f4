"""The double-entry cash ledger.

Sign convention: every account is seen from its holder's side. A `PostingLine.amount` is
*signed*: positive = credit (the account's balance goes up), negative = debit (it goes down).
The lines of one `Posting` sum to zero per currency, so money is only ever moved, never created:
the sum of all balances of a currency is always 0.

Account kinds and who may go negative:

- `customer`: a trader's cash. Never negative, and `held <= balance` (database checks).
- `house_fee`: commissions and fees the platform earned. Never negative (database checks).
- `house_bank`: the other side of every deposit and withdrawal; it mirrors the money that sits
  at the platform's bank. A deposit of 100 is [house_bank -100, customer +100], so its balance
  is minus the customers' money held at the bank: it is *normally negative* and unconstrained.
- `house_market_maker`: the market maker's trading cash, funded from house capital. It may go
  negative (the house's capital is lent to it; how far is a risk limit, not a ledger
  invariant), so the database does not constrain its balance either. `held` stays >= 0.

The database also guarantees (migration 0002) that postings and their lines are immutable
(UPDATE/DELETE refused), that every posting has >= 2 lines that sum to zero per currency
(checked at COMMIT by a deferred constraint trigger, whatever client inserts them), that lines
carry their account's currency and are added only in the transaction that created the posting.

Writes go through `apps.ledger.services` only; these models hold data.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from apps.instruments.models import CURRENCY_REGEX, validate_currency
from apps.ledger.currencies import LEDGER_DECIMAL_PLACES as PLACES
from apps.ledger.currencies import LEDGER_MAX_DIGITS as MAX_DIGITS

ZERO = Decimal("0")


class AccountKind(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    HOUSE_FEE = "house_fee", "House: fees"
    HOUSE_MARKET_MAKER = "house_market_maker", "House: market maker"
    HOUSE_BANK = "house_bank", "House: bank (external money)"


# Kinds whose balance may never go below zero nor below the held amount.
NON_NEGATIVE_KINDS: tuple[str, ...] = (AccountKind.CUSTOMER, AccountKind.HOUSE_FEE)
HOUSE_KINDS: tuple[str, ...] = (
    AccountKind.HOUSE_FEE,
    AccountKind.HOUSE_MARKET_MAKER,
    AccountKind.HOUSE_BANK,
)


class CashAccount(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cash_accounts",
        help_text="The customer; empty for house accounts.",
    )
    kind = models.CharField(max_length=32, choices=AccountKind.choices)
    currency = models.CharField(max_length=3, validators=[validate_currency])
    balance = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=PLACES, default=ZERO)
    held = models.DecimalField(
        max_digits=MAX_DIGITS,
        decimal_places=PLACES,
        default=ZERO,
        help_text="Sum of the active holds' remaining amounts.",
    )
    trading_blocked = models.BooleanField(default=False)
    trading_blocked_reason = models.CharField(max_length=255, blank=True)
    short_selling_enabled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=AccountKind.values), name="ledger_cashaccount_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_REGEX),
                name="ledger_cashaccount_currency_iso4217",
            ),
            # Customer accounts have an owner; house accounts never do.
            models.CheckConstraint(
                condition=(Q(kind=AccountKind.CUSTOMER) & Q(owner__isnull=False))
                | (~Q(kind=AccountKind.CUSTOMER) & Q(owner__isnull=True)),
                name="ledger_cashaccount_owner_matches_kind",
            ),
            models.UniqueConstraint(
                fields=["owner", "currency", "kind"],
                condition=Q(kind=AccountKind.CUSTOMER),
                name="ledger_cashaccount_one_per_customer_currency",
            ),
            models.UniqueConstraint(
                fields=["kind", "currency"],
                condition=~Q(kind=AccountKind.CUSTOMER),
                name="ledger_cashaccount_one_house_per_kind_currency",
            ),
            models.CheckConstraint(condition=Q(held__gte=0), name="ledger_cashaccount_held_gte_0"),
            models.CheckConstraint(
                condition=~Q(kind__in=NON_NEGATIVE_KINDS) | Q(balance__gte=0),
                name="ledger_cashaccount_balance_gte_0",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=NON_NEGATIVE_KINDS) | Q(held__lte=F("balance")),
                name="ledger_cashaccount_held_lte_balance",
            ),
        ]

    def __str__(self) -> str:
        if self.kind == AccountKind.CUSTOMER:
            return f"#{self.pk} {self.currency} ({self.owner_id})"
        return f"#{self.pk} {self.get_kind_display()} {self.currency}"

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


class PostingKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    TRADE = "trade", "Trade"
    FEE = "fee", "Fee"
    TRANSFER = "transfer", "Transfer"
    ADJUSTMENT = "adjustment", "Adjustment"


class Posting(models.Model):
    """One journal entry: a balanced set of lines, written once and never changed."""

    kind = models.CharField(max_length=32, choices=PostingKind.choices)
    reference_type = models.CharField(max_length=64, blank=True, help_text="e.g. funding.deposit")
    reference_id = models.CharField(max_length=64, blank=True)
    memo = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["reference_type", "reference_id"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=PostingKind.values), name="ledger_posting_kind_valid"
            )
        ]

    def __str__(self) -> str:
        return f"Posting #{self.pk} ({self.kind})"


class PostingLine(models.Model):
    posting = models.ForeignKey(Posting, on_delete=models.PROTECT, related_name="lines")
    account = models.ForeignKey(CashAccount, on_delete=models.PROTECT, related_name="lines")
    amount = models.DecimalField(
        max_digits=MAX_DIGITS,
        decimal_places=PLACES,
        help_text="Signed: positive = credit (balance up), negative = debit.",
    )
    currency = models.CharField(max_length=3)
    # The account's balance right after this line: the running balance of cash activity. Exact
    # because lines of one account are written one at a time under that account's row lock.
    balance_after = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=PLACES)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["account", "-id"])]
        constraints = [
            models.CheckConstraint(
                condition=~Q(amount=0), name="ledger_postingline_amount_not_zero"
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_REGEX),
                name="ledger_postingline_currency_iso4217",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount:+} {self.currency} on #{self.account_id}"


class HoldReason(models.TextChoices):
    ORDER = "order", "Open buy order"
    WITHDRAWAL = "withdrawal", "Pending withdrawal"


class HoldStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RELEASED = "released", "Released"
    CONSUMED = "consumed", "Consumed"


class Hold(models.Model):
    """Cash reserved on an account. `amount` is what is still reserved:

    original_amount = amount + consumed_amount + released_amount   (database check)
    """

    account = models.ForeignKey(CashAccount, on_delete=models.PROTECT, related_name="holds")
    amount = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=PLACES, help_text="Remaining reserved amount."
    )
    original_amount = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=PLACES)
    consumed_amount = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=PLACES, default=ZERO
    )
    released_amount = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=PLACES, default=ZERO
    )
    reason = models.CharField(max_length=16, choices=HoldReason.choices)
    reference_type = models.CharField(max_length=64, blank=True, help_text="e.g. orders.order")
    reference_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=HoldStatus.choices, default=HoldStatus.ACTIVE, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["reference_type", "reference_id"]),
            models.Index(fields=["account", "status"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(reason__in=HoldReason.values), name="ledger_hold_reason_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=HoldStatus.values), name="ledger_hold_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(original_amount__gt=0)
                & Q(amount__gte=0)
                & Q(consumed_amount__gte=0)
                & Q(released_amount__gte=0),
                name="ledger_hold_amounts_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(
                    original_amount=F("amount") + F("consumed_amount") + F("released_amount")
                ),
                name="ledger_hold_amounts_add_up",
            ),
            # Active exactly while something is still reserved.
            models.CheckConstraint(
                condition=(Q(status=HoldStatus.ACTIVE) & Q(amount__gt=0))
                | (~Q(status=HoldStatus.ACTIVE) & Q(amount=0)),
                name="ledger_hold_active_iff_remaining",
            ),
        ]

    def __str__(self) -> str:
        return f"Hold #{self.pk} {self.amount}/{self.original_amount} ({self.status})"
