"""Back office: orders are read-only with their transition log; risk tiers are editable and
every change is audited."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.instruments.models import Instrument
from apps.orders.models import Order, RiskTier, TradingProfile
from tests.integration.api.support import place, set_position, settle_fill
from tests.integration.orders.conftest import fund

pytestmark = pytest.mark.django_db


def test_orders_positions_and_fills_are_read_only(
    staff_client: Client, trader: User, trader_api: APIClient, instrument: Instrument
) -> None:
    fund(trader, "5000")
    order = Order.objects.get(pk=place(trader_api, client_order_id="adm-1").json()["id"])
    settle_fill(order, price="100.00", qty="1", seq=1)
    set_position(trader, instrument, qty="1", cost="100.00")

    changelist = staff_client.get(
        reverse("admin:orders_order_changelist"),
        {"status__exact": "pending_new", "side__exact": "buy", "q": "adm-1"},
    )
    assert changelist.status_code == 200
    assert str(order.pk) in changelist.content.decode()
    by_email = staff_client.get(reverse("admin:orders_order_changelist"), {"q": trader.email})
    assert str(order.pk) in by_email.content.decode()

    change = staff_client.get(reverse("admin:orders_order_change", args=[order.pk]))
    assert change.status_code == 200
    page = change.content.decode()
    assert "submitted" in page  # the transition log inline
    assert 'name="_save"' not in page  # view only

    assert staff_client.get(reverse("admin:orders_order_add")).status_code == 403
    for name in ("portfolio_position", "portfolio_fill", "orders_outboxcommand"):
        assert staff_client.get(reverse(f"admin:{name}_changelist")).status_code == 200, name
        assert staff_client.get(reverse(f"admin:{name}_add")).status_code == 403, name
    response = staff_client.post(
        reverse("admin:orders_order_delete", args=[order.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert Order.objects.filter(pk=order.pk).exists()


def test_risk_tier_limits_are_edited_in_the_admin_and_audited(
    staff_client: Client, staff_user: User, default_tier: RiskTier, trader: User
) -> None:
    url = reverse("admin:orders_risktier_change", args=[default_tier.pk])
    assert staff_client.get(url).status_code == 200
    response = staff_client.post(
        url,
        {
            "name": "retail",
            "max_order_quantity": "500",
            "max_order_notional": "1000000",
            "price_collar_pct": "10",
            "market_buffer_pct": "5",
            "daily_order_limit": "100",
            "commission_bps": "10",
            "commission_minimum": "1.00",
            "is_default": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    default_tier.refresh_from_db()
    assert default_tier.max_order_quantity == Decimal(500)
    event = AuditEvent.objects.get(action="risk_tier.updated", object_id=str(default_tier.pk))
    assert event.actor_id == staff_user.pk
    assert event.before is not None
    assert event.after is not None
    assert event.before["max_order_quantity"] == "10000.00000000"
    assert event.after["max_order_quantity"] == "500"
    assert event.before["daily_order_limit"] == 5000
    assert event.after["daily_order_limit"] == 100

    # A second default tier is refused by the form (one default at most).
    add = staff_client.post(
        reverse("admin:orders_risktier_add"),
        {
            "name": "pro",
            "max_order_quantity": "1",
            "max_order_notional": "1",
            "price_collar_pct": "1",
            "market_buffer_pct": "1",
            "daily_order_limit": "1",
            "commission_bps": "0",
            "commission_minimum": "0",
            "is_default": "on",
        },
    )
    assert add.status_code == 200
    assert not RiskTier.objects.filter(name="pro").exists()

    profile_add = staff_client.post(
        reverse("admin:orders_tradingprofile_add"),
        {"user": trader.pk, "risk_tier": default_tier.pk},
    )
    assert profile_add.status_code == 302
    profile = TradingProfile.objects.get(user=trader)
    assert AuditEvent.objects.filter(
        action="trading_profile.created", object_id=str(profile.pk)
    ).exists()
