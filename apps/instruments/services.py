"""Writes for instruments. Each function owns its transaction and writes an audit record."""

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit.services import audit_record
from apps.common.errors import InvalidInput, InvalidTransition
from apps.instruments.models import Instrument, InstrumentStatus, TradingCalendar


def _decimal(name: str, value: Decimal | str | int) -> Decimal:
    """Exact decimals only: floats cannot represent most prices and are refused."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInput(
            f"{name} must be a decimal string.", fields={name: ["Enter a decimal string."]}
        )
    try:
        return Decimal(value)
    except InvalidOperation:
        raise InvalidInput(
            f"{name}: {value!r} is not a number.", fields={name: ["Enter a number."]}
        ) from None


def instrument_snapshot(instrument: Instrument) -> dict[str, Any]:
    return {
        "symbol": instrument.symbol,
        "name": instrument.name,
        "asset_class": instrument.asset_class,
        "currency": instrument.currency,
        "tick_size": instrument.tick_size,
        "lot_size": instrument.lot_size,
        "status": instrument.status,
        "calendar": instrument.calendar,
        "reference_price": instrument.reference_price,
    }


def _full_clean(instrument: Instrument) -> None:
    try:
        instrument.full_clean()
    except ValidationError as exc:
        fields = {key: list(messages) for key, messages in exc.message_dict.items()}
        first = next(iter(fields.items()))
        raise InvalidInput(f"{first[0]}: {first[1][0]}", fields=fields) from exc


def instrument_create(
    *,
    symbol: str,
    name: str,
    asset_class: str,
    currency: str,
    tick_size: Decimal | str,
    lot_size: Decimal | str,
    calendar: str = TradingCalendar.XNYS,
    status: str = InstrumentStatus.ACTIVE,
    reference_price: Decimal | str | None = None,
    actor: Any = None,
) -> Instrument:
    """Create an instrument; raises `InvalidInput` (with per-field messages) if anything is off,
    including a symbol that already exists."""
    instrument = Instrument(
        symbol=symbol.strip().upper(),
        name=name.strip(),
        asset_class=asset_class,
        currency=currency.strip().upper(),
        tick_size=_decimal("tick_size", tick_size),
        lot_size=_decimal("lot_size", lot_size),
        calendar=calendar,
        status=status,
        reference_price=(
            None if reference_price is None else _decimal("reference_price", reference_price)
        ),
    )
    with transaction.atomic():
        _full_clean(instrument)
        instrument.save()
        audit_record(
            action="instrument.created",
            actor=actor,
            obj=instrument,
            after=instrument_snapshot(instrument),
        )
    return instrument


def instrument_set_status(*, symbol: str, status: str, actor: Any = None) -> Instrument:
    """Halt, resume or delist an instrument. Delisting is final."""
    if status not in InstrumentStatus.values:
        raise InvalidInput(f"Unknown status {status!r}.", fields={"status": ["Unknown status."]})
    with transaction.atomic():
        instrument = Instrument.objects.select_for_update().get(symbol=symbol.strip().upper())
        before = instrument.status
        if before == status:
            return instrument
        if before == InstrumentStatus.DELISTED:
            raise InvalidTransition(f"{instrument.symbol} is delisted.")
        instrument.status = status
        instrument.save(update_fields=["status", "updated_at"])
        audit_record(
            action="instrument.status_changed",
            actor=actor,
            obj=instrument,
            before={"status": before},
            after={"status": status},
        )
    return instrument
