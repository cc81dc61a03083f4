"""One error body everywhere, and per-user rate limits answering 429 with Retry-After."""

import types
import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.common import throttling
from apps.common.throttling import parse_rate
from apps.instruments.models import Instrument
from tests.factories import UserFactory
from tests.integration.api.support import place, set_throttle_rates, token_client
from tests.integration.orders.conftest import approve_kyc, fund

pytestmark = pytest.mark.django_db

WINDOW_START = 1_800_000_000.0  # a multiple of 60 and 3600


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """The throttles' clock, 15.25 s into a minute window; a private cache namespace."""
    clock = types.SimpleNamespace(now=WINDOW_START + 15.25)
    monkeypatch.setattr(throttling, "time", types.SimpleNamespace(time=lambda: clock.now))
    return clock


@pytest.fixture(autouse=True)
def _private_cache_namespace(settings: Any) -> None:
    # Counters of earlier runs (same user ids, same frozen windows) must not leak in.
    caches = {name: dict(conf) for name, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test-throttle-{uuid.uuid4().hex}"
    settings.CACHES = caches


def _assert_throttled(response: Any, retry_after: int) -> None:
    assert response.status_code == 429
    assert response["Retry-After"] == str(retry_after)
    body = response.json()
    assert body["code"] == "throttled"
    assert body["message"]
    assert set(body) == {"code", "message"}


def test_order_writes_are_limited_per_user_with_retry_after(
    settings: Any,
    frozen_clock: types.SimpleNamespace,
    trader: User,
    trader_api: APIClient,
    instrument: Instrument,
) -> None:
    set_throttle_rates(settings, orders_burst="3/min", orders_sustained="100/h", user="1000/min")
    fund(trader, "5000")
    for i in range(3):
        assert place(trader_api, client_order_id=f"t-{i}").status_code == 201
    _assert_throttled(place(trader_api, client_order_id="t-3"), retry_after=45)
    # Reads are not order writes.
    assert trader_api.get(reverse("orders_api:orders")).status_code == 200
    # Another user has their own budget.
    other = UserFactory.create()
    approve_kyc(other)
    fund(other, "5000")
    assert place(token_client(other), client_order_id="t-0").status_code == 201
    # The next window lets the first user in again.
    frozen_clock.now = WINDOW_START + 60
    assert place(trader_api, client_order_id="t-3").status_code == 201


def test_every_signed_in_request_counts_for_the_user_scope(
    settings: Any, frozen_clock: types.SimpleNamespace, trader_api: APIClient
) -> None:
    set_throttle_rates(settings, user="2/h")
    url = reverse("instruments_api:instruments")
    assert trader_api.get(url).status_code == 200
    assert trader_api.get(url).status_code == 200
    # 3600 - 15.25 s left in the hour window, rounded up.
    _assert_throttled(trader_api.get(url), retry_after=3585)
    _assert_throttled(trader_api.get(reverse("portfolio_api:positions")), retry_after=3585)


def test_anonymous_login_attempts_are_limited_per_address(
    settings: Any, frozen_clock: types.SimpleNamespace
) -> None:
    set_throttle_rates(settings, anon="2/min")
    client = APIClient(REMOTE_ADDR="203.0.113.9")
    url = reverse("accounts_api:login")
    for _ in range(2):
        assert client.post(url, {}, format="json").status_code == 400
    _assert_throttled(client.post(url, {}, format="json"), retry_after=45)
    # A forged X-Forwarded-For does not buy a fresh budget.
    _assert_throttled(
        client.post(url, {}, format="json", HTTP_X_FORWARDED_FOR="198.51.100.1"), retry_after=45
    )
    assert APIClient(REMOTE_ADDR="203.0.113.10").post(url, {}, format="json").status_code == 400


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [
        ("20/s", (20, 1)),
        ("1000/min", (1000, 60)),
        ("100/10s", (100, 10)),
        ("5/hour", (5, 3600)),
        ("7/d", (7, 86400)),
        (None, None),
        ("", None),
    ],
)
def test_rate_syntax(rate: str | None, parsed: tuple[int, int] | None) -> None:
    assert parse_rate(rate) == parsed


def test_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="Invalid throttle rate"):
        parse_rate("lots")


def test_unauthenticated_and_unverified_requests_get_the_error_body(
    user: User, login_client: Any
) -> None:
    anonymous = APIClient().get(reverse("orders_api:orders"))
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert set(anonymous.json()) == {"code", "message"}
    assert anonymous.json()["code"] == "not_authenticated"

    bad_token = APIClient(HTTP_AUTHORIZATION="Bearer brk_nope_nope").get(
        reverse("orders_api:orders")
    )
    assert bad_token.status_code == 401
    assert bad_token.json()["code"] == "token_invalid"

    unverified: Client = login_client(user, None, api=True)
    response = unverified.get(reverse("orders_api:orders"))
    assert response.status_code == 403
    assert response.json()["code"] == "otp_required"


def test_bad_cursor_and_unknown_objects_are_404_with_the_error_body(
    trader_api: APIClient,
) -> None:
    for url in (
        reverse("orders_api:orders") + "?cursor=garbage",
        reverse("portfolio_api:fills") + "?cursor=garbage",
        reverse("orders_api:order", args=[uuid.uuid4()]),
        "/api/v1/positions/ACME/",
        "/api/v1/instruments/ACME/",
    ):
        response = trader_api.get(url)
        assert response.status_code == 404, url
        assert set(response.json()) == {"code", "message"}, url
        assert response.json()["code"].endswith("not_found"), url
