"""Instruments, quotes, positions and fills over the REST API."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.instruments.apis import decimal_string
from apps.instruments.models import Instrument
from apps.orders.models import Order
from tests.integration.api.support import place, set_position, settle_fill
from tests.integration.orders.conftest import fund

pytestmark = pytest.mark.django_db


@pytest.fixture
def btc(db: None) -> Instrument:
    return Instrument.objects.create(
        symbol="BTC/USD",
        name="Bitcoin",
        asset_class="crypto",
        currency="USD",
        tick_size=Decimal("0.01"),
        lot_size=Decimal("0.0001"),
        calendar="always_open",
        reference_price=Decimal("65000.00"),
    )


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        ("100.00000000", 2, "100.00"),
        ("100", 2, "100.00"),
        ("100.01500000", 2, "100.015"),
        ("10.00000000", 0, "10"),
        ("0.50000000", 4, "0.5000"),
        ("-0.00000000", 2, "0.00"),
        ("1234567890123456.12345678", 2, "1234567890123456.12345678"),
        ("33.333333333333", 2, "33.33333333"),
        ("0.01000000", 0, "0.01"),
        ("1E+2", 0, "100"),
    ],
)
def test_decimal_strings_are_exact_and_at_least_at_scale(
    value: str, places: int, text: str
) -> None:
    assert decimal_string(Decimal(value), places) == text


def test_instruments_list_and_detail(
    trader_api: APIClient, instrument: Instrument, btc: Instrument
) -> None:
    Instrument.objects.create(
        symbol="GONE",
        name="Gone Inc",
        asset_class="equity",
        currency="USD",
        tick_size=Decimal("0.01"),
        lot_size=Decimal("1"),
        status="delisted",
    )
    listed = trader_api.get(reverse("instruments_api:instruments"))
    assert listed.status_code == 200
    assert [i["symbol"] for i in listed.json()] == ["ACME", "BTC/USD"]
    assert [i["symbol"] for i in trader_api.get("/api/v1/instruments/?status=delisted").json()] == [
        "GONE"
    ]
    assert trader_api.get("/api/v1/instruments/?asset_class=crypto").json()[0]["symbol"] == (
        "BTC/USD"
    )
    detail = trader_api.get("/api/v1/instruments/btc/usd/")
    assert detail.status_code == 200
    assert detail.json() == {
        "symbol": "BTC/USD",
        "name": "Bitcoin",
        "asset_class": "crypto",
        "currency": "USD",
        "tick_size": "0.01",
        "lot_size": "0.0001",
        "status": "active",
        "tradable": True,
        "calendar": "always_open",
        "session_open": True,
    }
    missing = trader_api.get("/api/v1/instruments/NOPE/")
    assert missing.status_code == 404
    assert missing.json()["code"] == "instrument_not_found"


def test_quote_falls_back_to_the_reference_price_then_uses_the_last_trade(
    trader: User, trader_api: APIClient, instrument: Instrument
) -> None:
    quote = trader_api.get("/api/v1/quotes/acme/").json()
    assert quote["symbol"] == "ACME"
    assert quote["last_price"] == "100.00"
    assert quote["last_price_source"] == "reference"
    assert quote["last_trade_at"] is None
    # No latest-BBO store exists yet (the matcher only publishes on pub/sub).
    assert quote["bid_price"] is None
    assert quote["ask_price"] is None
    assert quote["session_open"] is True

    fund(trader, "5000")
    order = Order.objects.get(pk=place(trader_api).json()["id"])
    settle_fill(order, price="101.5", qty="1", seq=1)
    quote = trader_api.get("/api/v1/quotes/ACME/").json()
    assert quote["last_price"] == "101.50"
    assert quote["last_price_source"] == "trade"
    assert quote["last_trade_at"] is not None
    assert trader_api.get("/api/v1/quotes/NOPE/").json()["code"] == "instrument_not_found"


def test_positions_are_valued_at_the_last_price(
    trader: User, trader_api: APIClient, instrument: Instrument, btc: Instrument
) -> None:
    set_position(trader, instrument, qty="10", cost="1001.00", held="4", realized="12.5")
    set_position(trader, btc, qty="0.5", cost="32000.005")
    set_position(trader, Instrument.objects.create(
        symbol="ZERO", name="Closed", asset_class="equity", currency="USD",
        tick_size=Decimal("0.01"), lot_size=Decimal("1"),
    ), qty="0", cost="0")  # fmt: skip
    fund(trader, "5000")
    order = Order.objects.get(pk=place(trader_api).json()["id"])
    settle_fill(order, price="110.00", qty="1", seq=1)

    positions = trader_api.get(reverse("portfolio_api:positions")).json()
    assert [p["symbol"] for p in positions] == ["ACME", "BTC/USD"]  # closed ones are left out
    acme, coin = positions
    assert acme == {
        "symbol": "ACME",
        "currency": "USD",
        "side": "long",
        "qty": "10",
        "qty_held": "4",
        "qty_available": "6",
        "avg_entry_price": "100.10",
        "cost_basis": "1001.00",
        "market_price": "110.00",
        "market_value": "1100.00",
        "unrealized_pl": "99.00",
        "realized_pl": "12.50",
        "updated_at": acme["updated_at"],
    }
    assert coin["qty"] == "0.5000"
    assert coin["avg_entry_price"] == "64000.01"
    assert coin["market_price"] == "65000.00"  # no trade yet: the reference price
    assert coin["market_value"] == "32500.00"
    assert coin["unrealized_pl"] == "499.995"

    detail = trader_api.get("/api/v1/positions/btc/usd/")
    assert detail.status_code == 200
    assert detail.json() == coin
    for symbol in ("ZERO", "NOPE"):
        missing = trader_api.get(f"/api/v1/positions/{symbol}/")
        assert missing.status_code == 404
        assert missing.json()["code"] == "position_not_found"


def test_fills_are_listed_newest_first_with_filters(
    trader: User, trader_api: APIClient, instrument: Instrument
) -> None:
    fund(trader, "5000")
    order = Order.objects.get(pk=place(trader_api, qty="5", client_order_id="f-1").json()["id"])
    now = timezone.now()
    fills = [
        settle_fill(
            order,
            price="100.00",
            qty="1",
            seq=i + 1,
            commission="1.00",
            at=now - dt.timedelta(hours=5 - i),
        )
        for i in range(5)
    ]
    url = reverse("portfolio_api:fills")
    first = trader_api.get(url + "?page_size=2").json()
    assert [f["id"] for f in first["results"]] == [fills[4].pk, fills[3].pk]
    assert first["results"][0] == {
        "id": fills[4].pk,
        "order_id": str(order.pk),
        "client_order_id": "f-1",
        "symbol": "ACME",
        "currency": "USD",
        "side": "buy",
        "liquidity": "taker",
        "price": "100.00",
        "qty": "1",
        "notional": "100.00",
        "commission": "1.00",
        "realized_pl": "0.00",
        "executed_at": first["results"][0]["executed_at"],
    }
    second = trader_api.get(first["next"]).json()
    assert [f["id"] for f in second["results"]] == [fills[2].pk, fills[1].pk]

    since = (now - dt.timedelta(hours=2, minutes=30)).isoformat()
    recent = trader_api.get(url, {"after": since}).json()["results"]
    assert [f["id"] for f in recent] == [fills[4].pk, fills[3].pk]
    assert trader_api.get(url, {"symbol": "OTHER"}).json()["results"] == []
    assert len(trader_api.get(url, {"order_id": str(order.pk)}).json()["results"]) == 5
    bad = trader_api.get(url, {"after": "yesterday"})
    assert bad.status_code == 400
    assert "after" in bad.json()["fields"]
