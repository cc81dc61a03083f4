import hashlib

import factory
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.funding.gateways import (
    GatewayResult,
    GatewayStatus,
    GatewayUnavailable,
    SimulatedGateway,
)
from apps.funding.models import BankAccount, BankAccountStatus, Deposit, Withdrawal
from tests.factories import UserFactory, totp_now


class BankAccountFactory(factory.django.DjangoModelFactory[BankAccount]):
    """A whitelisted USD account unless told otherwise."""

    class Meta:
        model = BankAccount

    user = factory.SubFactory(UserFactory)
    holder_name = factory.Faker("name")
    bank_name = "Simulated Bank"
    account_number_last4 = factory.Sequence(lambda n: f"{n % 10000:04d}")
    account_number_fingerprint = factory.Sequence(
        lambda n: hashlib.sha256(f"acct-{n}".encode()).hexdigest()
    )
    currency = "USD"
    gateway = "simulated"
    gateway_token = factory.Sequence(lambda n: f"sim_ba_test{n}")
    status = BankAccountStatus.WHITELISTED
    whitelisted_at = factory.LazyFunction(timezone.now)

    class Params:
        pending = factory.Trait(status=BankAccountStatus.PENDING_VERIFICATION, whitelisted_at=None)


def fresh_otp(device: TOTPDevice) -> str:
    """A valid code for `device`, forgetting earlier uses and failures (when a test needs more
    codes than the clock gives it; replay itself is tested without this)."""
    TOTPDevice.objects.filter(pk=device.pk).update(
        last_t=-1, throttling_failure_count=0, throttling_failure_timestamp=None
    )
    device.refresh_from_db()
    return totp_now(device)


class DecliningGateway(SimulatedGateway):
    """Declines every charge and payout (selected with settings.PAYMENT_GATEWAY)."""

    name = "declining"

    def charge(self, deposit: Deposit) -> GatewayResult:
        return GatewayResult(GatewayStatus.FAILED, f"dec_{deposit.pk}", "Declined by test gateway.")

    def payout(self, withdrawal: Withdrawal) -> GatewayResult:
        return GatewayResult(GatewayStatus.FAILED, f"dec_{withdrawal.pk}", "Declined.")


class UnreachableGateway(SimulatedGateway):
    """Always times out; counts the attempts."""

    name = "unreachable"
    calls = 0

    def charge(self, deposit: Deposit) -> GatewayResult:
        UnreachableGateway.calls += 1
        raise GatewayUnavailable("connect timeout")

    def payout(self, withdrawal: Withdrawal) -> GatewayResult:
        UnreachableGateway.calls += 1
        raise GatewayUnavailable("connect timeout")
