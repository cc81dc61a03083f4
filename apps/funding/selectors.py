"""Reads for funding. Lookups on behalf of a customer are scoped to that customer: another
user's id is simply "not found" (code `not_found`), never "forbidden"."""

from django.db.models import QuerySet

from apps.accounts.models import User
from apps.common.errors import NotFound
from apps.funding.models import BankAccount, BankAccountStatus, Deposit, Withdrawal


def deposits_for(*, user: User) -> QuerySet[Deposit]:
    return Deposit.objects.filter(user=user).order_by("-id")


def deposit_get_for(*, user: User, deposit_id: int) -> Deposit:
    deposit = deposits_for(user=user).filter(pk=deposit_id).first()
    if deposit is None:
        raise NotFound("Deposit not found.", code="not_found")
    return deposit


def withdrawals_for(*, user: User) -> QuerySet[Withdrawal]:
    return Withdrawal.objects.filter(user=user).select_related("bank_account").order_by("-id")


def withdrawal_get_for(*, user: User, withdrawal_id: int) -> Withdrawal:
    withdrawal = withdrawals_for(user=user).filter(pk=withdrawal_id).first()
    if withdrawal is None:
        raise NotFound("Withdrawal not found.", code="not_found")
    return withdrawal


def bank_accounts_for(*, user: User, include_removed: bool = False) -> QuerySet[BankAccount]:
    accounts = BankAccount.objects.filter(user=user)
    if not include_removed:
        accounts = accounts.exclude(status=BankAccountStatus.REMOVED)
    return accounts.order_by("-id")


def bank_account_get_for(*, user: User, bank_account_id: int) -> BankAccount:
    bank_account = bank_accounts_for(user=user).filter(pk=bank_account_id).first()
    if bank_account is None:
        raise NotFound("Bank account not found.", code="not_found")
    return bank_account
