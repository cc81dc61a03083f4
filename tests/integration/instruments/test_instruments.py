from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from apps.audit.models import AuditEvent
from apps.common.errors import InvalidInput, InvalidTransition
from apps.instruments.models import AssetClass, Instrument, InstrumentStatus, TradingCalendar
from apps.instruments.selectors import instrument_get, instrument_list_active
from apps.instruments.services import instrument_create, instrument_set_status

pytestmark = pytest.mark.django_db


def valid(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "symbol": "ACME",
        "name": "Acme Corp",
        "asset_class": AssetClass.EQUITY,
        "currency": "USD",
        "tick_size": Decimal("0.01"),
        "lot_size": Decimal(1),
    }
    fields.update(overrides)
    return fields


# --- database constraints (bypassing validation on purpose) -------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"tick_size": Decimal(0)},
        {"tick_size": Decimal("-0.01")},
        {"lot_size": Decimal(0)},
        {"reference_price": Decimal(0)},
        {"symbol": "acme"},
        {"symbol": "AC ME"},
        {"currency": "usd"},
        {"currency": "US"},
        {"status": "paused"},
        {"calendar": "xlon"},
        {"asset_class": "bond"},
    ],
)
def test_database_rejects_invalid_instruments(overrides: dict[str, object]) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Instrument.objects.create(**valid(**overrides))


def test_symbol_is_unique_in_the_database() -> None:
    Instrument.objects.create(**valid())
    with pytest.raises(IntegrityError), transaction.atomic():
        Instrument.objects.create(**valid(name="Other"))


# --- services -----------------------------------------------------------------------------------


def test_instrument_create_normalises_and_audits() -> None:
    instrument = instrument_create(
        symbol=" btc-usd ",
        name="Bitcoin",
        asset_class=AssetClass.CRYPTO,
        currency="usd",
        tick_size="0.01",
        lot_size="0.0001",
        calendar=TradingCalendar.ALWAYS_OPEN,
    )
    instrument.refresh_from_db()
    assert instrument.symbol == "BTC-USD"
    assert instrument.currency == "USD"
    assert instrument.lot_size == Decimal("0.0001")
    assert instrument.is_tradable
    event = AuditEvent.objects.get(action="instrument.created")
    assert event.object_id == str(instrument.pk)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"tick_size": Decimal(0)}, "__all__"),
        ({"currency": "DOLLAR"}, "currency"),
        ({"symbol": "BAD SYMBOL"}, "symbol"),
        ({"tick_size": Decimal("0.000000001")}, "tick_size"),  # more than 8 decimal places
        ({"asset_class": "bond"}, "asset_class"),
    ],
)
def test_instrument_create_rejects_invalid_input(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        instrument_create(**valid(**overrides))  # type: ignore[arg-type]
    assert field in excinfo.value.fields
    assert not Instrument.objects.exists()


def test_instrument_create_refuses_floats_and_duplicates() -> None:
    with pytest.raises(InvalidInput):
        instrument_create(**valid(tick_size=0.01))  # type: ignore[arg-type]
    instrument_create(**valid())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as excinfo:
        instrument_create(**valid(symbol="acme"))  # type: ignore[arg-type]
    assert "symbol" in excinfo.value.fields


def test_status_changes_and_selectors() -> None:
    for symbol in ("MSFT", "AAPL", "TSLA"):
        instrument_create(**valid(symbol=symbol))  # type: ignore[arg-type]
    instrument_set_status(symbol="tsla", status=InstrumentStatus.HALTED)
    assert [i.symbol for i in instrument_list_active()] == ["AAPL", "MSFT"]
    assert instrument_get("aapl").symbol == "AAPL"
    with pytest.raises(Instrument.DoesNotExist):
        instrument_get("NOPE")

    instrument_set_status(symbol="TSLA", status=InstrumentStatus.DELISTED)
    with pytest.raises(InvalidTransition):
        instrument_set_status(symbol="TSLA", status=InstrumentStatus.ACTIVE)
    assert AuditEvent.objects.filter(action="instrument.status_changed").count() == 2
