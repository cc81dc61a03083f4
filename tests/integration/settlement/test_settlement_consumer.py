"""The settlement consumer on a real Redis stream (in this process, on the test's database):
it settles what the matcher published, acknowledges it, and starts with what it had been
delivered but not acknowledged."""

import os
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis

from apps.instruments.models import Instrument
from apps.matching.engine import Event
from apps.matching.protocol import Names, encode_events
from apps.orders.models import Order, OrderStatus, RiskTier
from apps.portfolio.models import Position
from apps.settlement.consumer import GROUP, SettlementConsumer, health_key
from apps.settlement.services import settlement_cursor
from tests.factories import UserFactory
from tests.integration.orders.conftest import approve_kyc, fund
from tests.integration.settlement.support import EngineDriver, place

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    yield conn
    conn.close()


@pytest.fixture
def names(client: redis.Redis) -> Iterator[Names]:
    tag = uuid.uuid4().hex[:12]
    yield Names(f"test-{tag}:matcher", f"test-{tag}:md")
    keys = list(client.scan_iter(match=f"test-{tag}:*"))
    if keys:
        client.delete(*keys)


def publish(client: redis.Redis, names: Names, events: list[Event]) -> None:
    """As the matcher does: XADD entries of events with their first/last seq."""
    client.xadd(
        names.out_stream(0),
        {"first": events[0][1], "last": events[-1][1], "ts": 1, "ev": encode_events(events)},
    )


def run_for(consumer: SettlementConsumer, seconds: float) -> None:
    timer = threading.Timer(seconds, consumer.stop)
    timer.start()
    try:
        assert consumer.run() == 0
    finally:
        timer.cancel()


def orders_and_events(instrument: Instrument, driver: EngineDriver) -> tuple[Order, Order]:
    buyer, seller = UserFactory.create(), UserFactory.create()
    for user in (buyer, seller):
        approve_kyc(user)
    fund(buyer, "5000")
    Position.objects.create(
        user=seller, instrument=instrument, quantity=Decimal(10), cost_basis=Decimal(900)
    )
    sell = place(seller, side="sell", qty="10", price="100.00")
    buy = place(buyer, side="buy", qty="10", price="100.00")
    return buy, sell


def test_consumer_settles_acknowledges_and_ignores_republished_events(
    client: redis.Redis, names: Names, default_tier: RiskTier, instrument: Instrument
) -> None:
    driver = EngineDriver()
    driver.add_instrument(instrument)  # settles seq 1 directly
    buy, sell = orders_and_events(instrument, driver)
    events = driver.pump(settle=False)
    publish(client, names, events[:2])
    publish(client, names, events[2:])
    publish(client, names, events)  # a re-publication (crash recovery): settled once
    consumer = SettlementConsumer(redis_client=client, names=names, shard=0, block_ms=50)
    run_for(consumer, 1.5)
    assert settlement_cursor(shard=0) == events[-1][1]
    buy.refresh_from_db()
    sell.refresh_from_db()
    assert buy.status == sell.status == OrderStatus.FILLED
    assert client.xpending(names.out_stream(0), GROUP)["pending"] == 0
    health = client.hgetall(health_key(names, 0))
    assert health[b"state"] == b"stopped"
    assert int(health[b"last_seq"]) == events[-1][1]


def test_entries_delivered_but_not_acknowledged_are_settled_at_start(
    client: redis.Redis, names: Names, default_tier: RiskTier, instrument: Instrument
) -> None:
    driver = EngineDriver()
    driver.add_instrument(instrument)
    buy, _sell = orders_and_events(instrument, driver)
    publish(client, names, driver.pump(settle=False))
    consumer = SettlementConsumer(redis_client=client, names=names, shard=0, block_ms=50)
    # A previous run read the entry and died before settling it.
    consumer._ensure_group()
    assert consumer._read(">")
    assert client.xpending(names.out_stream(0), GROUP)["pending"] == 1
    run_for(consumer, 1.0)
    buy.refresh_from_db()
    assert buy.status == OrderStatus.FILLED
    assert client.xpending(names.out_stream(0), GROUP)["pending"] == 0


def test_a_gap_stops_settlement_without_skipping(
    client: redis.Redis, names: Names, default_tier: RiskTier, instrument: Instrument
) -> None:
    driver = EngineDriver()
    driver.add_instrument(instrument)
    buy, _sell = orders_and_events(instrument, driver)
    events = driver.pump(settle=False)
    publish(client, names, events[1:])  # the first event was lost
    consumer = SettlementConsumer(redis_client=client, names=names, shard=0, block_ms=50)
    run_for(consumer, 1.0)
    assert settlement_cursor(shard=0) == events[0][1] - 1
    buy.refresh_from_db()
    assert buy.status == OrderStatus.PENDING_NEW
    assert client.xpending(names.out_stream(0), GROUP)["pending"] == 1  # left for a retry
    assert b"does not follow" in client.hget(health_key(names, 0), "error")  # type: ignore[operator]
