"""The currencies customers can fund and withdraw in, with their minor-unit precision.

The ledger itself stores 8 decimal places for every currency (trade amounts such as
0.0001 BTC x 65000.01 USD need them); money that crosses the platform boundary (deposits,
withdrawals) must fit the currency's own precision.
"""

from decimal import Decimal

from apps.common.errors import InvalidInput

# ISO 4217 code -> decimal places of the smallest unit that can be paid in or out.
CURRENCY_DECIMALS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "BTC": 8,
}

LEDGER_DECIMAL_PLACES = 8
LEDGER_MAX_DIGITS = 24
# The largest absolute amount a DecimalField(24, 8) column holds is < 10**16.
LEDGER_AMOUNT_LIMIT = Decimal(10) ** (LEDGER_MAX_DIGITS - LEDGER_DECIMAL_PLACES)


def currency_decimals(currency: str) -> int:
    """Decimal places for `currency`; raises `InvalidInput` (code `unsupported_currency`)."""
    try:
        return CURRENCY_DECIMALS[currency]
    except KeyError:
        raise InvalidInput(
            f"{currency or 'That currency'} is not supported.",
            code="unsupported_currency",
            fields={"currency": [f"Use one of {', '.join(sorted(CURRENCY_DECIMALS))}."]},
        ) from None


def has_at_most_places(amount: Decimal, places: int) -> bool:
    """True when `amount` is a whole multiple of 10**-places (trailing zeros do not count)."""
    if not amount.is_finite():
        return False
    exponent = amount.normalize().as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -places


def validate_money_amount(amount: Decimal, *, currency: str, field: str = "amount") -> Decimal:
    """A positive amount with no more decimals than `currency` allows, as a Decimal."""
    places = currency_decimals(currency)
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise InvalidInput("Enter an amount greater than zero.", fields={field: ["Must be > 0."]})
    if amount >= LEDGER_AMOUNT_LIMIT:
        raise InvalidInput("That amount is too large.", fields={field: ["Too large."]})
    if not has_at_most_places(amount, places):
        raise InvalidInput(
            f"{currency} amounts have at most {places} decimal places.",
            code="invalid_precision",
            fields={field: [f"At most {places} decimal places."]},
        )
    return amount
