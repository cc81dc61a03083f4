"""The Django side of the matching service: run_matcher's instrument enqueueing and the health
view."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from io import StringIO

import pytest
import redis
from django.core.management import call_command
from django.test import Client
from pytest_django.fixtures import Settings

from apps.instruments.models import InstrumentStatus
from apps.instruments.services import instrument_create
from apps.matching.protocol import Names, decode_command_entry, shard_for


@pytest.fixture
def names(settings: Settings, redis_url: str) -> Iterator[Names]:
    tag = uuid.uuid4().hex[:12]
    settings.MATCHER_PREFIX = f"test-{tag}:matcher"
    settings.MATCHER_MD_PREFIX = f"test-{tag}:md"
    settings.REDIS_URL = redis_url
    yield Names(settings.MATCHER_PREFIX, settings.MATCHER_MD_PREFIX)
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"test-{tag}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.django_db
def test_run_matcher_enqueues_the_shards_active_instruments(names: Names, redis_url: str) -> None:
    for symbol, tick, lot in (
        ("AAPL", "0.01", "1"),
        ("MSFT", "0.01", "1"),
        ("TSLA", "0.01", "1"),
        ("BTC-USD", "0.01", "0.0001"),
    ):
        instrument_create(
            symbol=symbol,
            name=symbol,
            asset_class="equity",
            currency="USD",
            tick_size=tick,
            lot_size=lot,
        )
    instrument_create(
        symbol="OLD",
        name="Delisted",
        asset_class="equity",
        currency="USD",
        tick_size="0.01",
        lot_size="1",
        status=InstrumentStatus.DELISTED,
    )
    out = StringIO()
    for _ in range(2):  # a restart re-enqueues the same ids (the worker applies them once)
        call_command("run_matcher", "--shard", "0", "--of", "2", "--enqueue-only", stdout=out)
    mine = sorted(s for s in ("AAPL", "MSFT", "TSLA", "BTC-USD") if shard_for(s, 2) == 0)
    assert mine == ["AAPL", "BTC-USD"]
    client = redis.Redis.from_url(redis_url)
    rows = client.xrange(names.in_stream(0))
    client.close()
    decoded = [decode_command_entry(fields) for _id, fields in rows]  # type: ignore[union-attr,arg-type]
    ids = [cid for cid, _ in decoded]
    assert ids == [
        "instrument:AAPL:0.01:1",
        "instrument:BTC-USD:0.01:0.0001",
        "instrument:AAPL:0.01:1",
        "instrument:BTC-USD:0.01:0.0001",
    ]
    assert decoded[1][1] == {
        "command": "add_instrument",
        "symbol": "BTC-USD",
        "tick_size": "0.01",
        "lot_size": "0.0001",
    }
    assert "instruments enqueued: AAPL, BTC-USD" in out.getvalue()


@pytest.mark.django_db
def test_matcher_health_view(client: Client, names: Names, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    try:
        response = client.get("/healthz/matcher")
        assert response.status_code == 503  # no worker has ever reported
        assert response.json()["shards"][0]["ok"] is False

        r.hset(
            names.health_key(0),
            mapping={
                "state": "running",
                "pid": "123",
                "host": "box",
                "last_seq": "42",
                "input_lag": "0",
                "ops_per_s": "1234.5",
                "updated_at": str(time.time()),
            },
        )
        response = client.get("/healthz/matcher")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        shard = body["shards"][0]
        assert shard["last_seq"] == 42
        assert shard["ops_per_s"] == 1234.5
        assert "pid" not in shard
        assert "host" not in shard
        assert response["Cache-Control"].startswith("max-age=0")

        r.hset(names.health_key(0), "updated_at", str(time.time() - 60))
        assert client.get("/healthz/matcher").status_code == 503  # stale
    finally:
        r.close()
