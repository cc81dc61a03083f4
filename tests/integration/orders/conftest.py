from decimal import Decimal
from typing import Any

import pytest

from apps.accounts.models import User
from apps.instruments.models import Instrument
from apps.ledger.models import AccountKind
from apps.ledger.services import cash_account_get_or_create, house_account, ledger_post
from apps.orders.models import RiskTier
from tests.factories import UserFactory
from tests.integration.kyc.factories import KycApplicationFactory


@pytest.fixture
def instrument(db: None) -> Instrument:
    return Instrument.objects.create(
        symbol="ACME",
        name="Acme Corp",
        asset_class="equity",
        currency="USD",
        tick_size=Decimal("0.01"),
        lot_size=Decimal("1"),
        status="active",
        calendar="always_open",
        reference_price=Decimal("100.00"),
    )


@pytest.fixture
def default_tier(db: None) -> RiskTier:
    return RiskTier.objects.create(
        name="retail",
        max_order_quantity=Decimal(10_000),
        max_order_notional=Decimal(1_000_000),
        price_collar_pct=Decimal(10),
        market_buffer_pct=Decimal(5),
        daily_order_limit=5_000,
        commission_bps=Decimal(10),
        commission_minimum=Decimal("1.00"),
        is_default=True,
    )


def approve_kyc(user: User) -> None:
    KycApplicationFactory.create(user=user, approved=True)


def fund(user: User, amount: str, currency: str = "USD") -> Any:
    account = cash_account_get_or_create(user=user, currency=currency)
    bank = house_account(kind=AccountKind.HOUSE_BANK, currency=currency)
    ledger_post(lines=[(bank, -Decimal(amount)), (account, Decimal(amount))], kind="deposit")
    account.refresh_from_db()
    return account


@pytest.fixture
def trader(db: None, default_tier: RiskTier) -> User:
    user: User = UserFactory.create()
    approve_kyc(user)
    return user
