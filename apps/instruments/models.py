"""Tradable instruments: the reference data every order, trade and position points at.

Prices and quantities of an instrument live on its grid: a price is a whole multiple of
`tick_size`, a quantity a whole multiple of `lot_size` (the matching engine converts them to
integer ticks and lots). Writes go through `apps.instruments.services`.
"""

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

SYMBOL_REGEX = r"^[A-Z0-9][A-Z0-9.\-/]{0,31}$"
CURRENCY_REGEX = r"^[A-Z]{3}$"
DECIMAL_DIGITS = 20
DECIMAL_PLACES = 8

validate_symbol = RegexValidator(
    SYMBOL_REGEX,
    "Use 1-32 upper-case letters, digits, '.', '-' or '/', starting with a letter or digit.",
    code="invalid_symbol",
)
validate_currency = RegexValidator(
    CURRENCY_REGEX, "Use an ISO 4217 three-letter code, e.g. USD.", code="invalid_currency"
)


class AssetClass(models.TextChoices):
    EQUITY = "equity", "Equity"
    ETF = "etf", "ETF"
    CRYPTO = "crypto", "Crypto"


class InstrumentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    HALTED = "halted", "Halted"
    DELISTED = "delisted", "Delisted"


class TradingCalendar(models.TextChoices):
    # New York Stock Exchange regular session (sessions and holidays arrive in a later issue).
    XNYS = "xnys", "NYSE (XNYS)"
    ALWAYS_OPEN = "always_open", "Always open (24/7)"


class Instrument(models.Model):
    symbol = models.CharField(max_length=32, unique=True, validators=[validate_symbol])
    name = models.CharField(max_length=200)
    asset_class = models.CharField(max_length=16, choices=AssetClass.choices)
    currency = models.CharField(
        max_length=3, validators=[validate_currency], help_text="ISO 4217 code, e.g. USD."
    )
    tick_size = models.DecimalField(
        max_digits=DECIMAL_DIGITS,
        decimal_places=DECIMAL_PLACES,
        help_text="Smallest price increment; every price is a whole multiple of it.",
    )
    lot_size = models.DecimalField(
        max_digits=DECIMAL_DIGITS,
        decimal_places=DECIMAL_PLACES,
        help_text="Smallest quantity increment; every quantity is a whole multiple of it.",
    )
    status = models.CharField(
        max_length=16,
        choices=InstrumentStatus.choices,
        default=InstrumentStatus.ACTIVE,
        db_index=True,
    )
    calendar = models.CharField(
        max_length=16, choices=TradingCalendar.choices, default=TradingCalendar.XNYS
    )
    # Last known price (for display and price-band checks before the first trade); optional.
    reference_price = models.DecimalField(
        max_digits=DECIMAL_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(
                condition=Q(symbol=Upper("symbol")) & Q(symbol__regex=SYMBOL_REGEX),
                name="instrument_symbol_uppercase",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_REGEX), name="instrument_currency_iso4217"
            ),
            models.CheckConstraint(condition=Q(tick_size__gt=0), name="instrument_tick_positive"),
            models.CheckConstraint(condition=Q(lot_size__gt=0), name="instrument_lot_positive"),
            models.CheckConstraint(
                condition=Q(reference_price__isnull=True) | Q(reference_price__gt=0),
                name="instrument_reference_price_positive",
            ),
            models.CheckConstraint(
                condition=Q(status__in=InstrumentStatus.values), name="instrument_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(calendar__in=TradingCalendar.values),
                name="instrument_calendar_valid",
            ),
            models.CheckConstraint(
                condition=Q(asset_class__in=AssetClass.values),
                name="instrument_asset_class_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.symbol

    @property
    def is_tradable(self) -> bool:
        return self.status == InstrumentStatus.ACTIVE
