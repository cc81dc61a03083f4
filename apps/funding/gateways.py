"""Payment-gateway adapters: the only code that talks to a payment provider.

`get_gateway()` instantiates `settings.PAYMENT_GATEWAY` at call time. A real adapter subclasses
`PaymentGateway` and must be idempotent on our references (`deposit-<id>`, `withdrawal-<id>`,
passed as the provider's idempotency key): the services may call `charge`/`payout` again for the
same deposit or withdrawal after a crash or a task retry, and must then get the first call's
result instead of moving money twice. Transient trouble (timeouts, 5xx) is reported by raising
`GatewayUnavailable`, which the Celery tasks retry with backoff; a definitive refusal is a
`GatewayResult` with status `failed`.
"""

import hashlib
import hmac
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from apps.funding.models import Deposit, Withdrawal


class GatewayStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"


@dataclass(frozen=True)
class GatewayResult:
    status: GatewayStatus
    reference: str = ""
    failure_reason: str = ""


class GatewayUnavailable(Exception):
    """The provider could not be reached or answered with a transient error: try again later."""


class PaymentGateway(ABC):
    name: ClassVar[str]

    @abstractmethod
    def charge(self, deposit: "Deposit") -> GatewayResult:
        """Pull `deposit.amount` from the customer (card, bank debit) into the house bank."""

    @abstractmethod
    def payout(self, withdrawal: "Withdrawal") -> GatewayResult:
        """Send `withdrawal.amount` to `withdrawal.bank_account` (by its gateway token)."""

    @abstractmethod
    def bank_account_tokenize(self, *, account_number: str, holder_name: str, currency: str) -> str:
        """Register a bank account with the provider and return its opaque token; we never store
        the full number."""


def get_gateway() -> PaymentGateway:
    gateway_class = import_string(settings.PAYMENT_GATEWAY)
    gateway = gateway_class()
    if not isinstance(gateway, PaymentGateway):
        raise TypeError(f"{settings.PAYMENT_GATEWAY} is not a PaymentGateway")
    return gateway


def _cents(amount: Decimal) -> int:
    return int((amount * 100) % 100)


class SimulatedGateway(PaymentGateway):
    """A deterministic stand-in for a provider, used by default and in tests.

    - Any amount whose cents are .13 fails: a deposit with "Card declined.", a payout with "The
      bank rejected the transfer." Every other amount succeeds at once.
    - Any amount whose cents are .77 stays pending (the provider would confirm it later).
    - References are derived from our ids, so repeated calls give the same answer (idempotent).
    """

    name = "simulated"
    FAIL_CENTS = 13
    PENDING_CENTS = 77

    def charge(self, deposit: "Deposit") -> GatewayResult:
        reference = f"sim_ch_{deposit.pk}"
        if _cents(deposit.amount) == self.FAIL_CENTS:
            return GatewayResult(GatewayStatus.FAILED, reference, "Card declined.")
        if _cents(deposit.amount) == self.PENDING_CENTS:
            return GatewayResult(GatewayStatus.PENDING, reference)
        return GatewayResult(GatewayStatus.SUCCEEDED, reference)

    def payout(self, withdrawal: "Withdrawal") -> GatewayResult:
        reference = f"sim_po_{withdrawal.pk}"
        if _cents(withdrawal.amount) == self.FAIL_CENTS:
            return GatewayResult(GatewayStatus.FAILED, reference, "The bank rejected the transfer.")
        if _cents(withdrawal.amount) == self.PENDING_CENTS:
            return GatewayResult(GatewayStatus.PENDING, reference)
        return GatewayResult(GatewayStatus.SUCCEEDED, reference)

    def bank_account_tokenize(self, *, account_number: str, holder_name: str, currency: str) -> str:
        digest = hmac.new(
            settings.SECRET_KEY.encode(),
            f"sim-bank:{account_number}:{currency}".encode(),
            hashlib.sha256,
        ).hexdigest()
        return f"sim_ba_{digest[:24]}"
