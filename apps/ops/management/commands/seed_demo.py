"""Demo data for a local platform: a few instruments, a demo trader and a staff user.

Idempotent: what exists is left alone. Passwords are random, printed once when an account is
created and stored only as Django password hashes; a second run prints none.
"""

import datetime as dt
import secrets
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.instruments.models import AssetClass, Instrument, TradingCalendar
from apps.instruments.services import instrument_create
from apps.kyc.models import KycApplication, KycStatus

TRADER_EMAIL = "trader@example.com"
STAFF_EMAIL = "staff@example.com"

DEMO_INSTRUMENTS: list[dict[str, Any]] = [
    {
        "symbol": "AAPL",
        "name": "Apple Inc.",
        "asset_class": AssetClass.EQUITY,
        "reference_price": Decimal("190.00"),
    },
    {
        "symbol": "MSFT",
        "name": "Microsoft Corporation",
        "asset_class": AssetClass.EQUITY,
        "reference_price": Decimal("420.00"),
    },
    {
        "symbol": "TSLA",
        "name": "Tesla, Inc.",
        "asset_class": AssetClass.EQUITY,
        "reference_price": Decimal("250.00"),
    },
    {
        "symbol": "SPY",
        "name": "SPDR S&P 500 ETF Trust",
        "asset_class": AssetClass.ETF,
        "reference_price": Decimal("550.00"),
    },
    {
        "symbol": "BTC-USD",
        "name": "Bitcoin / US Dollar",
        "asset_class": AssetClass.CRYPTO,
        "lot_size": Decimal("0.0001"),
        "calendar": TradingCalendar.ALWAYS_OPEN,
        "reference_price": Decimal("65000.00"),
    },
]

DEMO_KYC: dict[str, Any] = {
    "legal_name": "Demo Trader",
    "date_of_birth": dt.date(1990, 1, 15),
    "address_line1": "1 Demo Street",
    "city": "New York",
    "postal_code": "10001",
    "country": "US",
    "tax_id": "000-00-0000",
}


def new_password() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, ~144 bits


class Command(BaseCommand):
    help = "Create demo instruments, a demo trader and a staff user (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--allow-non-debug",
            action="store_true",
            help="Seed even when DEBUG is off (the local run command passes it). Without it the "
            "command refuses, so a production database never gets demo accounts by accident.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["allow_non_debug"]:
            raise CommandError(
                "DEBUG is off: refusing to create demo accounts. Pass --allow-non-debug if this "
                "really is a demo database."
            )
        with transaction.atomic():
            instruments = self._instruments()
            staff, staff_password = self._user(
                STAFF_EMAIL, full_name="Demo Staff", is_staff=True, is_superuser=True
            )
            trader, trader_password = self._user(TRADER_EMAIL, full_name="Demo Trader")
            kyc_note = self._kyc_approved(trader, reviewer=staff)
        self._report(instruments, kyc_note, [(staff, staff_password), (trader, trader_password)])

    def _instruments(self) -> list[str]:
        created = []
        for spec in DEMO_INSTRUMENTS:
            if Instrument.objects.filter(symbol=spec["symbol"]).exists():
                continue
            values: dict[str, Any] = {
                "currency": "USD",
                "tick_size": Decimal("0.01"),
                "lot_size": Decimal(1),
            }
            values.update(spec)
            instrument_create(**values)
            created.append(spec["symbol"])
        return created

    def _user(self, email: str, **fields: Any) -> tuple[User, str | None]:
        user = User.objects.filter(email=email).first()
        if user is not None:
            return user, None
        password = new_password()
        user = User.objects.create_user(email, password, email_verified_at=timezone.now(), **fields)
        audit_record(
            action="ops.demo_user_seeded",
            obj=user,
            after={"email": email, "is_staff": user.is_staff},
        )
        return user, password

    def _kyc_approved(self, trader: User, *, reviewer: User) -> str:
        """An approved KYC application for the demo trader (reviewed by the demo staff user)."""
        if KycApplication.objects.filter(user=trader).exists():
            return "unchanged"
        now = timezone.now()
        application = KycApplication.objects.create(
            user=trader,
            status=KycStatus.APPROVED,
            submitted_at=now,
            reviewed_by=reviewer,
            reviewed_at=now,
            decision_reason="Seeded demo account.",
            **DEMO_KYC,
        )
        audit_record(
            action="kyc.approved",
            actor=reviewer,
            obj=application,
            after={"status": application.status, "seeded": True},
        )
        return "approved"

    def _report(
        self,
        instruments: list[str],
        kyc_note: str,
        accounts: list[tuple[User, str | None]],
    ) -> None:
        out = self.stdout
        if instruments:
            out.write(f"seed_demo: created instruments {', '.join(instruments)}")
        else:
            out.write("seed_demo: demo instruments already present")
        if kyc_note == "approved":
            out.write(f"seed_demo: KYC approved for {TRADER_EMAIL}")
        new = [(user, password) for user, password in accounts if password is not None]
        existing = [user.email for user, password in accounts if password is None]
        if existing:
            out.write(
                f"seed_demo: {', '.join(existing)} already exist (their passwords were shown "
                "when they were created; reset one with "
                '`make manage ARGS="changepassword <email>"`)'
            )
        if not new:
            return
        site = settings.SITE_URL.rstrip("/")
        lines = [
            "",
            "=" * 78,
            "Demo accounts (passwords are shown only this once and stored only as hashes):",
        ]
        for user, password in new:
            role = "staff (back office: " + site + "/admin/)" if user.is_staff else "trader"
            lines.append(f"  {user.email:<22} {password}   {role}")
        lines += [
            f"Sign in at {site}/. Two-factor authentication is mandatory: the first sign-in",
            "walks you through enrolling an authenticator app by scanning a QR code.",
            "=" * 78,
            "",
        ]
        out.write("\n".join(lines))
