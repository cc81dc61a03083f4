"""The matching worker: Redis stream in -> journal -> engine -> Redis stream out.

Per batch (the order is the durability contract)::

    XREADGROUP COUNT n BLOCK t   read up to n input entries
    de-duplicate                 drop ids already applied (window rebuilt from snapshot+journal)
    stamp                        ts = wall clock ns (never below the previous batch's stamp)
    journal append + fdatasync   group commit: one write + one fdatasync for the whole batch
    apply                        engine calls -> events
    XADD out, PUBLISH md, XACK   one write; acknowledged only after durable

The loop is pipelined on its one Redis connection: the read of batch N+1 is sent before batch N
is processed, and batch N's publish replies are checked once batch N+1 has arrived, so in the
steady state neither Redis round trip is waited for. The fdatasync of batch N runs on a helper
thread while batch N is matched (the GIL is released during the syscall); nothing of batch N is
sent before it has returned.

Start: lock the journal directory, take the shard's lease in Redis, load the newest valid
snapshot (not newer than what the output stream has seen), replay the journal after it
(truncating a torn tail, stopping on any other damage), re-publish the replayed events the
output stream is missing, re-read this consumer's delivered-but-unacknowledged entries (those
already journaled are de-duplicated), then read new entries.

Snapshots: every ``snapshot_every`` commands or ``snapshot_interval`` seconds (whichever first),
the journal rotates to a new segment and the state is written by a forked child (copy-on-write,
so matching continues; ``--snapshot-mode inline`` writes it in the loop). The child dies with
the worker (PR_SET_PDEATHSIG). SIGTERM/SIGINT: finish the batch, write a final snapshot, exit 0.

GC: the collector is disabled at start (before recovery) and everything is frozen
(``gc.freeze``) after recovery; the freeze is repeated every second and after each snapshot,
which is O(1) and keeps the young generation small. Cyclic garbage would therefore never be
collected: the engine and this loop create no reference cycles (tests check it). Collection
pauses on a heap of millions of orders were measured at 15-20 ms, which alone would break a
5 ms p99.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import hashlib
import json
import logging
import marshal
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

from apps.matching.engine import Engine, Event
from apps.matching.protocol import GROUP, Names, encode_events

from . import fastsnap, snapshots
from .codec import apply_records, decode_batch
from .dedupe import DedupeWindow
from .journal import (
    JournalCorrupt,
    JournalWriter,
    iter_journal,
    list_segments,
    truncate_torn,
)
from .marketdata import MarketData
from .resp import Arg, Redis, RespConnectionError, RespError, StreamEntry, flat_pairs, pack

log = logging.getLogger("apps.matching.worker")

MARSHAL_VERSION: Final = 4
MAX_EVENTS_PER_ENTRY: Final = 2000
# A processed batch awaiting durability: (events, ts, last input id, acks, market data).
_Batch = tuple[list[Event], int, bytes, Sequence[bytes], list[tuple[str, bytes]]]
_PREFETCH: Final = "prefetch"
_PUBLISH: Final = "publish"
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_CORRUPT: Final = 3
EXIT_CONFLICT: Final = 4
EXIT_DIVERGED: Final = 5
EXIT_REDIS_LOST: Final = 75

# Renew the shard lease; take it back if it vanished (expired during a long stall, or Redis lost
# its data) - only another owner's lease means another worker runs this shard.
_RENEW_LUA: Final = (
    "local v = redis.call('get', KEYS[1]) "
    "if v == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end "
    "if not v then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end "
    "return 0"
)
_RELEASE_LUA: Final = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end"
)


class Fatal(Exception):
    """Stop the worker with a clear message and a non-zero exit code."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class Config:
    journal_dir: Path
    shard: int = 0
    shards: int = 1
    redis_url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "matcher"
    md_prefix: str = "md"
    cpu: int | None = None
    batch: int = 1000
    block_ms: int = 100
    snapshot_interval: float = 300.0  # seconds; 0 = never by time
    snapshot_every: int = 1_000_000  # commands; 0 = never by count
    snapshot_mode: str = "fork"  # or "inline"
    keep_snapshots: int = 2
    retain_journal: bool = False
    dedupe_ids: int = 1_000_000
    dedupe_age: float = 24 * 3600.0
    out_maxlen: int = 1_000_000  # approximate cap on output entries; 0 = no trimming
    trim_input: bool = True
    market_data: bool = True
    md_levels: int = 10
    md_interval: float = 0.05
    health_interval: float = 1.0
    lease_ttl: float = 30.0
    # Test hook: seconds to sleep after each 8 MB chunk (and part) of a snapshot file.
    snapshot_pause: float = 0.0
    # Test hook: seconds to sleep between a batch's journal fsync and its publication.
    publish_pause: float = 0.0

    @property
    def names(self) -> Names:
        return Names(self.prefix, self.md_prefix)


@dataclass
class _Metrics:
    started_at: float = field(default_factory=time.time)
    commands: int = 0
    events: int = 0
    duplicates: int = 0
    batches: int = 0
    tick_at: float = field(default_factory=time.monotonic)
    tick_commands: int = 0
    tick_events: int = 0
    # Seconds spent waiting (summed; reported per interval as fractions of wall time): for the
    # reply of a read that returned entries, for the batch's fdatasync after the matching was
    # done, and for the publish/ack round trip.
    wait_read: float = 0.0
    wait_sync: float = 0.0
    wait_publish: float = 0.0
    tick_waits: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass
class _Replayed:
    ts: int
    input_id: bytes
    events: list[Event]


@dataclass
class RecoveredState:
    engine: Engine
    dedupe: DedupeWindow
    segment: int  # segment to append to
    segment_fresh: bool  # it does not exist yet
    last_ts: int
    last_input_id: bytes
    commands: int
    snapshot_seq: int
    snapshot_at: float
    republish: list[_Replayed]
    torn: list[str]


def recover_state(
    cfg: Config, *, out_last: int | None, repair: bool, keep_events_after: int | None
) -> RecoveredState:
    """Snapshot + journal replay. ``out_last`` = last seq on the output stream (None: unknown);
    ``repair`` truncates a torn tail (else it is only reported); events with seq above
    ``keep_events_after`` are kept for re-publishing."""
    directory = cfg.journal_dir
    dedupe_age_ns = int(cfg.dedupe_age * 1e9)
    candidates = snapshots.list_snapshots(directory)
    if out_last is not None:
        # Prefer snapshots whose events all reached the stream: a newer one could not
        # regenerate what Redis lost. Newer ones stay candidates after those.
        candidates = [s for s in candidates if s.seq <= out_last] + [
            s for s in candidates if s.seq > out_last
        ]
    segments = dict(list_segments(directory))
    engine: Engine | None = None
    dedupe = DedupeWindow(max_ids=cfg.dedupe_ids, max_age_ns=dedupe_age_ns)
    start_segment = 0
    meta: dict[str, Any] = {}
    for cand in candidates:
        if cand.segment not in segments and any(i > cand.segment for i in segments):
            log.warning("snapshot %s: journal segment %d is gone; skipped", cand.path, cand.segment)
            continue
        try:
            snap = snapshots.read(cand.path)
            meta = snap.meta
            if meta.get("shard") != cfg.shard or meta.get("shards") != cfg.shards:
                raise Fatal(
                    EXIT_CONFLICT,
                    f"{cand.path} belongs to shard {meta.get('shard')} of {meta.get('shards')}, "
                    f"this worker is shard {cfg.shard} of {cfg.shards}",
                )
            engine = _restore_engine(snap, cand.path)
            dedupe = DedupeWindow.load(
                snap.dedupe, max_ids=cfg.dedupe_ids, max_age_ns=dedupe_age_ns
            )
            if engine.seq != cand.seq or meta.get("segment") != cand.segment:
                raise snapshots.SnapshotInvalid("file name does not match its content")
        except (snapshots.SnapshotInvalid, ValueError, EOFError, TypeError) as exc:
            if repair:
                snapshots.mark_corrupt(cand.path, str(exc))
            else:
                log.error("snapshot %s is invalid: %s", cand.path, exc)
            engine = None
            continue
        start_segment = cand.segment
        log.info("loaded snapshot %s (seq %d)", cand.path.name, cand.seq)
        break
    if engine is None:
        engine = Engine()
        meta = {}
        if segments and min(segments) != 0:
            raise Fatal(
                EXIT_CORRUPT,
                f"no valid snapshot in {directory} and the journal starts at segment "
                f"{min(segments)}: the state before it cannot be rebuilt",
            )
    snapshot_seq = engine.seq
    if out_last is not None and snapshot_seq > out_last:
        log.error(
            "output stream ends at seq %d but the oldest usable state is seq %d: events %d..%d "
            "were lost by Redis and cannot be re-published",
            out_last,
            snapshot_seq,
            out_last + 1,
            snapshot_seq,
        )
    last_ts = int(meta.get("last_ts", 0))
    last_input_id = str(meta.get("last_input_id", "")).encode()
    commands = int(meta.get("commands", 0))
    republish: list[_Replayed] = []
    torn_notes: list[str] = []
    segment = start_segment
    fresh = True
    for index, path, records, torn in iter_journal(
        directory, shard=cfg.shard, start_index=start_segment
    ):
        segment, fresh = index, False
        for offset, payload in records:
            try:
                # Written by this worker into a CRC-checked record, never from the network.
                ts, input_id, cmds = marshal.loads(payload)  # noqa: S302
            except (EOFError, ValueError, TypeError) as exc:
                raise JournalCorrupt(path, offset, f"undecodable record: {exc}") from exc
            dedupe.add_batch(ts, [c[0] for c in cmds])
            events = apply_records(engine, ts, cmds)
            commands += len(cmds)
            last_ts, last_input_id = ts, input_id
            if keep_events_after is not None and events and events[-1][1] > keep_events_after:
                keep = [e for e in events if e[1] > keep_events_after]
                republish.append(_Replayed(ts, input_id, keep))
        if torn is not None:
            note = (
                f"torn tail in {torn.path} at offset {torn.offset} "
                f"({torn.size - torn.offset} bytes, {torn.reason})"
            )
            torn_notes.append(note)
            if repair:
                # Logged first: a crash during the repair must not make it a silent one.
                log.warning("%s: truncating", note)
                truncate_torn(torn, shard=cfg.shard, index=index)
            else:
                log.warning("%s: ignored (read-only)", note)
    return RecoveredState(
        engine=engine,
        dedupe=dedupe,
        segment=segment,
        segment_fresh=fresh,
        last_ts=last_ts,
        last_input_id=last_input_id,
        commands=commands,
        snapshot_seq=snapshot_seq,
        snapshot_at=float(meta.get("created_at", 0.0)),
        republish=republish,
        torn=torn_notes,
    )


def _restore_engine(snap: snapshots.Snapshot, path: Path) -> Engine:
    if snap.image:
        try:
            return fastsnap.load(snap.image)
        except fastsnap.LayoutChanged as exc:
            log.warning("%s: %s; loading its canonical JSON instead (slower)", path, exc)
    return Engine.restore(snap.engine)


def pin_cpu(cpu: int | None) -> int | None:
    """Pin this process to ``cpu`` if it exists and we may; returns the CPU pinned to."""
    if cpu is None:
        return None
    try:
        count = os.cpu_count() or 1
        if not 0 <= cpu < count:
            log.warning("CPU %d does not exist (CPUs 0-%d): not pinned", cpu, count - 1)
            return None
        os.sched_setaffinity(0, {cpu})
    except (OSError, AttributeError) as exc:
        log.warning("could not pin to CPU %d: %s; continuing unpinned", cpu, exc)
        return None
    log.info("pinned to CPU %d", cpu)
    return cpu


def _die_with_parent() -> None:
    """Linux: the snapshot child gets SIGKILL when the worker dies (no orphan writer)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class Worker:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.names = cfg.names
        self.in_key = self.names.in_stream(cfg.shard)
        self.out_key = self.names.out_stream(cfg.shard)
        self.health_key = self.names.health_key(cfg.shard)
        self.lease_key = self.names.lease_key(cfg.shard)
        self.consumer = self.names.consumer(cfg.shard)
        self.owner = f"{socket.gethostname()}:{cfg.journal_dir.resolve()}"
        self.engine = Engine()
        self.dedupe = DedupeWindow()
        self.journal: JournalWriter | None = None
        self.redis: Redis | None = None
        self.md = MarketData(
            shard=cfg.shard,
            channel_prefix=cfg.md_prefix,
            levels=cfg.md_levels,
            interval=cfg.md_interval,
        )
        self.cpu: int | None = None
        self.stop_requested = False
        self.state = "starting"
        self.last_ts = 0
        self.last_input_id = b""
        self.total_commands = 0  # applied since the beginning of the journal
        self.since_snapshot = 0
        self.last_snapshot_at = 0.0
        self.last_snapshot_seq = 0
        self.snapshot_due_at = 0.0
        self.child: tuple[int, int, float] | None = None  # (pid, seq, started)
        self.metrics = _Metrics()
        self._lock_fd = -1
        # Pipelining state (see _loop): replies not read yet, oldest first, as (kind, replies);
        # batches whose publish is not confirmed (re-sent after a reconnection); entries read
        # ahead; market data waiting for the next batch's write.
        self._fifo: deque[tuple[str, int]] = deque()
        self._unconfirmed: deque[tuple[list[Event], int, bytes, Sequence[bytes]]] = deque()
        self._prefetched: list[StreamEntry] = []
        self._md_due: list[tuple[str, bytes]] = []
        # Group commit: the fdatasync in flight, the batches it covers, the batches after it.
        self._sync: Future[None] | None = None
        self._syncing: list[_Batch] = []
        self._unsynced: list[_Batch] = []
        self._ready: deque[_Batch] = deque()  # durable, output not sent yet
        self._next_health = 0.0
        self._next_freeze = 0.0
        self._xack_head = pack(["XACK", self.in_key, GROUP])[len(b"*3\r\n") :]
        # Read-ahead of the next batch: no BLOCK, so it never holds up the commands behind it.
        prefetch: list[Arg] = ["XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", cfg.batch]
        self._prefetch_cmd = pack([*prefetch, "STREAMS", self.in_key, ">"])
        self._out_trim: list[Arg] = ["MAXLEN", "~", cfg.out_maxlen] if cfg.out_maxlen > 0 else []

    # ================================================================== lifecycle
    def run(self) -> int:
        try:
            return self._run()
        except Fatal as exc:
            log.critical("%s", exc)
            return exc.code
        except JournalCorrupt as exc:
            log.critical("%s; refusing to start: restore the file or investigate", exc)
            return EXIT_CORRUPT
        finally:
            self._kill_child()
            if self.journal is not None:
                self.journal.shutdown()
            if self.redis is not None:
                self.redis.close()

    def _run(self) -> int:
        cfg = self.cfg
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        # Collector off before recovery: replaying millions of commands with it on would spend
        # most of the time scanning the growing book.
        gc.collect()
        gc.freeze()
        gc.disable()
        self.cpu = pin_cpu(cfg.cpu)
        cfg.journal_dir.mkdir(parents=True, exist_ok=True)
        self._lock_directory()
        for tmp in snapshots.remove_temporaries(cfg.journal_dir):
            log.info("removed unfinished snapshot %s", tmp.name)
        self.redis = Redis(
            cfg.redis_url,
            timeout=cfg.block_ms / 1000 + 30,
            client_name=f"{cfg.prefix}:{self.consumer}",
        )
        self._acquire_lease()
        self.state = "recovering"
        self._write_health(force=True)
        self._recover()
        gc.freeze()
        self.state = "running"
        self._ensure_group()
        self._publish_md(self.md.full(self.engine, self.last_ts, time.monotonic()))
        self._drain_pending()
        self._write_health(force=True)
        log.info(
            "shard %d/%d running: seq %d, %d commands journaled, reading %s",
            cfg.shard,
            cfg.shards,
            self.engine.seq,
            self.total_commands,
            self.in_key,
        )
        self._loop()
        return self._shutdown()

    def _loop(self) -> None:
        """Read, process, publish - pipelined on the one connection: the read of the next batch
        is sent before this batch is processed, and this batch's publish replies are read only
        after the next batch has arrived, so Redis works while the worker matches and neither
        waits for a round trip in the steady state. Reply order on the connection is the send
        order; ``_fifo`` records what each outstanding reply is."""
        cfg = self.cfg
        entries: list[StreamEntry] = []
        while not self.stop_requested:
            try:
                if not entries:
                    self._settle()
                    entries, self._prefetched = self._prefetched, []
                if not entries:
                    self._housekeeping()
                    if self.stop_requested:
                        break
                    started = time.perf_counter()
                    entries = self._redis().xreadgroup(
                        GROUP, self.consumer, self.in_key, count=cfg.batch, block_ms=cfg.block_ms
                    )
                    if entries:
                        self.metrics.wait_read += time.perf_counter() - started
                    continue
                self._redis().send_packed(self._prefetch_cmd)
                self._fifo.append((_PREFETCH, 0))
                self._process(entries)
                entries = self._take_prefetched()
                self._housekeeping()
            except (RespConnectionError, OSError) as exc:
                if isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError):
                    raise
                log.warning("Redis connection lost (%s); reconnecting", exc)
                entries = []
                self._reconnect()
        # Stopping: the entries already read ahead are finished too (one batch at most), so a
        # clean stop leaves nothing delivered and unacknowledged.
        try:
            self._settle()
            rest = entries or self._prefetched
            self._prefetched = []
            if rest:
                self._process(rest)
                self._settle()
        except (ConnectionError, TimeoutError) as exc:
            log.warning("Redis connection lost while stopping (%s); the journal has it all", exc)
            self._fifo.clear()

    def _read_outstanding(self) -> list[StreamEntry] | None:
        """Read the oldest outstanding reply: a prefetch (its entries) or a batch's publish
        replies (checked, the batch then confirmed; None)."""
        kind, n = self._fifo.popleft()
        r = self._redis()
        started = time.perf_counter()
        if kind == _PREFETCH:
            entries = r.read_stream_reply()
            self.metrics.wait_read += time.perf_counter() - started
            return entries
        replies = [r.read_reply() for _ in range(n)]
        self.metrics.wait_publish += time.perf_counter() - started
        errors = [x for x in replies if isinstance(x, RespError)]
        if errors:
            raise Fatal(EXIT_ERROR, f"Redis refused a batch's output: {errors[0]}")
        self._unconfirmed.popleft()
        return None

    def _take_prefetched(self) -> list[StreamEntry]:
        while self._fifo:
            kind = self._fifo[0][0]
            got = self._read_outstanding()
            if kind == _PREFETCH:
                return got or []
        return []

    def _settle(self) -> None:
        """Make every processed batch durable and published, and read every outstanding reply
        (before using the connection synchronously, taking a snapshot or stopping); prefetched
        entries are kept for the loop."""
        self._flush_commits()
        self._drain_replies()

    def _drain_replies(self) -> None:
        while self._fifo:
            got = self._read_outstanding()
            if got:
                self._prefetched.extend(got)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stop_requested:
            log.info(
                "%s received: finishing the batch, then snapshot and exit",
                signal.Signals(signum).name,
            )
        self.stop_requested = True

    def _lock_directory(self) -> None:
        path = self.cfg.journal_dir / "LOCK"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Fatal(
                EXIT_CONFLICT, f"{self.cfg.journal_dir} is in use by another worker"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _redis(self) -> Redis:
        assert self.redis is not None
        return self.redis

    # ================================================================== lease
    def _acquire_lease(self) -> None:
        r = self._redis()
        ttl = int(self.cfg.lease_ttl * 1000)
        if r.execute("SET", self.lease_key, self.owner, "NX", "PX", ttl) is not None:
            return
        holder = r.execute("GET", self.lease_key)
        if holder is not None and holder.decode() != self.owner:
            raise Fatal(
                EXIT_CONFLICT,
                f"shard {self.cfg.shard} is owned by {holder.decode()} ({self.lease_key}); "
                "two workers on one shard would split its input",
            )
        # Ours (a previous run of this journal directory) or just expired: take it.
        r.execute("SET", self.lease_key, self.owner, "PX", ttl)

    # ================================================================== recovery
    def _out_last_seq(self) -> int:
        rows = self._redis().execute("XREVRANGE", self.out_key, "+", "-", "COUNT", 1)
        if not rows:
            return 0
        fields = flat_pairs(rows[0][1])
        return int(fields["last"])

    def _recover(self) -> None:
        cfg = self.cfg
        out_last = self._out_last_seq()
        started = time.perf_counter()
        st = recover_state(cfg, out_last=out_last, repair=True, keep_events_after=out_last)
        if st.engine.seq < out_last:
            raise Fatal(
                EXIT_DIVERGED,
                f"{self.out_key} holds events up to seq {out_last} but the journal in "
                f"{cfg.journal_dir} only reaches seq {st.engine.seq}: journal data is missing. "
                "Refusing to re-issue sequence numbers.",
            )
        self.engine = st.engine
        self.dedupe = st.dedupe
        self.last_ts = st.last_ts
        self.last_input_id = st.last_input_id
        self.total_commands = st.commands
        self.last_snapshot_seq = st.snapshot_seq
        self.last_snapshot_at = st.snapshot_at
        self.journal = JournalWriter(
            cfg.journal_dir, shard=cfg.shard, index=st.segment, fresh=st.segment_fresh
        )
        self.journal.bytes_before = sum(
            p.stat().st_size for i, p in list_segments(cfg.journal_dir) if i < st.segment
        )
        n_events = sum(len(r.events) for r in st.republish)
        for r in st.republish:
            self._publish_events(r.events, r.ts, r.input_id, [])
        log.info(
            "recovered in %.3f s: seq %d (snapshot seq %d), output stream had seq %d, "
            "re-published %d events",
            time.perf_counter() - started,
            self.engine.seq,
            st.snapshot_seq,
            out_last,
            n_events,
        )
        self.snapshot_due_at = time.monotonic() + cfg.snapshot_interval

    def _ensure_group(self) -> None:
        try:
            self._redis().execute("XGROUP", "CREATE", self.in_key, GROUP, "0", "MKSTREAM")
        except RespError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _drain_pending(self) -> None:
        """Entries delivered to this consumer before a crash/disconnect and never acked."""
        while not self.stop_requested:
            entries = self._redis().xreadgroup(
                GROUP, self.consumer, self.in_key, count=self.cfg.batch, block_ms=None, start="0"
            )
            if not entries:
                return
            self._process(entries)
            self._settle()

    # ================================================================== the batch
    def _process(self, entries: Sequence[StreamEntry]) -> None:
        sids, cids, raws, acks = zip(*entries, strict=True)
        dedupe = self.dedupe
        n_in = len(cids)
        if None not in cids and len(set(cids)) == n_in and dedupe.isdisjoint(cids):
            ids: list[bytes] = list(cids)  # the usual case: all new, checked at C speed
            fresh = list(raws)
            dups = 0
        else:
            ids, fresh, dups = self._filter(entries)
        m = self.metrics
        m.duplicates += dups
        m.batches += 1
        last_sid = sids[-1]
        events: list[Event] = []
        ts = self.last_ts
        md: list[tuple[str, bytes]] = []
        if ids:
            cfg = self.cfg
            records = decode_batch(ids, fresh, shard=cfg.shard, shards=cfg.shards)
            now = time.time_ns()
            ts = now if now > ts else ts
            journal = self.journal
            assert journal is not None
            journal.write(marshal.dumps((ts, last_sid, records), MARSHAL_VERSION))
            dedupe.add_batch(ts, ids)
            events = apply_records(self.engine, ts, records)
            self.last_ts = ts
            if cfg.market_data:
                md = self.md.on_batch(self.engine, events, ts, time.monotonic())
            if cfg.publish_pause:
                time.sleep(cfg.publish_pause)
            n = len(records)
            self.total_commands += n
            self.since_snapshot += n
            m.commands += n
            m.events += len(events)
        self.last_input_id = last_sid
        # Even a batch of duplicates waits for the flush in progress: their originals may be in
        # it, and acknowledging a command before its journal record is durable could lose it.
        self._unsynced.append((events, ts, last_sid, acks, md))
        self._advance_commits(block=False)

    # ---------------------------------------------------------------- group commit pipeline
    # A batch is written to the journal and matched at once; its output is sent only after an
    # fdatasync that *started after its write* has returned. One fdatasync runs at a time on a
    # helper thread (the GIL is released during the syscall) and covers every batch written
    # before it started, so under load the flushes run back to back while the loop keeps
    # matching: throughput does not wait for the disk, latency is about two flushes at most.
    def _advance_commits(self, *, block: bool) -> None:
        journal = self.journal
        assert journal is not None
        if self._sync is not None and (block or self._sync.done()):
            started = time.perf_counter()
            self._sync.result()  # re-raises a failed fdatasync: the worker stops
            self.metrics.wait_sync += time.perf_counter() - started
            self._sync = None
            self._ready.extend(self._syncing)
            self._syncing = []
        while self._ready:
            self._send_batch(self._ready.popleft())
        if self._sync is None and self._unsynced:
            self._syncing, self._unsynced = self._unsynced, []
            self._sync = journal.sync_in_background()

    def _flush_commits(self) -> None:
        """Wait until every batch processed so far is durable and its output sent."""
        while self._sync is not None or self._unsynced or self._ready:
            self._advance_commits(block=True)

    def _send_batch(self, batch: _Batch) -> None:
        events, ts, last_sid, acks, md = batch
        if self.cfg.market_data and self._md_due:
            md = [*md, *self._md_due]
            self._md_due = []
        # Unconfirmed from before the write: if the connection fails during it, the batch is
        # re-published (from its first missing seq) after reconnecting.
        self._unconfirmed.append((events, ts, last_sid, acks))
        n_parts = self._send_publish(events, ts, last_sid, acks, md)
        self._fifo.append((_PUBLISH, n_parts))

    def _filter(
        self, entries: Sequence[StreamEntry]
    ) -> tuple[list[bytes], list[bytes | None], int]:
        """De-duplicate a batch that has repeated or already-applied ids (or odd entries)."""
        dedupe = self.dedupe
        seen: set[bytes] = set()
        ids: list[bytes] = []
        raws: list[bytes | None] = []
        dups = 0
        for sid, cid, raw, _ack in entries:
            if cid is None:
                if raw is None:
                    log.warning(
                        "pending entry %s was deleted from %s before it was applied",
                        sid.decode(),
                        self.in_key,
                    )
                    continue
                cid = b"stream:" + sid
            if cid in dedupe or cid in seen:
                dups += 1
                continue
            seen.add(cid)
            ids.append(cid)
            raws.append(raw)
        return ids, raws, dups

    def _send_publish(
        self,
        events: list[Event],
        ts: int,
        input_id: bytes,
        acks: Sequence[bytes],
        md: Sequence[tuple[str, bytes]] = (),
    ) -> int:
        """Send XADD of the events (chunked), PUBLISH of market data and XACK of the inputs in
        one write (``acks``: entry ids as RESP bulk strings); returns the number of replies."""
        parts: list[bytes] = []
        out = self.out_key
        trim = self._out_trim
        n = len(events)
        for start in range(0, n, MAX_EVENTS_PER_ENTRY):
            chunk = events[start : start + MAX_EVENTS_PER_ENTRY]
            args: list[Arg] = ["XADD", out, *trim, "*"]
            args += [
                "first",
                chunk[0][1],
                "last",
                chunk[-1][1],
                "ts",
                ts,
                "ev",
                encode_events(chunk),
            ]
            if start + MAX_EVENTS_PER_ENTRY >= n:
                args += ["in", input_id]
            parts.append(pack(args))
        parts.extend(pack(["PUBLISH", ch, body]) for ch, body in md)
        if acks:
            parts.append(b"*%d\r\n" % (len(acks) + 3) + self._xack_head + b"".join(acks))
        if parts:
            self._redis().send_packed(b"".join(parts))
        return len(parts)

    def _publish_events(
        self, events: list[Event], ts: int, input_id: bytes, acks: Sequence[bytes]
    ) -> None:
        """Publish and acknowledge synchronously (recovery and reconnection: older than any
        batch still in the commit pipeline, so sent before them)."""
        self._drain_replies()
        n = self._send_publish(events, ts, input_id, acks)
        r = self._redis()
        errors = [x for x in (r.read_reply() for _ in range(n)) if isinstance(x, RespError)]
        if errors:
            raise Fatal(EXIT_ERROR, f"Redis refused the output: {errors[0]}")

    def _publish_md(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if not messages or not self.cfg.market_data:
            return
        self._settle()
        r = self._redis()
        r.send_packed(b"".join(pack(["PUBLISH", ch, body]) for ch, body in messages))
        for _ in messages:
            r.read_reply()

    # ================================================================== between batches
    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self.child is not None:
            self._reap_child(block=False)
        cfg = self.cfg
        if (
            self.child is None
            and self.since_snapshot
            and (
                (cfg.snapshot_every and self.since_snapshot >= cfg.snapshot_every)
                or (cfg.snapshot_interval and now >= self.snapshot_due_at)
            )
        ):
            self._settle()  # the snapshot must not be ahead of the confirmed output
            self._snapshot(inline=cfg.snapshot_mode == "inline")
        if cfg.market_data:
            # Sent with the next batch's output; straight away when the loop is idle.
            self._md_due.extend(self.md.flush_due(self.engine, self.last_ts, now))
            if self._md_due and not self._fifo:
                due, self._md_due = self._md_due, []
                self._publish_md(due)
        if now >= self._next_freeze:
            gc.freeze()  # O(1): young objects join the never-scanned permanent generation
            self._next_freeze = now + 1.0
        if now >= self._next_health:
            self._settle()
            self._write_health()

    def _snapshot(self, *, inline: bool) -> None:
        assert self.journal is not None
        cfg = self.cfg
        segment = self.journal.rotate()
        seq = self.engine.seq
        meta = {
            "shard": cfg.shard,
            "shards": cfg.shards,
            "seq": seq,
            "segment": segment,
            "last_ts": self.last_ts,
            "last_input_id": self.last_input_id.decode(),
            "commands": self.total_commands,
            "created_at": time.time(),
            "format": "apps.matching.worker/snapshot",
        }
        self.since_snapshot = 0
        self.snapshot_due_at = time.monotonic() + cfg.snapshot_interval
        if inline:
            started = time.perf_counter()
            self._write_snapshot(meta, seq, segment)
            self._snapshot_done(seq, time.perf_counter() - started)
            return
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # child: write and leave without running any parent cleanup
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                _die_with_parent()
                self._leave_the_matching_cpu()
                if os.getppid() == parent:
                    os.close(self._lock_fd)  # the lock must go away with the worker
                    self._write_snapshot(meta, seq, segment)
                    code = 0
            finally:
                os._exit(code)
        self.child = (pid, seq, time.perf_counter())

    def _leave_the_matching_cpu(self) -> None:
        """The child inherits the pinning: it must not compete with the loop for its CPU."""
        with contextlib.suppress(OSError):
            os.nice(5)
            if self.cpu is not None:
                others = set(range(os.cpu_count() or 1)) - {self.cpu}
                if others:
                    os.sched_setaffinity(0, others)

    def _write_snapshot(self, meta: dict[str, Any], seq: int, segment: int) -> bytes:
        engine_bytes = self.engine.snapshot()
        try:
            image = fastsnap.dump_verified(self.engine, engine_bytes)
        except fastsnap.LayoutChanged as exc:
            log.warning("snapshot without a fast image (recovery will be slower): %s", exc)
            image = b""
        parts = snapshots.encode(meta, self.dedupe.dump(), image, engine_bytes)
        pause = self.cfg.snapshot_pause
        snapshots.write(
            self.cfg.journal_dir,
            seq=seq,
            segment=segment,
            parts=parts,
            pause=(lambda: time.sleep(pause)) if pause else None,
        )
        return engine_bytes

    def _reap_child(self, *, block: bool) -> None:
        assert self.child is not None
        pid, seq, started = self.child
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        if done == 0:
            return
        self.child = None
        if os.waitstatus_to_exitcode(status) == 0:
            self._snapshot_done(seq, time.perf_counter() - started)
        else:
            log.error("snapshot writer for seq %d failed (status %d); will retry", seq, status)
            self.since_snapshot = max(self.since_snapshot, 1)

    def _snapshot_done(self, seq: int, seconds: float) -> None:
        self.last_snapshot_seq = seq
        self.last_snapshot_at = time.time()
        snapshots.prune(
            self.cfg.journal_dir,
            keep=self.cfg.keep_snapshots,
            retain_journal=self.cfg.retain_journal,
        )
        if self.journal is not None:
            self.journal.bytes_before = sum(
                p.stat().st_size
                for i, p in list_segments(self.cfg.journal_dir)
                if i < self.journal.index
            )
        gc.freeze()
        log.info("snapshot at seq %d written in %.3f s", seq, seconds)

    def _kill_child(self) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(self.child[0], signal.SIGKILL)
                os.waitpid(self.child[0], 0)
            self.child = None

    # ================================================================== health
    def _write_health(self, *, force: bool = False, extra: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        m = self.metrics
        elapsed = max(now - m.tick_at, 1e-9)
        ops = (m.commands - m.tick_commands) / elapsed
        eps = (m.events - m.tick_events) / elapsed
        waits = (m.wait_read, m.wait_sync, m.wait_publish)
        wait_read, wait_sync, wait_publish = (
            round((a - b) / elapsed, 3) for a, b in zip(waits, m.tick_waits, strict=True)
        )
        m.tick_at, m.tick_commands, m.tick_events, m.tick_waits = now, m.commands, m.events, waits
        self._next_health = now + self.cfg.health_interval
        r = self._redis()
        fields: dict[str, Any] = {
            "state": self.state,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "cpu": "" if self.cpu is None else self.cpu,
            "shard": self.cfg.shard,
            "shards": self.cfg.shards,
            "last_seq": self.engine.seq,
            "last_input_id": self.last_input_id.decode(),
            "ops_per_s": round(ops, 1),
            "events_per_s": round(eps, 1),
            "wait_read": wait_read,
            "wait_sync": wait_sync,
            "wait_publish": wait_publish,
            "commands": m.commands,
            "commands_total": self.total_commands,
            "duplicates": m.duplicates,
            "batches": m.batches,
            "last_snapshot_seq": self.last_snapshot_seq,
            "last_snapshot_at": round(self.last_snapshot_at, 3),
            "journal_bytes": 0
            if self.journal is None
            else self.journal.bytes_before + self.journal.size,
            "started_at": round(m.started_at, 3),
            "updated_at": round(time.time(), 3),
        }
        if extra:
            fields.update(extra)
        cmds: list[list[Arg]] = [
            ["HSET", self.health_key, *[x for kv in fields.items() for x in (kv[0], _arg(kv[1]))]],
            ["EVAL", _RENEW_LUA, 1, self.lease_key, self.owner, int(self.cfg.lease_ttl * 1000)],
            ["XINFO", "GROUPS", self.in_key],
        ]
        if self.cfg.trim_input and self.last_input_id and self.state == "running":
            # Everything up to the last acknowledged entry is in the journal.
            cmds.append(["XTRIM", self.in_key, "MINID", "~", self.last_input_id])
        replies = r.pipeline(cmds)
        if replies[1] == 0 and not force:
            raise Fatal(
                EXIT_CONFLICT, f"lost the lease {self.lease_key}: another worker took the shard"
            )
        lag: Any = ""
        pending: Any = ""
        if isinstance(replies[2], list):
            for g in replies[2]:
                info = flat_pairs(g)
                if info.get("name") == GROUP.encode():
                    pending = info.get("pending", "")
                    lag = info.get("lag", "")
                    if "lag" not in info:
                        lag = self._lag_without_redis7(info, int(pending or 0))
        r.execute("HSET", self.health_key, "input_lag", _arg(lag), "pending", _arg(pending))

    def _lag_without_redis7(self, group: dict[str, Any], pending: int) -> int:
        """Redis < 7 reports no lag: 0 when the group has been given the stream's last entry;
        otherwise the stream's length less the pending entries (it is trimmed to the last
        acknowledged entry; approximate trimming may leave a few more, counted too)."""
        r = self._redis()
        stream = flat_pairs(r.execute("XINFO", "STREAM", self.in_key))
        if stream.get("last-generated-id") == group.get("last-delivered-id"):
            return 0
        return max(0, int(stream.get("length", 0)) - pending)

    # ================================================================== reconnect
    def _reconnect(self) -> None:
        # Nothing outstanding survives the old connection; prefetched entries stay pending in
        # the group and are re-read below.
        self._fifo.clear()
        self._prefetched = []
        delay = 0.1
        while True:
            if self.stop_requested and not self._unconfirmed:
                return
            try:
                self._redis().connect()
                self._acquire_lease()
                self._ensure_group()
                break
            except (RespConnectionError, OSError) as exc:
                log.warning("Redis unavailable (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        if self._unconfirmed:
            out_last = self._out_last_seq()
            first = next((b[0][0][1] for b in self._unconfirmed if b[0]), None)
            if first is not None and out_last < first - 1:
                raise Fatal(
                    EXIT_REDIS_LOST,
                    f"{self.out_key} ends at seq {out_last}, before the first unconfirmed event "
                    f"{first}: Redis lost data; restart to re-publish from the journal",
                )
            while self._unconfirmed:
                events, ts, input_id, acks = self._unconfirmed[0]
                self._publish_events([e for e in events if e[1] > out_last], ts, input_id, acks)
                self._unconfirmed.popleft()
        self._settle()  # batches still waiting for their flush go out now, before re-reading
        self._drain_pending()

    # ================================================================== stop
    def _shutdown(self) -> int:
        self.state = "stopping"
        try:
            self._settle()  # the last batch's publish confirmation
            self._write_health(force=True)
        except (ConnectionError, TimeoutError) as exc:
            # Its events are journaled: the next start re-publishes whatever did not arrive.
            log.warning("Redis unavailable while stopping: %s", exc)
            self._fifo.clear()
        if self.child is not None:
            self._reap_child(block=True)
        if self.since_snapshot or not snapshots.list_snapshots(self.cfg.journal_dir):
            started = time.perf_counter()
            self.since_snapshot = 0
            assert self.journal is not None
            segment = self.journal.rotate()
            seq = self.engine.seq
            meta = {
                "shard": self.cfg.shard,
                "shards": self.cfg.shards,
                "seq": seq,
                "segment": segment,
                "last_ts": self.last_ts,
                "last_input_id": self.last_input_id.decode(),
                "commands": self.total_commands,
                "created_at": time.time(),
                "format": "apps.matching.worker/snapshot",
            }
            state = self._write_snapshot(meta, seq, segment)
            self._snapshot_done(seq, time.perf_counter() - started)
        else:
            state = self.engine.snapshot()
        state_hash = hashlib.sha256(state).hexdigest()
        self.state = "stopped"
        for attempt in range(3):  # the connection may have dropped just before the stop
            try:
                if attempt:
                    time.sleep(0.2)
                    self._fifo.clear()
                    self._redis().connect()
                self._write_health(force=True, extra={"state_hash": state_hash})
                self._redis().execute("EVAL", _RELEASE_LUA, 1, self.lease_key, self.owner)
                break
            except (RespConnectionError, OSError) as exc:
                log.warning("could not report the stop to Redis: %s", exc)
        log.info("stopped cleanly at seq %d, state hash %s", self.engine.seq, state_hash)
        return EXIT_OK


def _arg(value: Any) -> Arg:
    if isinstance(value, bytes | str | int) and not isinstance(value, bool):
        return value
    return str(value)


def dump_state(cfg: Config) -> dict[str, Any]:
    """Read-only recovery from disk (no Redis, no repair): what a restart would rebuild."""
    st = recover_state(cfg, out_last=None, repair=False, keep_events_after=None)
    return {
        "shard": cfg.shard,
        "seq": st.engine.seq,
        "state_hash": st.engine.state_hash(),
        "commands": st.commands,
        "last_input_id": st.last_input_id.decode(),
        "last_ts": st.last_ts,
        "snapshot_seq": st.snapshot_seq,
        "torn": st.torn,
    }


def main_dump(cfg: Config) -> int:
    try:
        print(json.dumps(dump_state(cfg), sort_keys=True))  # noqa: T201
    except JournalCorrupt as exc:
        log.critical("%s", exc)
        return EXIT_CORRUPT
    except Fatal as exc:
        log.critical("%s", exc)
        return exc.code
    sys.stdout.flush()
    return EXIT_OK
