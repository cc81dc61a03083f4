"""The outbox relay: moves committed matcher commands from `orders_outboxcommand` to Redis.

Order placement, cancel and replace write their matcher command as an `OutboxCommand` row in the
same transaction as the order change (and `NOTIFY matcher_outbox`, delivered only on commit).
This relay publishes those rows, so a command reaches the matcher only after its transaction
committed, and every committed command reaches it:

    BEGIN
    SELECT ... FROM orders_outboxcommand WHERE published_at IS NULL
        ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED
    XADD <p>:in:<shard> ... for each row          (one pipelined round trip)
    UPDATE ... SET published_at = now() WHERE id IN (...)
    COMMIT

Failure modes:

- Crash (or lost connection) after the XADDs but before COMMIT: the rows stay unpublished and
  are sent again. The matcher applies each command id once (its de-duplication window: the last
  1,000,000 ids / 24 h), so the re-send is acknowledged and dropped. Nothing is lost or doubled.
- Redis down: the pipeline raises, the transaction rolls back, the relay retries with backoff;
  commands wait in PostgreSQL meanwhile.
- PostgreSQL down: the same, from the other side.
- A row whose command cannot be encoded (invalid id: a bug) is logged and left unpublished; the
  rest keep flowing.

Ordering: rows are published in id order. The relay takes a session advisory lock, so one relay
publishes at a time and a second one is a hot standby (it takes over when the first one's
connection goes away); a cancel is therefore never published before the new order it cancels.
`SKIP LOCKED` keeps a manual `run_outbox_relay --once` from blocking behind the running relay.

Waiting: `LISTEN matcher_outbox` on a dedicated autocommit connection wakes the relay as soon as
a transaction with a command commits; a poll every `poll_interval` seconds covers lost
notifications (e.g. during a reconnect). Published rows older than `retention` are deleted
about once an hour.
"""

import contextlib
import datetime as dt
import logging
import time
from typing import Any

import psycopg
import redis
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from apps.matching.protocol import Names, command_enqueue
from apps.orders.models import OutboxCommand
from apps.orders.services import OUTBOX_CHANNEL

log = logging.getLogger("apps.orders.relay")

RELAY_LOCK = 0x4F555452  # "OUTR": advisory lock of the active relay
CLEANUP_CHUNK = 5_000


def outbox_publish_batch(
    *, redis_client: Any, names: Names, limit: int = 500, skip_ids: set[int] | None = None
) -> int:
    """Publish up to `limit` unpublished commands, oldest first, and mark them published in
    the same transaction. Returns how many rows were published."""
    with transaction.atomic():
        rows = list(
            OutboxCommand.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True)
            .order_by("id")
            .only("id", "command_id", "shard", "payload")[:limit]
        )
        if not rows:
            return 0
        pipe = redis_client.pipeline(transaction=False)
        sent: list[int] = []
        for row in rows:
            try:
                command_enqueue(
                    pipe,
                    shard=row.shard,
                    command_id=row.command_id,
                    command=row.payload,
                    names=names,
                )
            except (ValueError, TypeError) as exc:
                if skip_ids is None or row.pk not in skip_ids:
                    log.error(
                        "outbox row %s (%s) cannot be published: %s", row.pk, row.command_id, exc
                    )
                    if skip_ids is not None:
                        skip_ids.add(row.pk)
                continue
            sent.append(row.pk)
        if sent:
            pipe.execute()
            OutboxCommand.objects.filter(pk__in=sent).update(published_at=timezone.now())
    return len(sent)


def outbox_cleanup(*, older_than: dt.timedelta) -> int:
    """Delete published commands older than `older_than` (in chunks); returns rows deleted."""
    cutoff = timezone.now() - older_than
    deleted = 0
    while True:
        ids = list(
            OutboxCommand.objects.filter(published_at__lt=cutoff)
            .order_by("id")
            .values_list("id", flat=True)[:CLEANUP_CHUNK]
        )
        if not ids:
            return deleted
        deleted += OutboxCommand.objects.filter(pk__in=ids).delete()[0]


def _listen_connection() -> psycopg.Connection[Any]:
    """A dedicated autocommit connection with Django's parameters (same database, TLS, ...)."""
    params = connection.get_connection_params()
    for key in ("cursor_factory", "context"):
        params.pop(key, None)
    return psycopg.connect(**params, autocommit=True)


class OutboxRelay:
    def __init__(
        self,
        *,
        redis_client: Any,
        names: Names,
        batch: int = 500,
        poll_interval: float = 1.0,
        retention: dt.timedelta = dt.timedelta(days=7),
        cleanup_interval: float = 3600.0,
    ) -> None:
        self.redis = redis_client
        self.names = names
        self.batch = batch
        self.poll_interval = poll_interval
        self.retention = retention
        self.cleanup_interval = cleanup_interval
        self.stopping = False
        self.published = 0
        self._skip: set[int] = set()
        self._listen: psycopg.Connection[Any] | None = None
        self._leader = False
        self._next_cleanup = time.monotonic() + 60.0
        self._next_report = time.monotonic() + 60.0

    def stop(self) -> None:
        self.stopping = True

    def drain(self) -> int:
        """Publish until nothing is left (or stop is requested); returns rows published."""
        total = 0
        while not self.stopping:
            count = outbox_publish_batch(
                redis_client=self.redis, names=self.names, limit=self.batch, skip_ids=self._skip
            )
            total += count
            if count < self.batch:
                break
        self.published += total
        return total

    def run(self) -> int:
        log.info(
            "outbox relay started (batch %s, poll %.1fs, streams %s)",
            self.batch,
            self.poll_interval,
            self.names.in_stream(0).rsplit(":", 1)[0],
        )
        backoff = 0.5
        while not self.stopping:
            try:
                if not connection.in_atomic_block:
                    close_old_connections()
                self._ensure_listening()
                if not self._leader:
                    self._sleep(self.poll_interval * 2)
                    continue
                count = self.drain()
                if count:
                    log.debug("published %s commands", count)
                self._housekeeping()
                self._wait()
                backoff = 0.5
            except (DatabaseError, psycopg.Error, redis.RedisError) as exc:
                log.warning("relay error (retrying in %.1fs): %s", backoff, exc)
                self._reset()
                self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception:
                # A bug: log it and keep going (exiting would stop every process under honcho).
                log.exception("relay failure (retrying in %.1fs)", backoff)
                self._reset()
                self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        self._reset()
        log.info("outbox relay stopped (%s commands published)", self.published)
        return 0

    # ---------------------------------------------------------------------------- internals
    def _ensure_listening(self) -> None:
        if self._listen is None or self._listen.closed:
            self._listen = _listen_connection()
            self._listen.execute(f"LISTEN {OUTBOX_CHANNEL}")
            self._leader = False
        if not self._leader:
            row = self._listen.execute("SELECT pg_try_advisory_lock(%s)", [RELAY_LOCK]).fetchone()
            self._leader = bool(row and row[0])
            if self._leader:
                log.info("outbox relay is the active relay")
            else:
                log.debug("another relay is active; standing by")

    def _wait(self) -> None:
        """Until a NOTIFY arrives or `poll_interval` passes (in slices, so stop() is prompt)."""
        deadline = time.monotonic() + self.poll_interval
        while not self.stopping and self._listen is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            woken = False
            for _notify in self._listen.notifies(timeout=min(left, 0.5), stop_after=1):
                woken = True
            if woken:
                # Several commits may have notified: one drain serves them all.
                for _notify in self._listen.notifies(timeout=0):
                    pass
                return

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_cleanup:
            self._next_cleanup = now + self.cleanup_interval
            deleted = outbox_cleanup(older_than=self.retention)
            if deleted:
                log.info("deleted %s published outbox rows older than %s", deleted, self.retention)
        if now >= self._next_report:
            self._next_report = now + 60.0
            log.info("outbox relay: %s commands published since start", self.published)

    def _reset(self) -> None:
        if self._listen is not None:
            with contextlib.suppress(psycopg.Error):
                self._listen.close()
        self._listen = None
        self._leader = False
        if not connection.in_atomic_block:
            with contextlib.suppress(DatabaseError):
                connection.close()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
