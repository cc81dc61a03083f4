"""API fields for money: decimal strings in and out, never floats."""

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from apps.ledger.currencies import LEDGER_DECIMAL_PLACES, LEDGER_MAX_DIGITS


class MoneyField(serializers.DecimalField):
    """A decimal string with at most 8 places (the currency's own precision is checked by the
    service). JSON numbers with a fraction are refused: a float cannot carry money exactly."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", LEDGER_MAX_DIGITS)
        kwargs.setdefault("decimal_places", LEDGER_DECIMAL_PLACES)
        kwargs.setdefault("coerce_to_string", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, float):
            raise serializers.ValidationError(
                'Send amounts as decimal strings, e.g. "100.25".', code="invalid"
            )
        value: Decimal = super().to_internal_value(data)
        return value


class PositiveMoneyField(MoneyField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", Decimal("0.00000001"))
        super().__init__(**kwargs)
