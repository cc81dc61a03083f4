"""Helpers for the REST API tests (also used by the orders concurrency/idempotency tests)."""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.instruments.models import Instrument
from apps.orders.models import Order
from apps.portfolio.models import Fill, Position
from tests.factories import TOTPDeviceFactory

THROTTLE_SCOPES = ("user", "anon", "orders_burst", "orders_sustained")


def set_throttle_rates(settings: Any, **rates: str | None) -> None:
    """Override throttle rates (None disables a scope); other REST_FRAMEWORK keys are kept."""
    current = dict(settings.REST_FRAMEWORK)
    merged = dict(current.get("DEFAULT_THROTTLE_RATES", {}))
    merged.update(rates)
    current["DEFAULT_THROTTLE_RATES"] = merged
    settings.REST_FRAMEWORK = current


def disable_throttles(settings: Any) -> None:
    set_throttle_rates(settings, **dict.fromkeys(THROTTLE_SCOPES))


def api_token(user: User) -> str:
    """A real API token, minted the way an app gets one: from an OTP-verified session."""
    device: TOTPDevice = TOTPDeviceFactory.create(user=user)
    session_client = APIClient()
    session_client.force_login(user)
    session = session_client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    response = session_client.post(reverse("accounts_api:tokens"), {"name": "t"}, format="json")
    assert response.status_code == 201, response.content
    return str(response.json()["token"])


def token_client(user: User | None = None, *, raw: str | None = None) -> APIClient:
    client = APIClient()
    token = raw if raw is not None else api_token(user)  # type: ignore[arg-type]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def order_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "symbol": "ACME",
        "side": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "qty": "1",
        "limit_price": "100.00",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def place(client: Client, **overrides: Any) -> Any:
    return client.post(reverse("orders_api:orders"), order_body(**overrides), format="json")


def settle_fill(
    order: Order,
    *,
    price: str,
    qty: str,
    seq: int,
    commission: str = "0",
    realized: str = "0",
    at: dt.datetime | None = None,
) -> Fill:
    """A fill row as settlement would write it (settlement itself is another app's work)."""
    p, q = Decimal(price), Decimal(qty)
    return Fill.objects.create(
        order=order,
        user=order.user,
        instrument=order.instrument,
        side=order.side,
        liquidity="taker",
        price=p,
        quantity=q,
        notional=p * q,
        commission=Decimal(commission),
        realized_pnl=Decimal(realized),
        shard=0,
        engine_seq=seq,
        executed_at=at or timezone.now(),
    )


def set_position(
    user: User, instrument: Instrument, *, qty: str, cost: str, held: str = "0", realized: str = "0"
) -> Position:
    position, _ = Position.objects.update_or_create(
        user=user,
        instrument=instrument,
        defaults={
            "quantity": Decimal(qty),
            "cost_basis": Decimal(cost),
            "held_quantity": Decimal(held),
            "realized_pnl": Decimal(realized),
        },
    )
    return position
