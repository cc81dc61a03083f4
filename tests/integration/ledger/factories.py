"""Helpers to set up cash for tests (also usable by other apps' tests: orders, settlement)."""

from decimal import Decimal

from apps.accounts.models import User
from apps.kyc.models import KycApplication
from apps.ledger.models import AccountKind, CashAccount, PostingKind
from apps.ledger.services import cash_account_get_or_create, house_account, ledger_post
from tests.factories import UserFactory
from tests.integration.kyc.factories import KycApplicationFactory


def approved_user(**kwargs: object) -> User:
    """An active user with a verified email and an approved KYC application."""
    user: User = UserFactory.create(**kwargs)
    application: KycApplication = KycApplicationFactory.create(user=user, approved=True)
    return application.user


def fund(account: CashAccount, amount: Decimal | str) -> CashAccount:
    """Put `amount` on `account` the way a completed deposit would (from the house bank)."""
    value = Decimal(amount)
    bank = house_account(kind=AccountKind.HOUSE_BANK, currency=account.currency)
    ledger_post(
        lines=[(bank, -value), (account, value)], kind=PostingKind.DEPOSIT, memo="test funding"
    )
    account.refresh_from_db()
    return account


def funded_account(
    user: User | None = None, amount: Decimal | str = "1000", currency: str = "USD"
) -> CashAccount:
    owner: User = user or UserFactory.create()
    return fund(cash_account_get_or_create(user=owner, currency=currency), amount)
