"""The batch loop without Redis: what it journals, and that it leaves no cyclic garbage (the
worker runs with the cyclic collector disabled)."""

from __future__ import annotations

import gc
import json
import marshal
from pathlib import Path
from typing import Any

from apps.matching.protocol import encode_command
from apps.matching.worker.journal import JournalWriter, iter_journal
from apps.matching.worker.runner import Config, Worker
from tests.integration.matching.support import mixed_commands


class _FakeRedis:
    """Accepts pipelined writes; every reply is 1."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_packed(self, data: bytes) -> None:
        self.sent.append(data)

    def read_reply(self) -> Any:
        return 1


def _entries(cmds: list[tuple[str, dict[str, Any]]]) -> list[tuple[bytes, bytes, bytes, bytes]]:
    out = []
    for i, (cid, cmd) in enumerate(cmds):
        sid = b"1700000000000-%d" % i
        out.append((sid, cid.encode(), encode_command(cmd), b"$%d\r\n%s\r\n" % (len(sid), sid)))
    return out


def _worker(tmp_path: Path) -> tuple[Worker, _FakeRedis]:
    worker = Worker(Config(journal_dir=tmp_path))
    worker.journal = JournalWriter(tmp_path, shard=0, index=0, fresh=True)
    fake = _FakeRedis()
    worker.redis = fake  # type: ignore[assignment]
    return worker, fake


def test_batches_are_journaled_deduplicated_and_acknowledged(tmp_path: Path) -> None:
    cmds = mixed_commands(2000, seed=3)
    entries = _entries(cmds)
    worker, fake = _worker(tmp_path)
    for start in range(0, len(entries), 100):
        worker._process(entries[start : start + 100])
    worker._process(entries[:50])  # re-delivered: acknowledged, nothing applied
    worker._settle()  # the group-commit pipeline sends each batch once its flush is done
    assert worker.journal is not None
    worker.journal.shutdown()
    journaled = [
        c[0].decode()
        for _i, _p, records, _t in iter_journal(tmp_path, shard=0, start_index=0)
        for _o, payload in records
        for c in marshal.loads(payload)[2]  # noqa: S302 - the test's own journal
    ]
    seen: set[str] = set()
    assert journaled == [c for c, _ in cmds if not (c in seen or seen.add(c))]  # type: ignore[func-returns-value]
    assert worker.metrics.duplicates == len(cmds) - len(journaled) + 50
    last = fake.sent[-1]
    assert last.count(b"XACK") == 1
    assert b"XADD" not in last, "a batch of duplicates publishes nothing"
    first_out = fake.sent[0].split(b"\r\nev\r\n", 1)[1].split(b"\r\n", 2)[1]
    assert json.loads(first_out)[0][:2] == ["instrument_added", 1]


def test_the_loop_creates_no_cyclic_garbage(tmp_path: Path) -> None:
    entries = _entries(mixed_commands(3000, seed=8))
    worker, _fake = _worker(tmp_path)
    worker._process(entries[:100])  # warm-up: first-time allocations, caches
    enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        for start in range(100, len(entries), 100):
            worker._process(entries[start : start + 100])
        worker._settle()
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()
        assert worker.journal is not None
        worker.journal.shutdown()
