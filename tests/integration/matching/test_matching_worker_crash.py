"""Crash test: the real worker process, the real Redis, SIGKILL at random points.

How the comparison is made meaningful: the only input the worker adds is the time stamp of each
batch (``ts``), and it journals it. The reference is an uninterrupted in-process engine fed the
producer's commands - de-duplicated by id, in stream order, built through the engine's own
``command_from_dict`` (not the worker's codec) - with each command's ``ts`` taken from the
journal. Before that, the test checks the journal holds exactly those command ids in that order
(nothing lost, nothing applied twice). Then the worker's final state hash must equal the
reference's, and the output stream, de-duplicated by seq, must equal the reference's events.
"""

from __future__ import annotations

import random
import re
import threading
import time

import pytest
import redis

from apps.matching.protocol import encode_command_entry
from apps.matching.worker.journal import frame, list_segments, read_segment
from tests.integration.matching.support import (
    Harness,
    dedupe_commands,
    mixed_commands,
    normalize,
    reference_run,
    stamps_from_journal,
)

N_COMMANDS = 12_000
MIN_KILLS = 24


def _producer(harness: Harness, cmds: list[tuple[str, dict]], done: threading.Event) -> None:
    """Feeds the input stream at ~1,500 commands/s in small pipelined bursts, while the test
    kills and restarts workers."""
    rng = random.Random(99)
    client = redis.Redis.from_url(harness.redis_url)
    stream = harness.names.in_stream(0)
    pos = 0
    try:
        while pos < len(cmds):
            n = rng.randint(10, 80)
            pipe = client.pipeline(transaction=False)
            for cid, cmd in cmds[pos : pos + n]:
                # Both encodings of the protocol, positional (command_enqueue's) and object.
                fields = encode_command_entry(cid, cmd, positional=rng.random() < 0.7)
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
            pipe.execute()
            pos += n
            time.sleep(n / 1500)
    finally:
        client.close()
        done.set()


def _snapshot_in_progress(harness: Harness) -> bool:
    return any(harness.journal_dir.glob("snapshot-*.tmp"))


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_duplicates_nothing(harness: Harness) -> None:
    rng = random.Random(20_240_917)
    cmds = mixed_commands(N_COMMANDS, seed=7)
    common = ["--retain-journal", "--batch", "64", "--snapshot-every", "400"]
    done = threading.Event()
    producer = threading.Thread(target=_producer, args=(harness, cmds, done), daemon=True)
    producer.start()

    kills = during_snapshot = torn = 0
    tear = False
    while kills < MIN_KILLS or not done.is_set():
        mode = kills % 4
        extra = ["--snapshot-mode", rng.choice(("fork", "inline"))]
        if mode == 0:
            extra += ["--snapshot-pause", "0.02"]
        elif mode == 2:
            extra += ["--publish-pause", "0.004"]
        worker = harness.spawn(*common, *extra)
        if mode == 0:
            # Kill while a snapshot file is being written (by the loop or its forked child).
            deadline = time.monotonic() + 4.0
            while not _snapshot_in_progress(harness) and time.monotonic() < deadline:
                if worker.proc.poll() is not None:
                    break
                time.sleep(0.001)
            if _snapshot_in_progress(harness):
                time.sleep(rng.uniform(0, 0.03))
                during_snapshot += 1
        elif mode == 1:
            time.sleep(rng.uniform(0.0, 0.2))  # often during start-up or recovery
        else:
            time.sleep(rng.uniform(0.05, 0.6))
        assert worker.proc.poll() is None, f"worker exited on its own:\n{worker.log()[-3000:]}"
        worker.kill()
        kills += 1
        index, last = list_segments(harness.journal_dir)[-1]
        tear |= kills % 6 == 3
        if tear and read_segment(last, shard=0, index=index, last=True)[1] is None:
            tear = False
            # What a crash in the middle of a journal write leaves: a prefix of a record. (A
            # SIGKILL can do it too, to a write of more than a page; then nothing is added.)
            with open(last, "ab") as f:
                f.write(frame(b"\x01" * 300)[: rng.randint(1, 250)])
            torn += 1
    producer.join(timeout=60)

    final = harness.spawn(*common)
    harness.wait_running(final)
    harness.wait_until(harness.caught_up, timeout=60)
    assert final.terminate() == 0, final.log()[-3000:]
    health = harness.health()
    assert health["state"] == "stopped"

    # The journal holds each distinct command exactly once, in stream order.
    expected = dedupe_commands(cmds)
    order, ts_of = stamps_from_journal(harness.journal_records())
    assert len(cmds) - len(expected) > 300, "the workload re-sends commands"
    assert order == [cid for cid, _ in expected]

    ref_engine, ref_events = reference_run(expected, ts_of)
    assert health["state_hash"] == ref_engine.state_hash()
    assert harness.dump_state()["state_hash"] == ref_engine.state_hash()

    out_events, duplicates = harness.output_events()
    assert out_events == normalize(ref_events), "output stream differs from the reference"
    assert duplicates == 0
    trades = sum(1 for e in ref_events if e[0] == "trade")
    assert trades > 500

    assert kills >= MIN_KILLS
    assert during_snapshot >= 4, f"only {during_snapshot} kills hit a snapshot being written"
    logs = "\n".join(w.log() for w in harness.spawned)
    # >=: a kill while a new segment file is being created leaves one too (header incomplete).
    assert logs.count("torn tail in") >= torn >= 4
    republished = sum(int(n) for n in re.findall(r"re-published (\d+) events", logs))
    assert republished > 0, "no kill landed between a journal write and its publication"
