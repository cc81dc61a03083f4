from apps.common.errors import DomainError


class InsufficientFunds(DomainError):
    """Not enough available cash (balance - held). `hold_place` for an order raises it with
    code `insufficient_buying_power`."""

    code = "insufficient_funds"
    status_code = 409
