"""Run the platform's real processes (matcher, outbox relay, settlement) against the test
database and a private Redis key prefix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis
from django.db import connection

from apps.matching.protocol import Names

BASE_DIR = Path(__file__).resolve().parents[2]


def current_database_url() -> str:
    """DATABASE_URL of the database this test runs on (pytest-django's test database)."""
    s = connection.settings_dict
    user = quote(s.get("USER") or "", safe="")
    password = s.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}" if password else user
    host = quote(str(s.get("HOST") or "127.0.0.1"), safe="")  # a socket folder is a host too
    port = s.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{quote(s['NAME'], safe='')}"


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the exit code (killed with SIGKILL after `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return -9


@dataclass
class Platform:
    """The order path's processes for one test: unique Redis prefix, own journal folder."""

    tmp: Path
    redis_url: str
    names: Names = field(
        default_factory=lambda: Names(
            f"e2e-{uuid.uuid4().hex[:12]}:matcher", f"e2e-{uuid.uuid4().hex[:12]}:md"
        )
    )
    processes: list[Process] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": current_database_url(),
            "REDIS_URL": self.redis_url,
            "MATCHER_PREFIX": self.names.prefix,
            "MATCHER_MD_PREFIX": self.names.md_prefix,
            "MATCHER_SHARDS": "1",
            "MATCHER_JOURNAL_DIR": str(self.tmp / "journal"),
            "OUTBOX_RELAY_POLL_MS": "200",
            "PYTHONUNBUFFERED": "1",
        }

    def start(self, name: str, *args: str) -> Process:
        log_path = self.tmp / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=BASE_DIR,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, proc, log_path)
        self.processes.append(process)
        return process

    def start_relay(self, name: str = "relay") -> Process:
        return self.start(name, "run_outbox_relay")

    def start_settlement(self, name: str = "settlement") -> Process:
        return self.start(name, "run_settlement", "--shard", "0", "--block-ms", "100")

    def kill(self, name: str) -> None:
        """SIGKILL: a crash, no chance to finish anything."""
        process = next(p for p in self.processes if p.name == name)
        process.proc.kill()
        process.proc.wait(timeout=10)
        self.processes.remove(process)

    def start_all(self) -> None:
        self.start(
            "matcher",
            "run_matcher",
            "--shard",
            "0",
            "--of",
            "1",
            "--cpu",
            "-1",
            "--",
            "--block-ms",
            "20",
            "--health-interval",
            "0.2",
        )
        self.start_relay()
        self.start_settlement()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} (rc {p.proc.poll()}) ---\n{p.log()}" for p in self.processes
        )

    def state(self) -> str:
        """Where the pipeline stands: outbox, streams, consumer groups, settlement cursor."""
        from apps.orders.models import OutboxCommand
        from apps.settlement.services import settlement_cursor

        client = redis.Redis.from_url(self.redis_url)
        try:
            unpublished = OutboxCommand.objects.filter(published_at__isnull=True).count()
            lines = [
                f"outbox unpublished: {unpublished}",
                f"settlement cursor: {settlement_cursor(shard=0)}",
            ]
            for key in (self.names.in_stream(0), self.names.out_stream(0)):
                groups = client.xinfo_groups(key) if client.exists(key) else []
                lines.append(f"{key}: len {client.xlen(key)}, groups {groups}")
                lines.extend(f"  {entry}" for entry in client.xrange(key))  # type: ignore[union-attr]
            from apps.orders.models import Order, OrderEvent

            lines.extend(f"  order {o}" for o in Order.objects.values_list("pk", "status"))
            lines.extend(
                f"  event {e}"
                for e in OrderEvent.objects.values_list("order_id", "kind", "engine_seq")
            )
            return "\n".join(lines)
        finally:
            client.close()

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            for p in self.processes:
                if p.proc.poll() is not None:
                    raise AssertionError(
                        f"{p.name} exited while waiting for {what}:\n{self.logs()}"
                    )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}:\n{self.state()}\n{self.logs()}"
                )
            time.sleep(0.05)

    def stop_all(self) -> dict[str, int]:
        # Consumers before producers: the newest processes first, the matcher last.
        return {p.name: p.stop() for p in reversed(self.processes)}

    def cleanup(self) -> None:
        for p in self.processes:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait(timeout=10)
        client = redis.Redis.from_url(self.redis_url)
        try:
            for prefix in (self.names.prefix, self.names.md_prefix):
                keys = list(client.scan_iter(match=f"{prefix}:*"))
                if keys:
                    client.delete(*keys)
        finally:
            client.close()
