"""Reads of instruments."""

from django.db.models import QuerySet

from apps.instruments.models import Instrument, InstrumentStatus


def instrument_list_active() -> QuerySet[Instrument]:
    """Instruments open for trading, by symbol."""
    return Instrument.objects.filter(status=InstrumentStatus.ACTIVE).order_by("symbol")


def instrument_get(symbol: str) -> Instrument:
    """The instrument with this symbol (any case); raises `Instrument.DoesNotExist`."""
    return Instrument.objects.get(symbol=symbol.strip().upper())
