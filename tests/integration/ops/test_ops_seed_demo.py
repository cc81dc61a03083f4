import io
import re

import pytest
from django.core.management import CommandError, call_command
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import User
from apps.instruments.models import Instrument, TradingCalendar
from apps.kyc.models import KycApplication, KycStatus
from apps.ops.management.commands.seed_demo import STAFF_EMAIL, TRADER_EMAIL

CREDENTIAL_LINE = re.compile(r"^\s+(\S+@\S+)\s+(\S{20,})\s", re.MULTILINE)


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", "--allow-non-debug", stdout=out)
    return out.getvalue()


def counts() -> tuple[int, int, int]:
    return Instrument.objects.count(), User.objects.count(), KycApplication.objects.count()


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_prints_passwords_once() -> None:
    first = seed()
    credentials = dict(CREDENTIAL_LINE.findall(first))
    assert set(credentials) == {TRADER_EMAIL, STAFF_EMAIL}
    assert "QR code" in first
    after_first = counts()
    assert after_first == (5, 2, 1)

    second = seed()
    assert counts() == after_first
    assert not CREDENTIAL_LINE.search(second)
    for password in credentials.values():
        assert password not in second

    trader = User.objects.get(email=TRADER_EMAIL)
    staff = User.objects.get(email=STAFF_EMAIL)
    assert trader.check_password(credentials[TRADER_EMAIL])
    assert staff.check_password(credentials[STAFF_EMAIL])
    assert trader.email_verified
    assert staff.email_verified
    assert not trader.is_staff
    assert staff.is_staff
    assert staff.is_superuser
    assert KycApplication.objects.get(user=trader).status == KycStatus.APPROVED
    # MFA is enrolled by the user on first sign-in, never seeded.
    assert not TOTPDevice.objects.filter(user=trader).exists()

    btc = Instrument.objects.get(symbol="BTC-USD")
    assert btc.calendar == TradingCalendar.ALWAYS_OPEN
    assert str(btc.lot_size.normalize()) == "0.0001"


@pytest.mark.django_db
def test_seed_demo_refuses_without_debug_unless_allowed() -> None:
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("seed_demo", stdout=io.StringIO())
    assert counts() == (0, 0, 0)
