"""Idempotent order placement on client_order_id over HTTP.

1,000 distinct client_order_ids, each submitted several times: half retried sequentially (3
times in a row by one client), half by 4 threads racing on the same id, then all once more →
exactly 1,000 orders, exactly one 201 per id, every retry answered with the original order; a
retry with other parameters → 422.
"""

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.db import connections
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.instruments.models import Instrument
from apps.ledger.models import CashAccount, Hold, HoldStatus
from apps.ledger.selectors import ledger_is_balanced
from apps.orders.models import Order, OrderEvent, OutboxCommand
from tests.integration.api.support import api_token, disable_throttles, order_body
from tests.integration.orders.conftest import fund

ORDERS = 1_000
SEQUENTIAL = ORDERS // 2
SEQUENTIAL_TRIES = 3
RACERS = 4  # threads submitting the same id at the same moment
RACING_GROUPS = 2  # groups of racers working through disjoint halves of the racing ids
WORKERS = 4  # clients for the sequential parts, each on its own ids
HOLD = Decimal("101.00")  # 1 x 100.00 + 1.00 minimum commission


def _client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _body(i: int, **overrides: Any) -> dict[str, Any]:
    return order_body(client_order_id=f"idem-{i:04d}", **overrides)


def _in_threads(jobs: list[Callable[[], None]]) -> None:
    """Run each job in its own thread (own DB connection, closed at the end); re-raise the
    first failure."""
    failures: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    if failures:
        raise failures[0]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_thousand_orders_retried_sequentially_and_racing(
    settings: Any, trader: User, instrument: Instrument
) -> None:
    disable_throttles(settings)
    fund(trader, str(HOLD * ORDERS + 1000))
    raw = api_token(trader)
    url = reverse("orders_api:orders")
    answers: dict[int, list[tuple[int, str]]] = defaultdict(list)  # id -> [(status, order id)]
    lock = threading.Lock()
    started = time.monotonic()

    def record(i: int, response: Any) -> None:
        with lock:
            answers[i].append((response.status_code, response.json().get("id", "")))

    # Sequential retries: each id submitted SEQUENTIAL_TRIES times in a row by one client
    # (WORKERS clients work through disjoint ids side by side, to keep the test short).
    def sequential(ids: list[int]) -> None:
        mine = _client(raw)
        for i in ids:
            for _ in range(SEQUENTIAL_TRIES):
                record(i, mine.post(url, _body(i), format="json"))

    _in_threads([partial(sequential, list(range(k, SEQUENTIAL, WORKERS))) for k in range(WORKERS)])
    phases = {"sequential": time.monotonic() - started}

    # Racing: in each group, RACERS threads post the same id at once (barrier), id after id.
    racing = list(range(SEQUENTIAL, ORDERS))

    def racer(ids: list[int], barrier: threading.Barrier) -> None:
        mine = _client(raw)
        try:
            for i in ids:
                barrier.wait(timeout=60)
                record(i, mine.post(url, _body(i), format="json"))
        except BaseException:
            barrier.abort()
            raise

    jobs: list[Callable[[], None]] = []
    for g in range(RACING_GROUPS):
        barrier = threading.Barrier(RACERS)
        ids = racing[g::RACING_GROUPS]
        jobs += [partial(racer, ids, barrier) for _ in range(RACERS)]
    _in_threads(jobs)
    phases["racing"] = time.monotonic() - started - sum(phases.values())

    # Every id once more.
    def again(ids: list[int]) -> None:
        mine = _client(raw)
        for i in ids:
            record(i, mine.post(url, _body(i), format="json"))

    _in_threads([partial(again, list(range(k, ORDERS, WORKERS))) for k in range(WORKERS)])
    phases["again"] = time.monotonic() - started - sum(phases.values())
    client = _client(raw)

    # Different parameters under a used id: refused, nothing created.
    for i in (0, SEQUENTIAL - 1, SEQUENTIAL, ORDERS - 1):
        changed = client.post(url, _body(i, qty="2"), format="json")
        assert changed.status_code == 422, changed.content
        assert changed.json()["code"] == "idempotency_key_reused"
        other_price = client.post(url, _body(i, limit_price="100.01"), format="json")
        assert other_price.status_code == 422

    elapsed = time.monotonic() - started
    assert len(answers) == ORDERS
    for i, got in answers.items():
        expected_tries = (SEQUENTIAL_TRIES if i < SEQUENTIAL else RACERS) + 1
        assert len(got) == expected_tries, (i, got)
        statuses = Counter(status for status, _ in got)
        assert statuses == {201: 1, 200: expected_tries - 1}, (i, got)
        assert len({order_id for _, order_id in got}) == 1, (i, got)
        if i < SEQUENTIAL:
            assert got[0][0] == 201, (i, got)  # the first of the in-a-row tries created it

    orders = Order.objects.filter(user=trader)
    assert orders.count() == ORDERS
    assert set(orders.values_list("client_order_id", flat=True)) == {
        f"idem-{i:04d}" for i in range(ORDERS)
    }
    assert OutboxCommand.objects.count() == ORDERS
    assert OrderEvent.objects.filter(kind="submitted").count() == ORDERS
    assert AuditEvent.objects.filter(action="order.submitted").count() == ORDERS
    account = CashAccount.objects.get(owner=trader)
    holds = Hold.objects.filter(account=account, status=HoldStatus.ACTIVE)
    assert holds.count() == ORDERS
    assert account.held == HOLD * ORDERS == sum((h.amount for h in holds), Decimal(0))
    assert ledger_is_balanced()
    timing = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items())
    requests = sum(map(len, answers.values()))
    print(f"idempotency: {requests} requests in {elapsed:.1f} s ({timing})")  # noqa: T201


@pytest.mark.django_db(transaction=True)
def test_racing_retries_get_the_original_even_when_cash_covers_one_order(
    settings: Any, trader: User, instrument: Instrument
) -> None:
    """A retry that waited behind the original for the account lock must be answered with the
    original order, not re-checked against the cash the original has just reserved."""
    disable_throttles(settings)
    fund(trader, str(HOLD))
    raw = api_token(trader)
    url = reverse("orders_api:orders")
    for round_ in range(5):
        barrier = threading.Barrier(8)
        results: list[Any] = []

        def submit(
            barrier: threading.Barrier = barrier, round_: int = round_, results: list[Any] = results
        ) -> None:
            try:
                barrier.wait(timeout=30)
                response = _client(raw).post(url, _body(round_), format="json")
                results.append((response.status_code, response.json()))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=submit) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        if round_ == 0:
            assert Counter(s for s, _ in results) == {201: 1, 200: 7}, results
            assert len({body["id"] for _, body in results}) == 1
        else:
            # The cash is used up: new ids are refused, all of them alike.
            assert Counter(s for s, _ in results) == {422: 8}, results
    assert Order.objects.count() == 1
    assert ledger_is_balanced()
