"""The real worker process: duplicates, SIGTERM, invalid input, market data, health, ownership."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from apps.matching.engine import NewOrder
from apps.matching.protocol import command_enqueue, shard_for
from tests.integration.matching.support import (
    Harness,
    dedupe_commands,
    instruments,
    mixed_commands,
    normalize,
    reference_run,
    stamps_from_journal,
)


def _order(i: int, side: str, price: int = 10_000, qty: int = 5) -> dict[str, Any]:
    return {
        "command": "new_order",
        "order_id": f"o{i}",
        "account": f"a{i % 3}",
        "symbol": "AAA",
        "side": side,
        "order_type": "limit",
        "tif": "GTC",
        "qty": qty,
        "price": price,
    }


def test_duplicate_command_ids_are_applied_once_even_across_a_restart(harness: Harness) -> None:
    first = _order(1, "buy")
    harness.produce([*instruments(), ("oms:1:new", first), ("oms:1:new", first)])
    worker = harness.spawn()
    harness.wait_running(worker)
    harness.wait_until(harness.caught_up)
    harness.produce([("oms:1:new", first), ("oms:2:new", _order(2, "buy", 9_999))])
    harness.wait_until(harness.caught_up)
    worker.kill()  # no final snapshot: the window must come back from the journal

    # Re-sent after the crash, same id with another body too: still ignored.
    harness.produce([("oms:1:new", first), ("oms:2:new", _order(2, "sell", 1))])
    harness.produce([("oms:3:new", _order(3, "sell", 10_000, 2))])
    worker = harness.spawn()
    harness.wait_running(worker)
    harness.wait_until(harness.caught_up)
    assert worker.terminate() == 0
    events, _ = harness.output_events()
    accepted = [e[4] for e in events if e[0] == "accepted"]
    assert accepted == ["o1", "o2", "o3"]
    assert [e[0] for e in events].count("rejected") == 0
    trades = [e for e in events if e[0] == "trade"]
    assert [(t[7], t[9], t[5]) for t in trades] == [("o1", "o3", 2)]
    assert int(harness.health()["duplicates"]) == 2  # counted by the second run


def test_sigterm_finishes_the_batch_snapshots_and_exits_zero(harness: Harness) -> None:
    harness.produce(mixed_commands(20_000, seed=11))
    worker = harness.spawn("--batch", "500", "--snapshot-every", "0", "--snapshot-interval", "0")
    harness.wait_until(lambda: int(harness.health().get("commands") or 0) > 1000)
    started = time.monotonic()
    assert worker.terminate(timeout=30) == 0
    assert time.monotonic() - started < 10
    health = harness.health()
    assert health["state"] == "stopped"
    out_last = harness.output_entries()[-1].last
    assert int(health["last_seq"]) == out_last, "every journaled batch was published"
    groups = harness.client.xinfo_groups(harness.names.in_stream(0))
    assert groups[0]["pending"] == 0, "the batch in flight was acknowledged"
    snaps = sorted(harness.journal_dir.glob("snapshot-*.snap"))
    assert len(snaps) == 1
    assert snaps[0].name.startswith(f"snapshot-{out_last:020d}-")
    state = harness.dump_state()
    assert state["snapshot_seq"] == state["seq"] == out_last, "nothing left to replay"
    assert state["state_hash"] == health["state_hash"]
    log = worker.log()
    assert "SIGTERM received" in log
    assert "stopped cleanly" in log


def test_invalid_input_is_rejected_never_dropped(harness: Harness) -> None:
    harness.shard = 1  # of 2: AAA and BBB live here, ZZZ on shard 0
    assert [shard_for(s, 2) for s in ("AAA", "BBB", "ZZZ")] == [1, 1, 0]
    harness.produce(instruments())
    harness.produce_raw({"id": "bad:json", "cmd": "{not json"})
    harness.produce_raw({"id": "bad:kind", "cmd": '{"command":"explode"}'})
    harness.produce_raw({"id": "bad:key", "cmd": '{"command":"cancel","order_id":"x","y":1}'})
    no_id = harness.produce_raw({"cmd": '{"command":"cancel","order_id":"zz"}'})
    harness.produce_raw(
        {
            "id": "bad:shard",
            "cmd": json.dumps(
                {"command": "add_instrument", "symbol": "ZZZ", "tick_size": "0.01", "lot_size": "1"}
            ),
        }
    )
    harness.produce([("ok:1", _order(1, "buy"))])
    worker = harness.spawn("--of", "2", "--retain-journal")
    harness.wait_running(worker)
    harness.wait_until(harness.caught_up)
    assert worker.terminate() == 0
    events, _ = harness.output_events()
    kinds = [(e[0], e[-1] if e[0] == "rejected" else e[4]) for e in events]
    assert kinds[2:] == [
        ("rejected", "INVALID_COMMAND"),
        ("rejected", "INVALID_COMMAND"),
        ("rejected", "INVALID_COMMAND"),
        ("rejected", "UNKNOWN_ORDER"),  # the entry without an id was applied (as stream:<id>)
        ("rejected", "INVALID_COMMAND"),
        ("accepted", "o1"),
    ]
    journal_ids = [c[0] for _ts, _in, cmds in harness.journal_records() for c in cmds]
    assert f"stream:{no_id}".encode() in journal_ids


def test_market_data_and_health(harness: Harness) -> None:
    sub = redis.Redis.from_url(harness.redis_url).pubsub()
    sub.subscribe(harness.names.md_channel("AAA"))
    harness.produce(instruments())
    worker = harness.spawn("--cpu", "0")
    harness.wait_running(worker)
    harness.wait_until(harness.caught_up)
    harness.produce([("m:1", _order(1, "sell", 10_001, 7)), ("m:2", _order(2, "buy", 10_001, 3))])
    harness.wait_until(harness.caught_up)
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("trades" in m for m in messages):
        msg = sub.get_message(timeout=0.2)
        if msg and msg["type"] == "message":
            messages.append(json.loads(msg["data"]))
    sub.close()
    trade_msgs = [m for m in messages if "trades" in m]
    assert trade_msgs, messages
    m = trade_msgs[-1]
    assert m["symbol"] == "AAA"
    assert [t[1:] for t in m["trades"]] == [[10_001, 3, "buy"]]
    assert m["bbo"] == [None, 0, 10_001, 4]

    harness.wait_until(lambda: harness.health().get("last_seq") == str(m["seq"]))
    h = harness.health()
    assert h["state"] == "running"
    assert h["cpu"] == "0"
    assert h["pid"] == str(worker.proc.pid)
    for key in ("input_lag", "pending", "ops_per_s", "last_snapshot_at", "journal_bytes"):
        assert key in h, key
    assert h["input_lag"] == "0"
    assert int(h["journal_bytes"]) > 0
    assert worker.terminate() == 0


def test_one_worker_per_shard(harness: Harness, tmp_path: Any) -> None:
    first = harness.spawn()
    harness.wait_running(first)
    rc, log = harness.run_to_exit()  # same directory
    assert rc == 4
    assert "is in use by another worker" in log
    other = Harness(
        redis_url=harness.redis_url,
        names=harness.names,
        journal_dir=tmp_path / "other-journal",
        logs_dir=harness.logs_dir,
        client=harness.client,
    )
    other.spawned = harness.spawned  # cleaned up with the fixture's
    rc, log = other.run_to_exit()  # another directory, same shard in the same Redis
    assert rc == 4
    assert "two workers on one shard would split its input" in log
    assert first.terminate() == 0


def test_command_enqueue_helper_round_trip(harness: Harness) -> None:
    harness.produce(instruments())
    entry_id = command_enqueue(
        harness.client,
        shard=0,
        command_id="oms:abc:new",
        command=NewOrder(0, "abc", "acct", "AAA", "buy", "limit", "DAY", 3, 9_990),
        names=harness.names,
    )
    worker = harness.spawn()
    harness.wait_running(worker)
    harness.wait_until(harness.caught_up)
    assert worker.terminate() == 0
    entries = harness.output_entries()
    assert entries[-1].input_id == entry_id
    assert entries[-1].events[-1][:2] == ("accepted", 3)
    assert entries[-1].events[-1][4] == "abc"


def test_reconnects_when_redis_drops_the_connection(harness: Harness) -> None:
    cmds = mixed_commands(3000, seed=21)
    worker = harness.spawn("--retain-journal", "--batch", "50")
    harness.wait_running(worker)
    name = f"{harness.names.prefix}:matcher-0".encode()
    size = len(cmds) // 4 + 1
    for part in range(4):
        harness.produce(cmds[part * size : (part + 1) * size])
        time.sleep(0.05)  # mid-stream, usually
        for client in harness.client.client_list():
            if client["name"] == name.decode():
                harness.client.client_kill_filter(_id=client["id"])
        harness.wait_until(harness.caught_up)
    assert worker.terminate() == 0
    log = worker.log()
    assert log.count("Redis connection lost") >= 4
    expected = dedupe_commands(cmds)
    order, ts_of = stamps_from_journal(harness.journal_records())
    assert order == [cid for cid, _ in expected]
    ref_engine, ref_events = reference_run(expected, ts_of)
    events, duplicates = harness.output_events()
    assert events == normalize(ref_events)
    assert duplicates == 0
    assert harness.health()["state_hash"] == ref_engine.state_hash()
