"""Matching-worker benchmark: Redis in -> journal (fsync) -> engine -> Redis out, end to end.

Run (prints one JSON object on stdout; progress on stderr)::

    python -m apps.matching.benchmarks.worker_bench                       # defaults below
    python -m apps.matching.benchmarks.worker_bench --orders 300000 --rates 50000 --no-recovery

Needs a Redis (``--redis-url``, default ``$REDIS_URL`` or redis://127.0.0.1:6379/0); all keys
use a unique prefix and are deleted afterwards. Journal files go to a temporary directory.

Processes (three, besides this coordinator):

* worker: ``python -m apps.matching.worker`` pinned to ``--worker-cpu`` (1), fsync group
  commit, snapshots by fork, market data on - exactly as deployed;
* producer: pinned to ``--producer-cpu`` (0); encodes every command before the clock starts,
  then sends pipelined XADDs (chunks of ``--chunk``) either as fast as Redis takes them
  (saturation) or paced to a target rate; records (stream id, wall-clock ns at send) per chunk;
* reader: pinned to the producer's CPU; XREAD BLOCK on the output stream, records for each
  entry the wall-clock ns at which it became visible and its ``in`` field (last input id).

Latency of a command = visible time of the first output entry whose ``in`` >= its stream id,
minus its send time (same machine clock, ``time.time_ns``). Throughput = commands / (last
visible - first send).

Workload: ``apps.matching.benchmarks.workload`` (the engine benchmark's): a book seeded with
1,000 resting orders, then ~60% passive limits, 25% cancels, 15% marketable orders; commands
are the engine's JSON (``command_to_dict``) with ids ``bench:<n>``.

Recovery figures (``--no-recovery`` skips): a journal holding ``--replay-events`` (1,000,000)
events, written with the worker's own codec and framing, replayed by ``recover_state`` (the
worker's start-up path) in a fresh process; and a snapshot of ``--resting`` (500,000) resting
orders followed by a journal tail of ``--tail-events`` (200,000) events, likewise.
"""

from __future__ import annotations

import argparse
import json
import marshal
import multiprocessing as mp
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apps.matching.engine import BUY, GTC, LIMIT, SELL, Engine
from apps.matching.protocol import Names, encode_command
from apps.matching.worker.codec import apply_records, decode_batch
from apps.matching.worker.dedupe import DedupeWindow
from apps.matching.worker.journal import JournalWriter
from apps.matching.worker.resp import Redis, flat_pairs, pack, parse_entry_id
from apps.matching.worker.runner import Config, recover_state
from apps.matching.worker.snapshots import encode as encode_snapshot
from apps.matching.worker.snapshots import write as write_snapshot

from .workload import CANCEL, LOT, MARKET_ORDER, SYMBOL, TICK, Op, generate

BASE_DIR = Path(__file__).resolve().parents[3]


def log(msg: str) -> None:
    print(f"[worker_bench] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ workload -> commands
def _command(op: Op) -> dict[str, Any]:
    side = "buy" if op.is_buy else "sell"
    if op.kind == CANCEL:
        return {"command": "cancel", "order_id": op.order_id, "account": op.account}
    if op.kind == MARKET_ORDER:
        return {
            "command": "new_order",
            "order_id": op.order_id,
            "account": op.account,
            "symbol": SYMBOL,
            "side": side,
            "order_type": "market",
            "tif": "IOC",
            "qty": op.qty,
        }
    return {
        "command": "new_order",
        "order_id": op.order_id,
        "account": op.account,
        "symbol": SYMBOL,
        "side": side,
        "order_type": "limit",
        "tif": "GTC",
        "qty": op.qty,
        "price": op.price,
    }


def build_commands(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(command id, cmd) for the instrument, the seed book and ``n`` operations, encoded as
    ``command_enqueue`` sends them (positional JSON)."""
    work = generate(n, seed)
    add = {"command": "add_instrument", "symbol": SYMBOL, "tick_size": TICK, "lot_size": LOT}
    out = [(b"instrument:BENCH", encode_command({k: str(v) for k, v in add.items()}))]
    for i, op in enumerate([*work.seed_orders, *work.ops]):
        out.append((b"bench:%d" % i, encode_command(_command(op))))
    return out


# ------------------------------------------------------------------ producer / reader processes
def _pin(cpu: int | None) -> None:
    if cpu is not None and 0 <= cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def producer_main(
    url: str,
    stream: str,
    cmds: list[tuple[bytes, bytes]],
    skip: int,
    rate: float,
    chunk: int,
    cpu: int | None,
    ready: Any,
    go: Any,
    result: Any,
) -> None:
    """Send ``cmds[skip:]``; report [(last stream id of chunk as (ms, seq), n, send ns)]."""
    import gc

    gc.disable()
    _pin(cpu)
    r = Redis(url)
    s = stream.encode()
    head = b"*7\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$2\r\nid\r\n" % (len(s), s)
    packed = [
        b"".join(
            head + b"$%d\r\n%s\r\n$3\r\ncmd\r\n$%d\r\n%s\r\n" % (len(cid), cid, len(c), c)
            for cid, c in cmds[i : i + chunk]
        )
        for i in range(skip, len(cmds), chunk)
    ]
    sizes = [min(chunk, len(cmds) - i) for i in range(skip, len(cmds), chunk)]
    sent: list[tuple[int, int, int, int]] = []
    ready.set()
    go.wait()
    start = time.perf_counter()
    interval = chunk / rate if rate else 0.0
    for k, data in enumerate(packed):
        if interval:
            # Sleep, never spin: this CPU is shared with Redis, and a busy loop would slow it.
            delay = start + k * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        t = time.time_ns()
        r.send_packed(data)
        ids = [r.read_reply() for _ in range(sizes[k])]
        ms, seq = parse_entry_id(ids[-1])
        sent.append((ms, seq, sizes[k], t))
    result.put(sent)
    r.close()


def reader_main(
    url: str, stream: str, last_id: Any, cpu: int | None, ready: Any, result: Any
) -> None:
    """Follow the output stream until an entry's ``in`` reaches ``last_id``."""
    import gc

    gc.disable()
    _pin(cpu)
    r = Redis(url)
    seen: list[tuple[int, int, int, int]] = []  # (visible ns, in ms, in seq, events)
    start = "$"
    ready.set()
    target: tuple[int, int] | None = None
    while True:
        reply = r.execute("XREAD", "COUNT", 1000, "BLOCK", 200, "STREAMS", stream, start)
        now = time.time_ns()
        if reply:
            for entry_id, fields in reply[0][1]:
                f = flat_pairs(fields)
                start = entry_id
                events = int(f["last"]) - int(f["first"]) + 1
                if b"in" in fields[::2]:
                    ms, seq = parse_entry_id(f["in"])
                    seen.append((now, ms, seq, events))
                else:
                    seen.append((now, -1, -1, events))
        if target is None and not last_id.empty():
            target = last_id.get()
        if target is not None and seen and (seen[-1][1], seen[-1][2]) >= target:
            break
    result.put(seen)
    r.close()


# ------------------------------------------------------------------ one end-to-end run
def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _redis_cpu(r: Redis) -> float:
    info = r.execute("INFO", "cpu").decode()
    values = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return float(values["used_cpu_sys"]) + float(values["used_cpu_user"])


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def run_e2e(
    args: argparse.Namespace, cmds: list[tuple[bytes, bytes]], rate: float, label: str
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    names = Names(f"bench-{tag}:matcher", f"bench-{tag}:md")
    jdir = Path(tempfile.mkdtemp(prefix="worker-bench-", dir=args.journal_root))
    r = Redis(args.redis_url)
    in_stream, out_stream = names.in_stream(0), names.out_stream(0)
    ctx = mp.get_context("fork")
    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "apps.matching.worker",
            "--journal-dir",
            str(jdir),
            "--redis-url",
            args.redis_url,
            "--prefix",
            names.prefix,
            "--md-prefix",
            names.md_prefix,
            "--cpu",
            str(args.worker_cpu),
            "--batch",
            str(args.batch),
            "--snapshot-every",
            str(args.snapshot_every),
            "--log-level",
            "WARNING",
        ],
        cwd=BASE_DIR,
        env={**os.environ, "PYTHONPATH": str(BASE_DIR)},
    )
    try:
        # Warm-up, not timed: the instrument and the 1,000-order seed book.
        warm = 1001
        r.send_packed(
            b"".join(pack(["XADD", in_stream, "*", "id", c, "cmd", j]) for c, j in cmds[:warm])
        )
        for _ in range(warm):
            r.read_reply()
        deadline = time.monotonic() + 60
        while True:
            h = flat_pairs(r.execute("HGETALL", names.health_key(0)) or [])
            if h.get("state") == b"running" and int(h.get("commands_total", b"0")) >= warm:
                break
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker did not start")
            time.sleep(0.05)
        ready_p, ready_r, go = ctx.Event(), ctx.Event(), ctx.Event()
        sent_q, seen_q, last_q = ctx.Queue(), ctx.Queue(), ctx.Queue()
        reader = ctx.Process(
            target=reader_main,
            args=(args.redis_url, out_stream, last_q, args.producer_cpu, ready_r, seen_q),
        )
        producer = ctx.Process(
            target=producer_main,
            args=(
                args.redis_url,
                in_stream,
                cmds,
                warm,
                rate,
                args.chunk,
                args.producer_cpu,
                ready_p,
                go,
                sent_q,
            ),
        )
        reader.start()
        producer.start()
        ready_r.wait()
        ready_p.wait()
        time.sleep(0.2)
        load_before = os.getloadavg()[0]
        cpu0 = _cpu_seconds(worker.pid), _redis_cpu(r), time.monotonic()
        go.set()
        samples: list[dict[str, Any]] = []  # the worker's health while busy
        sent = None
        while True:
            try:
                if sent is None:
                    sent = sent_q.get(timeout=0.5)
                    last_q.put((sent[-1][0], sent[-1][1]))
                seen = seen_q.get(timeout=0.5)
                break
            except queue.Empty:
                h = flat_pairs(r.execute("HGETALL", names.health_key(0)))
                if float(h.get("ops_per_s", 0)) > 0:
                    samples.append(h)
        cpu1 = _cpu_seconds(worker.pid), _redis_cpu(r), time.monotonic()
        load_after = os.getloadavg()[0]
        producer.join()
        reader.join()
        health = {
            k: v.decode() for k, v in flat_pairs(r.execute("HGETALL", names.health_key(0))).items()
        }
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=120)
        except subprocess.TimeoutExpired:
            worker.kill()
        keys = r.execute("KEYS", f"{names.prefix}:*")
        if keys:
            r.execute("DEL", *keys)
        r.close()
        shutil.rmtree(jdir, ignore_errors=True)

    # Join: each chunk becomes visible with the first output entry whose `in` reaches it.
    lat: list[float] = []
    j = 0
    entries = [e for e in seen if e[1] >= 0]
    for ms, seq, n, t_send in sent:
        while j < len(entries) and (entries[j][1], entries[j][2]) < (ms, seq):
            j += 1
        t_vis = entries[j][0] if j < len(entries) else entries[-1][0]
        lat.extend([(t_vis - t_send) / 1e6] * n)
    lat.sort()
    n_cmds = sum(s[2] for s in sent)
    first_send = sent[0][3]
    last_visible = seen[-1][0]
    send_span = (sent[-1][3] - first_send) / 1e9
    total_span = (last_visible - first_send) / 1e9
    events = sum(e[3] for e in seen)
    out = {
        "label": label,
        "offered_rate": rate or "max",
        "orders": n_cmds,
        "events": events,
        "produce_s": round(send_span, 3),
        "produced_per_s": round(n_cmds / send_span) if send_span else None,
        "sustained_orders_per_s": round(n_cmds / total_span),
        "events_per_s": round(events / total_span),
        "latency_ms": {
            "p50": round(_percentile(lat, 50), 3),
            "p90": round(_percentile(lat, 90), 3),
            "p99": round(_percentile(lat, 99), 3),
            "p99.9": round(_percentile(lat, 99.9), 3),
            "max": round(lat[-1], 3),
        },
        # Where the time goes: CPU used by the worker and by redis-server during the run.
        "worker_cpu_util": round((cpu1[0] - cpu0[0]) / (cpu1[2] - cpu0[2]), 2),
        "worker_cpu_us_per_order": round((cpu1[0] - cpu0[0]) / n_cmds * 1e6, 2),
        "redis_cpu_util": round((cpu1[1] - cpu0[1]) / (cpu1[2] - cpu0[2]), 2),
        "output_entries": len(seen),
        "mean_batch": round(n_cmds / max(1, len(entries)), 1),
        # Share of the worker's wall time spent waiting (health samples while it was busy).
        "worker_waits": {
            k: round(sum(float(h[k]) for h in samples) / len(samples), 3) if samples else None
            for k in ("wait_read", "wait_sync", "wait_publish")
        },
        "worker_batches": int(health.get("batches", 0)),
        # 1-minute load average of the machine before/after (2 CPUs: above ~2, other processes
        # competed with the benchmark's).
        "loadavg_1m": [round(load_before, 2), round(load_after, 2)],
        "worker_duplicates": int(health.get("duplicates", 0)),
    }
    log(f"{label}: {json.dumps(out)}")
    return out


# ------------------------------------------------------------------ recovery figures
def _write_journal(
    jdir: Path,
    cmds: list[tuple[bytes, bytes]],
    *,
    start: int,
    events: int,
    engine: Engine,
    dedupe: DedupeWindow,
    segment: int,
    batch: int,
) -> tuple[int, int]:
    """Journal ``cmds[start:]`` in batches until ``events`` events were produced; returns
    (next command index, events written)."""
    writer = JournalWriter(jdir, shard=0, index=segment, fresh=True)
    ts = time.time_ns()
    done = 0
    i = start
    while done < events and i < len(cmds):
        chunk = cmds[i : i + batch]
        ids = [c for c, _ in chunk]
        records = decode_batch(ids, [j for _, j in chunk], shard=0, shards=1)
        writer.append(marshal.dumps((ts, b"%d-0" % i, records), 4))
        dedupe.add_batch(ts, ids)
        done += len(apply_records(engine, ts, records))
        i += len(chunk)
        ts += 1000
    writer.close()
    return i, done


def _time_recovery(jdir: str) -> None:
    """Child mode: time the worker's start-up recovery path on ``jdir``; print JSON."""
    import gc

    gc.collect()
    gc.freeze()
    gc.disable()
    cfg = Config(journal_dir=Path(jdir))
    t = time.perf_counter()
    st = recover_state(cfg, out_last=None, repair=False, keep_events_after=None)
    elapsed = time.perf_counter() - t
    print(json.dumps({"seconds": round(elapsed, 3), "seq": st.engine.seq, "commands": st.commands}))


def _recover_in_child(jdir: Path, cpu: int | None) -> dict[str, Any]:
    """A fresh process (pinned like the worker): no warm caches or heap from building the data."""
    cmd = [sys.executable, "-m", "apps.matching.benchmarks.worker_bench"]
    cmd += ["--_time-recovery", str(jdir), "--worker-cpu", str(-1 if cpu is None else cpu)]
    out = subprocess.run(  # noqa: S603 - our own interpreter and module
        cmd,
        cwd=BASE_DIR,
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(BASE_DIR)},
    )
    return json.loads(out.stdout)


def recovery_figures(args: argparse.Namespace) -> dict[str, Any]:
    import gc

    gc.disable()
    root = Path(tempfile.mkdtemp(prefix="worker-bench-rec-", dir=args.journal_root))
    result: dict[str, Any] = {}
    try:
        # 1. A journal of --replay-events events from an empty state.
        jdir = root / "replay"
        jdir.mkdir()
        n_ops = int(args.replay_events / 1.3) + 10_000
        cmds = build_commands(n_ops, seed=11)
        engine, dedupe = Engine(), DedupeWindow()
        _i, events = _write_journal(
            jdir,
            cmds,
            start=0,
            events=args.replay_events,
            engine=engine,
            dedupe=dedupe,
            segment=0,
            batch=500,
        )
        size = sum(p.stat().st_size for p in jdir.iterdir())
        del engine, dedupe, cmds
        rec = _recover_in_child(jdir, args.worker_cpu)
        result["replay"] = {
            "events": events,
            "commands": rec["commands"],
            "journal_mb": round(size / 1e6, 1),
            "seconds": rec["seconds"],
            "events_per_s": round(events / rec["seconds"]),
        }
        log(f"replay: {result['replay']}")

        # 2. A snapshot with --resting resting orders, then a tail of --tail-events events.
        sdir = root / "snapshot"
        sdir.mkdir()
        engine, dedupe = Engine(), DedupeWindow()
        ts = time.time_ns()
        engine.add_instrument(ts, SYMBOL, TICK, LOT)
        import random

        rng = random.Random(5)
        ids = []
        for k in range(args.resting):
            oid = 10_000_000 + k
            if k % 2:
                engine.new_order(
                    ts,
                    oid,
                    k % 64,
                    SYMBOL,
                    BUY,
                    LIMIT,
                    GTC,
                    rng.randint(1, 10),
                    9_000 - rng.randrange(1000),
                )
            else:
                engine.new_order(
                    ts,
                    oid,
                    k % 64,
                    SYMBOL,
                    SELL,
                    LIMIT,
                    GTC,
                    rng.randint(1, 10),
                    11_000 + rng.randrange(1000),
                )
            ids.append(b"seed:%d" % k)
        dedupe.add_batch(ts, ids)
        from apps.matching.worker import fastsnap

        meta = {
            "shard": 0,
            "shards": 1,
            "seq": engine.seq,
            "segment": 1,
            "last_ts": ts,
            "last_input_id": "0-1",
            "commands": args.resting + 1,
            "created_at": time.time(),
        }
        t = time.perf_counter()
        image = fastsnap.dump(engine)
        t_image = time.perf_counter() - t
        t = time.perf_counter()
        canonical = engine.snapshot()
        t_json = time.perf_counter() - t
        parts = encode_snapshot(meta, dedupe.dump(), image, canonical)
        t = time.perf_counter()
        write_snapshot(sdir, seq=engine.seq, segment=1, parts=parts)
        t_write = time.perf_counter() - t
        t = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        t_fork = time.perf_counter() - t
        os.waitpid(pid, 0)
        # The tail: the benchmark workload against this book (its prices sit inside it).
        tail_cmds = build_commands(int(args.tail_events / 1.3) + 10_000, seed=12)[1:]
        _i, tail_events = _write_journal(
            sdir,
            tail_cmds,
            start=0,
            events=args.tail_events,
            engine=engine,
            dedupe=dedupe,
            segment=1,
            batch=500,
        )
        snap_mb = sum(len(p) for p in parts) / 1e6
        del engine, dedupe
        rec = _recover_in_child(sdir, args.worker_cpu)
        result["snapshot"] = {
            "resting_orders": args.resting,
            "tail_events": tail_events,
            "snapshot_mb": round(snap_mb, 1),
            "recovery_seconds": rec["seconds"],
            "write": {
                "fast_image_s": round(t_image, 3),
                "canonical_json_s": round(t_json, 3),
                "file_write_fsync_s": round(t_write, 3),
                "fork_pause_s": round(t_fork, 4),
            },
        }
        log(f"snapshot: {result['snapshot']}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


# ------------------------------------------------------------------ main
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.matching.benchmarks.worker_bench")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--orders", type=int, default=1_000_000, help="saturation run size")
    p.add_argument(
        "--rates", default="20000,50000,100000", help="paced runs (orders/s), comma-separated"
    )
    p.add_argument("--paced-seconds", type=float, default=10.0)
    p.add_argument("--worker-cpu", type=int, default=1)
    p.add_argument("--producer-cpu", type=int, default=0)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--chunk", type=int, default=100, help="commands per pipelined XADD write")
    p.add_argument("--snapshot-every", type=int, default=1_000_000)
    p.add_argument("--journal-root", default=None, help="where temporary journals go")
    p.add_argument("--no-recovery", action="store_true")
    p.add_argument("--replay-events", type=int, default=1_000_000)
    p.add_argument("--resting", type=int, default=500_000)
    p.add_argument("--tail-events", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--_time-recovery", dest="time_recovery", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.time_recovery:
        _pin(args.worker_cpu if args.worker_cpu >= 0 else None)
        _time_recovery(args.time_recovery)
        return 0
    rates = [float(x) for x in args.rates.split(",") if x.strip()]
    runs = []
    n_max = max([args.orders, *[int(r * args.paced_seconds) for r in rates]])
    log(f"generating {n_max:,} commands")
    cmds = build_commands(n_max, args.seed)
    runs.append(run_e2e(args, cmds[: args.orders + 1001], 0.0, "saturation"))
    for rate in rates:
        n = int(rate * args.paced_seconds)
        runs.append(run_e2e(args, cmds[: n + 1001], rate, f"paced {int(rate)}/s"))
    result: dict[str, Any] = {
        "benchmark": "apps.matching.benchmarks.worker_bench",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "setup": {
            "worker_cpu": args.worker_cpu,
            "producer_and_reader_cpu": args.producer_cpu,
            "batch": args.batch,
            "xadd_chunk": args.chunk,
            "fsync": "group commit: one fdatasync in flight, covers all batches written before",
            "market_data": True,
            "snapshot_every": args.snapshot_every,
        },
        "runs": runs,
    }
    if not args.no_recovery:
        result["recovery"] = recovery_figures(args)
    result["targets"] = {
        "sustained_orders_per_s": 100_000,
        "p99_ms": 5.0,
        "replay_1m_events_s": 1.5,
        "snapshot_500k_plus_200k_tail_s": 1.0,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
