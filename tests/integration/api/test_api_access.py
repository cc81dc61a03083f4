"""Object-level access, generated from the OpenAPI schema: no endpoint leaks one user's objects.

Every operation of every path is taken from the schema. Paths with a path parameter are object
endpoints: each parameter name maps to a builder that creates an object owned by user A and
returns the value to put in the path. A new endpoint whose parameter is not in BUILDERS fails
this test until it is added, so nothing escapes by being new.

* user B (token) gets 404 with a `*not_found` code on every object endpoint and method, and the
  body never contains anything of A's; A's objects are unchanged afterwards;
* user A gets 200 on the same GETs (the ids are right, so B's 404s mean something);
* anonymous callers get 401/403 everywhere but the login;
* B's collection endpoints (lists) never contain anything of A's.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken, User
from apps.funding.models import BankAccount, Withdrawal
from apps.instruments.models import Instrument
from apps.orders.models import Order
from apps.orders.services import OrderRequest, order_place
from tests.factories import TOTPDeviceFactory, UserFactory, totp_now
from tests.integration.api.support import api_token, place, set_position, token_client
from tests.integration.orders.conftest import approve_kyc, fund

pytestmark = pytest.mark.django_db

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
# Operations anyone may call.
ANONYMOUS_OPERATIONS = {("post", "/api/v1/auth/login/")}
# Reference data addressed by a path parameter but owned by nobody: any signed-in user reads it.
REFERENCE_DATA_PATHS = {"/api/v1/instruments/{symbol}/", "/api/v1/quotes/{symbol}/"}


@dataclass
class Owner:
    user: User
    client: APIClient
    markers: set[str] = field(default_factory=set)
    built: dict[str, str] = field(default_factory=dict)


def _token_id(owner: Owner) -> str:
    token = ApiToken.objects.filter(user=owner.user).order_by("id").first()
    assert token is not None
    owner.markers.add(token.prefix)
    return str(token.pk)


def _order(owner: Owner) -> Order:
    order = Order.objects.filter(user=owner.user).first()
    if order is None:
        coid = f"alice-secret-{uuid.uuid4().hex[:10]}"
        order, _ = order_place(
            user=owner.user,
            request=OrderRequest(
                symbol="ACME",
                side="buy",
                order_type="limit",
                time_in_force="gtc",
                quantity=Decimal(3),
                client_order_id=coid,
                limit_price=Decimal("99.00"),
            ),
        )
        owner.markers |= {str(order.pk), coid}
    return order


def _symbol(owner: Owner) -> str:
    set_position(owner.user, Instrument.objects.get(symbol="ACME"), qty="7", cost="700.00")
    return "ACME"


def _bank_account(owner: Owner) -> BankAccount:
    from tests.integration.funding.factories import BankAccountFactory

    bank = BankAccount.objects.filter(user=owner.user).first()
    if bank is None:
        holder = f"Alice Holder {uuid.uuid4().hex[:8]}"
        bank = BankAccountFactory.create(user=owner.user, holder_name=holder)
        owner.markers.add(holder)
    return bank


def _deposit_id(owner: Owner) -> str:
    from apps.funding.services import deposit_request

    deposit, _ = deposit_request(user=owner.user, amount=Decimal("10"), currency="USD")
    return str(deposit.pk)


def _withdrawal_id(owner: Owner) -> str:
    from apps.funding.services import withdrawal_request

    device = TOTPDeviceFactory(user=owner.user)
    withdrawal = withdrawal_request(
        user=owner.user,
        amount=Decimal("20000"),  # above the approval threshold: stays pending
        bank_account_id=_bank_account(owner).pk,
        otp=totp_now(device),
    )
    return str(withdrawal.pk)


# Path parameter name -> builder of an object owned by A (returns the path value).
BUILDERS: dict[str, Callable[[Owner], str]] = {
    "token_id": _token_id,
    "order_id": lambda owner: str(_order(owner).pk),
    "client_order_id": lambda owner: _order(owner).client_order_id,
    "symbol": _symbol,
    "deposit_id": _deposit_id,
    "withdrawal_id": _withdrawal_id,
    "bank_account_id": lambda owner: str(_bank_account(owner).pk),
}


def _operations() -> list[tuple[str, str, list[str]]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, item in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        params = re.findall(r"{(\w+)}", path)
        for method in HTTP_METHODS:
            if method in item:
                found.append((method, path, params))
    return found


def _call(client: APIClient, method: str, url: str) -> Any:
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    return getattr(client, method)(url, {}, format="json")


def _leaks(response: Any, markers: set[str]) -> set[str]:
    text = response.content.decode(errors="replace")
    return {marker for marker in markers if marker in text}


def test_no_endpoint_lets_another_user_or_anonymous_see_or_touch_objects(
    trader: User, instrument: Instrument
) -> None:
    owner = Owner(user=trader, client=token_client(trader))
    owner.user.full_name = f"Alice Owner {uuid.uuid4().hex[:8]}"
    owner.user.save(update_fields=["full_name"])
    owner.markers |= {owner.user.email, owner.user.full_name}
    fund(owner.user, "50000")

    intruder = UserFactory.create()
    approve_kyc(intruder)
    intruder_client = token_client(intruder)
    anonymous = APIClient()

    operations = _operations()
    assert len(operations) > 20
    unmapped = {p for _, _, params in operations for p in params} - set(BUILDERS)
    assert not unmapped, f"add builders for path parameters {sorted(unmapped)} to BUILDERS"
    for name in sorted({p for _, _, params in operations for p in params}):
        owner.built[name] = BUILDERS[name](owner)
    assert owner.markers >= {owner.user.email, owner.built["client_order_id"]}

    checked_objects = 0
    for method, path, params in operations:
        url = path
        for name in params:
            url = url.replace("{" + name + "}", quote(owner.built[name], safe=""))
        where = f"{method.upper()} {url}"

        anon = _call(anonymous, method, url)
        if (method, path) in ANONYMOUS_OPERATIONS:
            assert anon.status_code < 500, where
        else:
            assert anon.status_code in (401, 403), (where, anon.status_code)
            assert set(anon.json()) == {"code", "message"}, where
        assert not _leaks(anon, owner.markers), where

        if not params:
            if method == "get":
                listed = intruder_client.get(url)
                assert listed.status_code < 500, (where, listed.status_code)
                assert not _leaks(listed, owner.markers), (where, listed.content[:500])
            continue

        if path in REFERENCE_DATA_PATHS:
            assert method == "get", where
            response = intruder_client.get(url)
            assert response.status_code == 200, where
            assert not _leaks(response, owner.markers), where
            continue

        response = _call(intruder_client, method, url)
        assert response.status_code == 404, (where, response.status_code, response.content[:300])
        body = response.json()
        assert set(body) == {"code", "message"}, where
        assert body["code"].endswith("not_found"), (where, body)
        assert not _leaks(response, owner.markers), where
        checked_objects += 1

        if method == "get":
            mine = owner.client.get(url)
            assert mine.status_code == 200, (where, mine.status_code, mine.content[:300])

    assert checked_objects >= 8

    # Nothing the intruder did changed the owner's objects.
    order = Order.objects.get(pk=owner.built["order_id"])
    assert order.pending_action == ""
    assert order.pending_replace is None
    assert ApiToken.objects.get(pk=owner.built["token_id"]).revoked_at is None
    if "bank_account_id" in owner.built:
        assert BankAccount.objects.get(pk=owner.built["bank_account_id"]).status == "whitelisted"
    if "withdrawal_id" in owner.built:
        assert Withdrawal.objects.get(pk=owner.built["withdrawal_id"]).status == "pending_approval"


def test_client_order_ids_are_per_user(trader: User, instrument: Instrument) -> None:
    """B reusing A's client_order_id gets an order of their own: no 200 with A's order and no
    422 that would reveal that A used the id."""
    fund(trader, "5000")
    alice = token_client(trader)
    mine = place(alice, client_order_id="shared-id")
    assert mine.status_code == 201
    bob_user = UserFactory.create()
    approve_kyc(bob_user)
    fund(bob_user, "5000")
    bob = token_client(raw=api_token(bob_user))
    theirs = place(bob, client_order_id="shared-id", qty="2")
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine.json()["id"]
    assert bob.get("/api/v1/orders/by-client-id/shared-id/").json()["id"] == theirs.json()["id"]
    listed = bob.get("/api/v1/orders/").json()["results"]
    assert [o["id"] for o in listed] == [theirs.json()["id"]]
