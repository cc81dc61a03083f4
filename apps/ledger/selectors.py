"""Reads of the cash ledger, and the reconciliation checks used by tests and operations."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, DecimalField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from apps.accounts.models import User
from apps.ledger.models import (
    ZERO,
    AccountKind,
    CashAccount,
    Hold,
    HoldStatus,
    Posting,
    PostingLine,
)


def cash_accounts_for(*, user: User) -> QuerySet[CashAccount]:
    """The user's customer cash accounts, by currency."""
    return CashAccount.objects.filter(owner=user, kind=AccountKind.CUSTOMER).order_by("currency")


def cash_account_for(*, user: User, currency: str) -> CashAccount | None:
    return cash_accounts_for(user=user).filter(currency=currency.strip().upper()).first()


def cash_available(*, account: CashAccount) -> Decimal:
    """balance - held as last read. Decide on fresh values: services re-read under lock."""
    return account.balance - account.held


def cash_activity(
    *,
    user: User,
    currency: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[PostingLine]:
    """The user's cash movements, newest first (order by -id, so cursor-paginatable).

    Each line carries `balance_after`, the account's running balance right after it.
    `since` is inclusive, `until` exclusive.
    """
    lines = PostingLine.objects.filter(
        account__owner=user, account__kind=AccountKind.CUSTOMER
    ).select_related("posting", "account")
    if currency:
        lines = lines.filter(currency=currency.strip().upper())
    if since is not None:
        lines = lines.filter(posting__created_at__gte=since)
    if until is not None:
        lines = lines.filter(posting__created_at__lt=until)
    return lines.order_by("-id")


def holds_for(*, account: CashAccount, active_only: bool = True) -> QuerySet[Hold]:
    holds = Hold.objects.filter(account=account)
    if active_only:
        holds = holds.filter(status=HoldStatus.ACTIVE)
    return holds.order_by("id")


# --- reconciliation --------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountMismatch:
    account_id: int
    balance: Decimal
    lines_total: Decimal
    held: Decimal
    active_holds_total: Decimal


def ledger_unbalanced_postings() -> list[int]:
    """Ids of postings with fewer than two lines or lines not summing to zero per currency.

    The database refuses to commit such postings; a non-empty answer means it was bypassed.
    """
    short = Posting.objects.annotate(n=Count("lines")).filter(n__lt=2).values_list("pk", flat=True)
    unbalanced = (
        PostingLine.objects.values("posting_id", "currency")
        .annotate(total=Sum("amount"))
        .exclude(total=0)
        .values_list("posting_id", flat=True)
    )
    return sorted(set(short) | set(unbalanced))


def ledger_account_mismatches() -> list[AccountMismatch]:
    """Accounts whose balance differs from the sum of their lines, or whose `held` differs
    from the sum of their active holds."""
    money: DecimalField[Decimal, Decimal] = DecimalField(max_digits=30, decimal_places=8)
    lines_total = (
        PostingLine.objects.filter(account=OuterRef("pk"))
        .values("account")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    holds_total = (
        Hold.objects.filter(account=OuterRef("pk"), status=HoldStatus.ACTIVE)
        .values("account")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    accounts = CashAccount.objects.annotate(
        lines_total=Coalesce(Subquery(lines_total, output_field=money), Value(ZERO)),
        holds_total=Coalesce(Subquery(holds_total, output_field=money), Value(ZERO)),
    ).order_by("pk")
    return [
        AccountMismatch(
            account_id=account.pk,
            balance=account.balance,
            lines_total=account.lines_total,
            held=account.held,
            active_holds_total=account.holds_total,
        )
        for account in accounts
        if account.balance != account.lines_total or account.held != account.holds_total
    ]


def ledger_totals() -> dict[str, Decimal]:
    """Sum of all account balances per currency: always zero in a double-entry ledger."""
    rows = CashAccount.objects.values("currency").annotate(total=Sum("balance")).order_by()
    return {row["currency"]: row["total"] for row in rows}


def ledger_is_balanced() -> bool:
    """Every posting balanced, every account consistent with its lines and holds, totals 0."""
    return (
        not ledger_unbalanced_postings()
        and not ledger_account_mismatches()
        and all(total == 0 for total in ledger_totals().values())
    )
