from decimal import Decimal

import pytest

from apps.instruments.models import Instrument
from tests.integration.ledger.checks import ledger_consistent_after_test
from tests.integration.orders.conftest import default_tier, instrument, trader
from tests.integration.settlement.support import EngineDriver

__all__ = ["default_tier", "instrument", "ledger_consistent_after_test", "trader"]


@pytest.fixture
def driver(instrument: Instrument) -> EngineDriver:
    """An in-process engine that knows the `instrument` (ACME, tick 0.01, lot 1, 24/7)."""
    engine = EngineDriver()
    engine.add_instrument(instrument)
    return engine


@pytest.fixture
def coin(db: None) -> Instrument:
    """A fractional instrument: quantities in lots of 0.0001."""
    return Instrument.objects.create(
        symbol="COIN-USD",
        name="Coin",
        asset_class="crypto",
        currency="USD",
        tick_size=Decimal("0.01"),
        lot_size=Decimal("0.0001"),
        status="active",
        calendar="always_open",
        reference_price=Decimal("50000.00"),
    )
