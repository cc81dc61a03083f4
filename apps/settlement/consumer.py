"""The settlement consumer: reads a shard's matcher output stream and settles it.

Reading: consumer group ``settlement`` on ``<p>:out:<shard>`` (created at id 0, so a new group
reads the whole stream; events already settled are skipped by the cursor), consumer
``settlement-<shard>``. At start the consumer first re-reads the entries it had been delivered
but not acknowledged (a crash between commit and XACK), then new ones.

Per read: up to `read_count` entries, their events decoded and applied in transactions of at
most `batch_events` events (`settlement_apply_batch`, which skips seq <= cursor and advances
it), then XACK of the entries - only after their events are committed. A crash anywhere
re-delivers entries that were not acknowledged; the cursor makes that harmless.

Errors never skip events:

- database trouble (lost connection, deadlock, serialization): reconnect and retry;
- an event that cannot be settled (`SettlementError`, e.g. a trade for an unknown order, or any
  other exception): the events before it are committed one by one, then the consumer retries
  the rest with backoff, logging the error and reporting `stalled` in its health hash, until an
  operator fixes the cause (it never exits on its own: under honcho that would stop every
  process);
- `SettlementGap` (events missing from the stream, e.g. trimmed before they were settled):
  logged and retried the same way; the matcher re-publishes missing events only after a
  restart, otherwise the cursor must be examined by hand.

Health: hash ``<p>:settlement:<shard>`` (state, pid, last_seq, updated_at, error).
"""

import contextlib
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import redis
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections
from django.db import connection as db_connection

from apps.matching.engine import Event
from apps.matching.protocol import Names, decode_output_entry
from apps.settlement.services import SettlementError, settlement_apply_batch, settlement_cursor

log = logging.getLogger("apps.settlement")

GROUP = "settlement"


def health_key(names: Names, shard: int) -> str:
    return f"{names.prefix}:settlement:{shard}"


class SettlementConsumer:
    def __init__(
        self,
        *,
        redis_client: Any,
        names: Names,
        shard: int,
        batch_events: int = 500,
        read_count: int = 50,
        block_ms: int = 1000,
    ) -> None:
        self.redis = redis_client
        self.names = names
        self.shard = shard
        self.stream = names.out_stream(shard)
        self.consumer = f"{GROUP}-{shard}"
        self.batch_events = batch_events
        self.read_count = read_count
        self.block_ms = block_ms
        self.stopping = False
        self.last_seq = 0
        self.settled_events = 0
        self.settled_trades = 0
        self.error = ""
        self._group_ready = False
        self._next_health = 0.0
        self._next_report = time.monotonic() + 60.0

    def stop(self) -> None:
        self.stopping = True

    # ---------------------------------------------------------------------------- loop
    def run(self) -> int:
        while not self.stopping:
            try:
                self.last_seq = settlement_cursor(shard=self.shard)
                break
            except DatabaseError as exc:
                log.warning("database not available (retrying): %s", exc)
                self._reset_db()
                self._sleep(2.0)
        log.info(
            "settlement of shard %s started at seq %s (stream %s)",
            self.shard,
            self.last_seq,
            self.stream,
        )
        pending = True  # first drain what this consumer was delivered but never acknowledged
        backoff = 0.5
        while not self.stopping:
            try:
                self._health("running")
                if pending:
                    entries = self._read("0")
                    if not entries:
                        pending = False
                        continue
                else:
                    entries = self._read(">")
                    if not entries:
                        continue
                self._settle_entries(entries)
                backoff = 0.5
            except redis.RedisError as exc:
                log.warning("redis error (retrying in %.1fs): %s", backoff, exc)
                pending = True
                self._group_ready = False  # Redis may have lost it (restart without data)
                self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            except ValueError as exc:  # a malformed output entry: never skipped
                self.error = str(exc)[:500]
                log.error("cannot read shard %s output (retrying): %s", self.shard, exc)
                self._health("stalled")
                pending = True  # re-read the unacknowledged entries first
                self._sleep(backoff)
                backoff = min(backoff * 2, 30.0)
        self._health("stopped")
        log.info(
            "settlement of shard %s stopped at seq %s (%s events, %s trades settled)",
            self.shard,
            self.last_seq,
            self.settled_events,
            self.settled_trades,
        )
        return 0

    def _read(self, start: str) -> list[tuple[Any, Any]]:
        if not self._group_ready:
            self._ensure_group()
            self._group_ready = True
        reply = self.redis.xreadgroup(
            GROUP,
            self.consumer,
            {self.stream: start},
            count=self.read_count,
            block=None if start == "0" else self.block_ms,
        )
        if not reply:
            return []
        return list(reply[0][1])

    def _ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _settle_entries(self, entries: Sequence[tuple[Any, Any]]) -> None:
        """Settle the events of these entries (retrying until done or stopped), then XACK."""
        events: list[Event] = []
        for entry_id, fields in entries:
            if not fields:
                # Trimmed from the stream while pending: nothing to read. If it held events
                # not yet settled, the next batch reports the gap.
                log.warning("stream entry %s was trimmed before settlement read it", entry_id)
                continue
            events.extend(decode_output_entry(entry_id, fields).events)
        backoff = 0.5
        while not self.stopping:
            try:
                if not self._apply(events):
                    return  # stopping: the entries stay pending, re-read at the next start
                break
            except (OperationalError, InterfaceError) as exc:
                log.warning("database error (retrying in %.1fs): %s", backoff, exc)
                self._reset_db()
            except Exception as exc:
                # SettlementError (gap, unknown order), a refused ledger posting, a bug: never
                # skip the event - log it, settle what comes before it, retry.
                self.error = f"{type(exc).__name__}: {exc}"[:500]
                if isinstance(exc, SettlementError):
                    log.error("cannot settle shard %s (retrying): %s", self.shard, exc)
                else:
                    log.exception("cannot settle shard %s (retrying)", self.shard)
                self._reset_db()
                self._health("stalled")
                self._apply_one_by_one(events)
            self._sleep(backoff)
            backoff = min(backoff * 2, 30.0)
        else:
            return  # stopping: leave the entries pending, they are re-read at the next start
        self.error = ""
        self.redis.xack(self.stream, GROUP, *[entry_id for entry_id, _ in entries])
        self._report()

    def _apply(self, events: Sequence[Event]) -> bool:
        """Settle `events` in transactions of `batch_events`; False if stopped before the end
        (SIGTERM waits for one transaction, not for a whole read)."""
        if not db_connection.in_atomic_block:  # (tests run the consumer inside a transaction)
            close_old_connections()
        for start in range(0, len(events), self.batch_events):
            if start and self.stopping:
                return False
            chunk = events[start : start + self.batch_events]
            result = settlement_apply_batch(shard=self.shard, events=chunk)
            self.last_seq = result.last_seq
            self.settled_events += result.applied
            self.settled_trades += result.trades
        return True

    def _apply_one_by_one(self, events: Sequence[Event]) -> None:
        """Commit every event before the one that fails, so a bad event delays only itself."""
        try:
            for event in events:
                self._apply([event])
        except Exception:  # the caller logged the error and retries the batch
            self._reset_db()

    # ---------------------------------------------------------------------------- helpers
    def _reset_db(self) -> None:
        """Drop the connection so the next attempt reconnects (not inside a caller's
        transaction, which owns it)."""
        if db_connection.in_atomic_block:
            return
        with contextlib.suppress(DatabaseError):
            db_connection.close()

    def _health(self, state: str) -> None:
        now = time.time()
        if state == "running" and now < self._next_health:
            return
        self._next_health = now + 1.0
        with contextlib.suppress(redis.RedisError):
            self.redis.hset(
                health_key(self.names, self.shard),
                mapping={
                    "state": state,
                    "pid": os.getpid(),
                    "last_seq": self.last_seq,
                    "updated_at": f"{now:.3f}",
                    "error": self.error,
                },
            )

    def _report(self) -> None:
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + 60.0
            log.info(
                "shard %s settled up to seq %s (%s events, %s trades since start)",
                self.shard,
                self.last_seq,
                self.settled_events,
                self.settled_trades,
            )

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
