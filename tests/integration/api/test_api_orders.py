"""Orders over the REST API: place (idempotent), get, list with filters and cursors, cancel and
replace; error bodies; decimal strings."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.instruments.models import Instrument
from apps.orders.models import Order, OrderEvent, OrderStatus
from tests.factories import UserFactory
from tests.integration.api.support import place, token_client
from tests.integration.orders.conftest import fund

pytestmark = pytest.mark.django_db


def test_place_returns_decimal_strings_and_is_idempotent(
    trader: User, trader_api: APIClient, instrument: Instrument
) -> None:
    fund(trader, "5000")
    first = place(trader_api, qty="10", client_order_id="app-1")
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["client_order_id"] == "app-1"
    assert body["symbol"] == "ACME"
    assert body["currency"] == "USD"
    assert (body["side"], body["type"], body["time_in_force"]) == ("buy", "limit", "gtc")
    assert body["status"] == "pending_new"
    # Prices at the tick's places, quantities at the lot's, money at the currency's.
    assert body["qty"] == "10"
    assert body["limit_price"] == "100.00"
    assert body["stop_price"] is None
    assert body["filled_qty"] == "0"
    assert body["filled_avg_price"] is None
    assert body["filled_notional"] == "0.00"
    assert body["commission"] == "0.00"
    assert body["pending_action"] == ""
    assert body["pending_replace"] is None

    # A retry with the same id and parameters (another spelling of the same price) is the same
    # order, 200 instead of 201.
    again = place(trader_api, qty="10", limit_price="100.0", client_order_id="app-1")
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]

    conflict = place(trader_api, qty="11", client_order_id="app-1")
    assert conflict.status_code == 422
    assert conflict.json()["code"] == "idempotency_key_reused"
    assert "client_order_id" in conflict.json()["fields"]
    assert Order.objects.filter(user=trader).count() == 1
    assert AuditEvent.objects.filter(action="order.submitted", object_id=body["id"]).count() == 1


def test_client_order_id_is_generated_when_omitted(
    trader: User, trader_api: APIClient, instrument: Instrument
) -> None:
    fund(trader, "5000")
    one = place(trader_api).json()
    two = place(trader_api).json()
    assert one["id"] != two["id"]
    assert str(uuid.UUID(one["client_order_id"])) == one["client_order_id"]
    assert Order.objects.filter(user=trader).count() == 2


@pytest.mark.parametrize(
    ("overrides", "status", "code", "field"),
    [
        ({"qty": None}, 400, "invalid_input", "qty"),
        ({"side": "hold"}, 400, "invalid_input", "side"),
        ({"type": "iceberg"}, 400, "invalid_input", "type"),
        ({"qty": 1.5}, 400, "invalid_input", "qty"),  # a JSON float: refused
        ({"limit_price": "abc"}, 400, "invalid_input", "limit_price"),
        ({"limit_price": "100.123456789"}, 400, "invalid_input", "limit_price"),
        ({"client_order_id": "a/b"}, 400, "invalid_input", "client_order_id"),
        ({"client_order_id": "x" * 65}, 400, "invalid_input", "client_order_id"),
        ({"limit_price": "100.005"}, 400, "invalid_price_increment", None),
        ({"qty": "1.5"}, 400, "invalid_qty_increment", None),
        ({"limit_price": None}, 400, "invalid_order", "limit_price"),
        ({"type": "market", "time_in_force": "gtc", "limit_price": None}, 400, "invalid_order",
         "time_in_force"),
        ({"symbol": "NOPE"}, 400, "unknown_symbol", "symbol"),
        ({"qty": "60"}, 422, "insufficient_buying_power", None),
        ({"limit_price": "120.00"}, 422, "price_out_of_collar", None),
        ({"side": "sell"}, 422, "insufficient_position", None),
    ],
)  # fmt: skip
def test_invalid_and_refused_orders_have_one_error_shape(
    trader: User,
    trader_api: APIClient,
    instrument: Instrument,
    overrides: dict[str, object],
    status: int,
    code: str,
    field: str | None,
) -> None:
    fund(trader, "5000")
    response = place(trader_api, **overrides)
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert set(body) <= {"code", "message", "fields"}
    if field is not None:
        assert field in body["fields"], body
    assert not Order.objects.exists()


def test_kyc_is_required_to_trade(instrument: Instrument, default_tier: object) -> None:
    newcomer = UserFactory.create()
    fund(newcomer, "5000")
    response = place(token_client(newcomer))
    assert response.status_code == 422
    assert response.json()["code"] == "kyc_not_approved"
    assert not Order.objects.exists()


def test_get_by_id_and_client_order_id_with_the_transition_log(
    trader: User, trader_api: APIClient, instrument: Instrument
) -> None:
    fund(trader, "5000")
    order = place(trader_api, client_order_id="abc:1").json()
    by_id = trader_api.get(reverse("orders_api:order", args=[order["id"]]))
    assert by_id.status_code == 200
    assert by_id.json()["id"] == order["id"]
    assert [e["kind"] for e in by_id.json()["events"]] == ["submitted"]
    assert by_id.json()["events"][0]["to_status"] == "pending_new"
    by_client = trader_api.get(reverse("orders_api:order-by-client-id", args=["abc:1"]))
    assert by_client.status_code == 200
    assert by_client.json()["id"] == order["id"]

    for url in (
        reverse("orders_api:order", args=[uuid.uuid4()]),
        reverse("orders_api:order", args=["not-a-uuid"]),
        reverse("orders_api:order-by-client-id", args=["abc:2"]),
    ):
        missing = trader_api.get(url)
        assert missing.status_code == 404, url
        assert missing.json() == {
            "code": "order_not_found",
            "message": "That order does not exist.",
        }


def _make_orders(trader: User, client: APIClient, n: int) -> list[str]:
    ids = []
    for i in range(n):
        response = place(client, client_order_id=f"o-{i}")
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return ids


def test_list_is_newest_first_with_cursor_pages(
    trader: User, trader_api: APIClient, instrument: Instrument
) -> None:
    fund(trader, "5000")
    ids = _make_orders(trader, trader_api, 7)
    seen: list[str] = []
    url: str | None = reverse("orders_api:orders") + "?page_size=3"
    pages = 0
    while url:
        page = trader_api.get(url).json()
        seen += [o["id"] for o in page["results"]]
        url = page["next"]
        pages += 1
    assert pages == 3
    assert seen == list(reversed(ids))


def test_list_filters(trader: User, trader_api: APIClient, instrument: Instrument) -> None:
    fund(trader, "5000")
    other = Instrument.objects.create(
        symbol="BETA",
        name="Beta",
        asset_class="equity",
        currency="USD",
        tick_size=Decimal("0.01"),
        lot_size=Decimal("1"),
        calendar="always_open",
        reference_price=Decimal("10.00"),
    )
    ids = _make_orders(trader, trader_api, 3)
    beta = place(trader_api, symbol="beta", limit_price="10.00").json()["id"]
    Order.objects.filter(pk=ids[0]).update(status=OrderStatus.FILLED)
    Order.objects.filter(pk=ids[1]).update(
        created_at=timezone.now() - dt.timedelta(days=3), status=OrderStatus.CANCELLED
    )
    url = reverse("orders_api:orders")

    def listed(query: str) -> set[str]:
        response = trader_api.get(url + query)
        assert response.status_code == 200, response.content
        return {o["id"] for o in response.json()["results"]}

    assert listed("") == {*ids, beta}
    assert listed("?status=open") == {ids[2], beta}
    assert listed("?status=closed") == {ids[0], ids[1]}
    assert listed("?status=filled,cancelled") == {ids[0], ids[1]}
    assert listed("?status=all&symbol=BETA") == {beta}
    assert listed("?symbol=acme,beta&status=open") == {ids[2], beta}
    assert listed("?side=sell") == set()
    yesterday = (timezone.now() - dt.timedelta(days=1)).date().isoformat()
    assert listed(f"?until={yesterday}") == {ids[1]}
    assert listed(f"?after={yesterday}") == {ids[0], ids[2], beta}
    bad = trader_api.get(url + "?status=sleeping")
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_input"
    assert "status" in bad.json()["fields"]
    assert other.symbol == "BETA"


def test_cancel_is_accepted_and_logged(
    trader: User, trader_api: APIClient, instrument: Instrument
) -> None:
    fund(trader, "5000")
    order = place(trader_api).json()
    url = reverse("orders_api:order", args=[order["id"]])
    response = trader_api.delete(url)
    assert response.status_code == 202
    assert response.json()["pending_action"] == "cancel"
    assert response.json()["status"] == "pending_new"  # the matcher confirms asynchronously
    again = trader_api.delete(url)
    assert again.status_code == 202
    kinds = list(OrderEvent.objects.filter(order_id=order["id"]).values_list("kind", flat=True))
    assert kinds == ["submitted", "cancel_requested"]
    assert AuditEvent.objects.filter(
        action="order.cancel_requested", object_id=order["id"]
    ).exists()

    Order.objects.filter(pk=order["id"]).update(status=OrderStatus.CANCELLED)
    final = trader_api.delete(url)
    assert final.status_code == 409
    assert final.json()["code"] == "order_not_open"


def test_replace_is_accepted_with_the_pending_values(
    trader: User, trader_api: APIClient, instrument: Instrument
) -> None:
    fund(trader, "5000")
    order = place(trader_api, qty="5").json()
    url = reverse("orders_api:order", args=[order["id"]])
    empty = trader_api.patch(url, {}, format="json")
    assert empty.status_code == 400
    assert empty.json()["code"] == "invalid_order"
    off_grid = trader_api.patch(url, {"limit_price": "99.999"}, format="json")
    assert off_grid.status_code == 400
    assert off_grid.json()["code"] == "invalid_price_increment"

    response = trader_api.patch(url, {"qty": "8", "limit_price": "99.50"}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["pending_action"] == "replace"
    assert body["pending_replace"] == {"qty": "8", "limit_price": "99.50", "stop_price": None}
    assert body["qty"] == "5"  # until the matcher confirms

    busy = trader_api.patch(url, {"qty": "7"}, format="json")
    assert busy.status_code == 409
    assert busy.json()["code"] == "order_not_replaceable"


def test_market_orders_cannot_be_replaced(
    trader: User, trader_api: APIClient, instrument: Instrument
) -> None:
    fund(trader, "5000")
    order = place(trader_api, type="market", time_in_force="day", limit_price=None).json()
    assert order["protection_price"] == "105.00"  # reference 100 + 5 % market buffer
    response = trader_api.patch(
        reverse("orders_api:order", args=[order["id"]]), {"qty": "2"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "order_not_replaceable"
