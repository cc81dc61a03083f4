"""50 parallel order requests over HTTP on one account whose cash covers only 10 of them."""

import threading
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.instruments.models import Instrument
from apps.ledger.models import CashAccount, Hold, HoldStatus
from apps.ledger.selectors import (
    ledger_account_mismatches,
    ledger_is_balanced,
    ledger_unbalanced_postings,
)
from apps.orders.models import Order, OutboxCommand
from tests.integration.api.support import api_token, disable_throttles, order_body
from tests.integration.orders.conftest import fund

THREADS = 50
# Each order: 1 x 100.00 + commission max(10 bps, 1.00 minimum) = 101.00 held.
HOLD = Decimal("101.00")
CASH = HOLD * 10 + Decimal("100.99")  # 10 fit, the 11th misses by a cent


def _run_in_parallel(work: list[Any]) -> list[Any]:
    """Run each callable in its own thread, all released at once; each closes its connection."""
    results: list[Any] = [None] * len(work)
    barrier = threading.Barrier(len(work))

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work[i]()
        except Exception as exc:  # reported by the assertions below
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return results


@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_orders_never_overspend(
    settings: Any, trader: User, instrument: Instrument
) -> None:
    disable_throttles(settings)
    account = fund(trader, str(CASH))
    raw = api_token(trader)
    url = reverse("orders_api:orders")

    def submit(i: int) -> Any:
        client = APIClient()  # one client per thread (and one DB connection per thread)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client.post(url, order_body(client_order_id=f"par-{i}"), format="json")

    responses = _run_in_parallel([lambda i=i: submit(i) for i in range(THREADS)])
    errors = [r for r in responses if isinstance(r, Exception)]
    assert not errors, errors[:3]

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 10, 422: 40}, statuses
    codes = Counter(r.json()["code"] for r in responses if r.status_code == 422)
    assert codes == {"insufficient_buying_power": 40}

    account = CashAccount.objects.get(pk=account.pk)
    active = Hold.objects.filter(account=account, status=HoldStatus.ACTIVE)
    assert account.balance == CASH
    assert account.held == HOLD * 10
    assert account.held == sum((h.amount for h in active), Decimal(0))
    assert account.balance >= 0
    assert 0 <= account.held <= account.balance
    assert active.count() == 10
    assert Order.objects.filter(user=trader).count() == 10
    assert OutboxCommand.objects.count() == 10
    accepted = {r.json()["id"] for r in responses if r.status_code == 201}
    assert set(map(str, Order.objects.values_list("id", flat=True))) == accepted
    assert ledger_unbalanced_postings() == []
    assert ledger_account_mismatches() == []
    assert ledger_is_balanced()
