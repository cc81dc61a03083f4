"""Helpers for the matching-worker tests: spawn the real worker, produce commands, compare runs."""

from __future__ import annotations

import json
import marshal
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from apps.matching.engine import Engine, Event, command_from_dict, events_to_bytes
from apps.matching.protocol import Names, encode_command_entry, iter_output_entries
from apps.matching.worker.journal import iter_journal

BASE_DIR = Path(__file__).resolve().parents[3]
SYMBOLS = ("AAA", "BBB")

Cmd = tuple[str, dict[str, Any]]


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        with _suppress():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is ProcessLookupError


@dataclass
class Harness:
    """One isolated deployment: a unique key prefix, a journal dir, the real Redis."""

    redis_url: str
    names: Names
    journal_dir: Path
    logs_dir: Path
    client: redis.Redis
    spawned: list[WorkerProcess] = field(default_factory=list)
    shard: int = 0

    def worker_args(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "apps.matching.worker",
            "--journal-dir",
            str(self.journal_dir),
            "--redis-url",
            self.redis_url,
            "--prefix",
            self.names.prefix,
            "--md-prefix",
            self.names.md_prefix,
            "--shard",
            str(self.shard),
            "--block-ms",
            "20",
            "--health-interval",
            "0.2",
            *extra,
        ]

    def spawn(self, *extra: str) -> WorkerProcess:
        log_path = self.logs_dir / f"worker-{len(self.spawned)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                self.worker_args(*extra),
                cwd=BASE_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(BASE_DIR)},
            )
        worker = WorkerProcess(proc, log_path)
        self.spawned.append(worker)
        return worker

    def wait_running(self, worker: WorkerProcess, timeout: float = 30.0) -> None:
        """Until ``worker`` has recovered and reads its stream (its pid in the health hash)."""

        def running() -> bool:
            assert worker.proc.poll() is None, f"worker exited:\n{worker.log()[-3000:]}"
            h = self.health()
            return h.get("pid") == str(worker.proc.pid) and h.get("state") == "running"

        self.wait_until(running, timeout)

    def run_to_exit(self, *extra: str, timeout: float = 60.0) -> tuple[int, str]:
        worker = self.spawn(*extra)
        rc = worker.proc.wait(timeout=timeout)
        return rc, worker.log()

    def produce(self, cmds: Iterable[Cmd]) -> list[str]:
        pipe = self.client.pipeline(transaction=False)
        stream = self.names.in_stream(self.shard)
        for cid, cmd in cmds:
            pipe.xadd(stream, encode_command_entry(cid, cmd))  # type: ignore[arg-type]
        return [i.decode() for i in pipe.execute()]

    def produce_raw(self, fields: dict[str, str | bytes]) -> str:
        entry_id = self.client.xadd(self.names.in_stream(self.shard), fields)  # type: ignore[arg-type]
        return entry_id.decode()  # type: ignore[union-attr]

    def health(self) -> dict[str, str]:
        raw = self.client.hgetall(self.names.health_key(self.shard))
        return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]

    def caught_up(self) -> bool:
        """Every entry of the input stream delivered to the worker and acknowledged."""
        stream = self.names.in_stream(self.shard)
        try:
            info = self.client.xinfo_stream(stream)
            groups = self.client.xinfo_groups(stream)
        except redis.ResponseError:
            return False
        for g in groups:
            if g["name"] == b"matcher":
                last = info["last-generated-id"]
                return bool(g["last-delivered-id"] == last and g["pending"] == 0)
        return False

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                logs = "\n".join(w.log()[-3000:] for w in self.spawned[-2:])
                raise AssertionError(f"timed out waiting; last worker logs:\n{logs}")
            time.sleep(0.01)

    def output_entries(self) -> list[Any]:
        return list(iter_output_entries(self.client, shard=self.shard, names=self.names))

    def output_events(self) -> tuple[list[Event], int]:
        """Events of the output stream de-duplicated by seq (checked identical), and the
        number of duplicate events seen."""
        by_seq: dict[int, Event] = {}
        dups = 0
        for entry in self.output_entries():
            for event in entry.events:
                seen = by_seq.get(event[1])
                if seen is not None:
                    dups += 1
                    assert seen == event, f"seq {event[1]} published twice with different content"
                by_seq[event[1]] = event
        seqs = sorted(by_seq)
        assert seqs == list(range(1, len(seqs) + 1)), "gap in the output stream's seqs"
        return [by_seq[s] for s in seqs], dups

    def journal_records(self) -> list[tuple[int, bytes, list[Any]]]:
        out = []
        for _i, _p, records, _torn in iter_journal(
            self.journal_dir, shard=self.shard, start_index=0
        ):
            for _off, payload in records:
                out.append(marshal.loads(payload))  # noqa: S302 - our own test journal
        return out

    def dump_state(self) -> dict[str, Any]:
        rc = subprocess.run(
            [*self.worker_args(), "--dump-state"],
            cwd=BASE_DIR,
            capture_output=True,
            check=False,
            env={**os.environ, "PYTHONPATH": str(BASE_DIR)},
        )
        assert rc.returncode == 0, rc.stderr.decode()
        return json.loads(rc.stdout)

    def cleanup(self) -> None:
        for w in self.spawned:
            if w.proc.poll() is None:
                w.kill()
        keys = list(self.client.scan_iter(match=f"{self.names.prefix}:*", count=1000))
        if keys:
            self.client.delete(*keys)
        self.client.close()


def normalize(events: Sequence[Event]) -> list[Event]:
    """Events as they come back from JSON (tuples of JSON values)."""
    return [tuple(json.loads(json.dumps(list(e)))) for e in events]


def dedupe_commands(cmds: Sequence[Cmd]) -> list[Cmd]:
    seen: set[str] = set()
    out = []
    for cid, cmd in cmds:
        if cid not in seen:
            seen.add(cid)
            out.append((cid, cmd))
    return out


def reference_run(expected: Sequence[Cmd], ts_of: dict[str, int]) -> tuple[Engine, list[Event]]:
    """An uninterrupted in-process engine fed the de-duplicated commands with the journal's
    stamps, through the engine's own dataclass path (independent of the worker's codec)."""
    engine = Engine()
    events: list[Event] = []
    for cid, cmd in expected:
        events.extend(engine.process(command_from_dict({**cmd, "ts": ts_of[cid]})))
    return engine, events


def stamps_from_journal(
    records: Sequence[tuple[int, bytes, list[Any]]],
) -> tuple[list[str], dict[str, int]]:
    order: list[str] = []
    ts_of: dict[str, int] = {}
    for ts, _in_id, cmds in records:
        for cid, _code, _args in cmds:
            order.append(cid.decode())
            ts_of[cid.decode()] = ts
    return order, ts_of


def instruments() -> list[Cmd]:
    return [
        (
            f"instrument:{s}:0.01:1",
            {"command": "add_instrument", "symbol": s, "tick_size": "0.01", "lot_size": "1"},
        )
        for s in SYMBOLS
    ]


def mixed_commands(n: int, seed: int) -> list[Cmd]:
    """``n`` commands after the instruments: limit/market/stop/stop-limit orders (all TIFs and
    STP modes), cancels, replaces, end-of-session, and ~4% re-sent duplicates (same id; a few
    with a different body, which must be ignored)."""
    rng = random.Random(seed)
    cmds = instruments()
    order_ids: list[str] = []
    accounts = [f"acct{i}" for i in range(12)]
    for i in range(n):
        r = rng.random()
        sym = rng.choice(SYMBOLS)
        side = rng.choice(("buy", "sell"))
        acct = rng.choice(accounts)
        if r < 0.04 and len(cmds) > 10:
            cid, body = rng.choice(cmds[2:])
            if rng.random() < 0.2 and body["command"] == "new_order":
                body = {**body, "qty": body["qty"] + 1}  # same id, other body: ignored
            cmds.append((cid, body))
            continue
        if r < 0.45:
            oid = f"o{i}"
            price = 10_000 + rng.randint(-15, 15)
            cmd: dict[str, Any] = {
                "command": "new_order",
                "order_id": oid,
                "account": acct,
                "symbol": sym,
                "side": side,
                "order_type": "limit",
                "tif": rng.choice(("GTC", "GTC", "GTC", "DAY", "IOC", "FOK")),
                "qty": rng.randint(1, 20),
                "price": price,
                "stp": rng.choice(("none", "none", "cancel_newest", "cancel_oldest", "decrement")),
            }
            order_ids.append(oid)
        elif r < 0.53:
            oid = f"o{i}"
            cmd = {
                "command": "new_order",
                "order_id": oid,
                "account": acct,
                "symbol": sym,
                "side": side,
                "order_type": "market",
                "tif": "IOC",
                "qty": rng.randint(1, 30),
                "protection": rng.choice((None, 5, 50)),
            }
            order_ids.append(oid)
        elif r < 0.60:
            oid = f"o{i}"
            stop = 10_000 + (rng.randint(1, 10) if side == "buy" else -rng.randint(1, 10))
            limit = rng.random() < 0.5
            cmd = {
                "command": "new_order",
                "order_id": oid,
                "account": acct,
                "symbol": sym,
                "side": side,
                "order_type": "stop_limit" if limit else "stop",
                "tif": "GTC",
                "qty": rng.randint(1, 10),
                "stop_price": stop,
            }
            if limit:
                cmd["price"] = stop + (2 if side == "buy" else -2)
            order_ids.append(oid)
        elif r < 0.80 and order_ids:
            cmd = {"command": "cancel", "order_id": rng.choice(order_ids[-200:])}
            if rng.random() < 0.5:
                cmd["account"] = acct
        elif r < 0.95 and order_ids:
            cmd = {
                "command": "replace",
                "order_id": rng.choice(order_ids[-200:]),
                "new_qty": rng.randint(1, 25),
            }
            if rng.random() < 0.5:
                cmd["new_price"] = 10_000 + rng.randint(-15, 15)
        else:
            cmd = {"command": "end_of_session", "symbol": rng.choice((*SYMBOLS, None))}
        cmds.append((f"t:{i}:{cmd['command']}", cmd))
    cmds.append(("t:final:eos", {"command": "end_of_session", "symbol": None}))
    return cmds


def events_digest(events: Sequence[Event]) -> bytes:
    return events_to_bytes(events)
