"""The outbox relay: committed commands reach the matcher's input stream once per publication,
in order; a crash before the commit re-publishes (the matcher de-duplicates by command id)."""

import datetime as dt
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.instruments.models import Instrument
from apps.matching.protocol import Names, decode_command_entry
from apps.orders.models import OutboxCommand, RiskTier
from apps.orders.relay import OutboxRelay, outbox_cleanup, outbox_publish_batch
from apps.orders.services import order_cancel
from tests.integration.orders.conftest import fund
from tests.integration.settlement.support import place


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


def stream_ids(client: redis.Redis, names: Names, shard: int = 0) -> list[str]:
    entries: list[tuple[bytes, dict[bytes | str, Any]]] = client.xrange(names.in_stream(shard))  # type: ignore[assignment]
    return [decode_command_entry(fields)[0] or "" for _id, fields in entries]


@pytest.mark.django_db
def test_publishes_in_order_and_marks_rows(
    client: redis.Redis,
    names: Names,
    default_tier: RiskTier,
    instrument: Instrument,
    trader: User,
) -> None:
    fund(trader, "5000")
    order = place(trader, side="buy", qty="1", price="100.00")
    order_cancel(user=trader, order_id=order.pk)
    OutboxCommand.objects.create(command_id="other:1", shard=1, payload={"command": "cancel"})
    assert outbox_publish_batch(redis_client=client, names=names, limit=2) == 2
    assert outbox_publish_batch(redis_client=client, names=names, limit=2) == 1
    assert outbox_publish_batch(redis_client=client, names=names) == 0
    ids = stream_ids(client, names)
    assert ids[0] == f"oms:{order.pk}:new"
    assert ids[1].startswith(f"oms:{order.pk}:cancel:")
    assert stream_ids(client, names, shard=1) == ["other:1"]
    assert not OutboxCommand.objects.filter(published_at__isnull=True).exists()
    entries: list[tuple[bytes, dict[bytes | str, Any]]] = client.xrange(names.in_stream(0))  # type: ignore[assignment]
    _cid, command = decode_command_entry(entries[0][1])
    assert command["tif"] == "GTC"
    assert command["qty"] == 1
    assert command["price"] == 10000


@pytest.mark.django_db
def test_a_crash_before_commit_publishes_again(client: redis.Redis, names: Names) -> None:
    OutboxCommand.objects.create(command_id="oms:x:new", shard=0, payload={"command": "cancel"})

    class Crash(Exception):
        pass

    def publish_then_crash() -> None:
        with transaction.atomic():
            outbox_publish_batch(redis_client=client, names=names)
            raise Crash  # the XADD went out, the UPDATE is rolled back

    with pytest.raises(Crash):
        publish_then_crash()
    assert OutboxCommand.objects.get().published_at is None
    assert outbox_publish_batch(redis_client=client, names=names) == 1
    # The same command id twice in the stream: the matcher applies it once.
    assert stream_ids(client, names) == ["oms:x:new", "oms:x:new"]


@pytest.mark.django_db
def test_an_unpublishable_row_does_not_block_the_others(client: redis.Redis, names: Names) -> None:
    OutboxCommand.objects.create(command_id="bad id", shard=0, payload={"command": "cancel"})
    OutboxCommand.objects.create(command_id="good", shard=0, payload={"command": "cancel"})
    assert outbox_publish_batch(redis_client=client, names=names, skip_ids=set()) == 1
    assert stream_ids(client, names) == ["good"]
    assert OutboxCommand.objects.get(command_id="bad id").published_at is None


@pytest.mark.django_db
def test_cleanup_deletes_only_old_published_rows() -> None:
    old = timezone.now() - dt.timedelta(days=8)
    OutboxCommand.objects.create(command_id="a", shard=0, payload={}, published_at=old)
    OutboxCommand.objects.create(command_id="b", shard=0, payload={}, published_at=timezone.now())
    OutboxCommand.objects.create(command_id="c", shard=0, payload={})
    assert outbox_cleanup(older_than=dt.timedelta(days=7)) == 1
    assert set(OutboxCommand.objects.values_list("command_id", flat=True)) == {"b", "c"}


@pytest.mark.django_db(transaction=True)
def test_notify_wakes_the_relay_and_a_second_relay_stands_by(
    client: redis.Redis,
    names: Names,
    default_tier: RiskTier,
    instrument: Instrument,
    trader: User,
) -> None:
    fund(trader, "5000")
    # A poll interval far longer than the test: only LISTEN/NOTIFY can wake the relay.
    relays = [OutboxRelay(redis_client=client, names=names, poll_interval=30.0) for _ in "ab"]
    threads = [threading.Thread(target=r.run, daemon=True) for r in relays]
    try:
        threads[0].start()
        deadline = time.monotonic() + 10
        while not relays[0]._leader and time.monotonic() < deadline:
            time.sleep(0.05)
        threads[1].start()
        time.sleep(0.5)  # into its LISTEN wait
        order = place(trader, side="buy", qty="1", price="100.00")
        deadline = time.monotonic() + 5
        while not stream_ids(client, names) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stream_ids(client, names) == [f"oms:{order.pk}:new"]
        assert relays[0].published == 1
        assert relays[0]._leader
        assert not relays[1]._leader
        assert relays[1].published == 0
    finally:
        for relay in relays:
            relay.stop()
        for thread in threads:
            thread.join(timeout=40)
    assert not any(t.is_alive() for t in threads)
    assert OutboxCommand.objects.get().published_at is not None
