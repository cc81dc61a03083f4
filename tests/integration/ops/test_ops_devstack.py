"""The run/test command's helpers: URLs, embedded Redis and PostgreSQL lifecycles, reuse."""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dj_database_url
import psycopg
import pytest
import redis

from apps.ops import devstack
from apps.ops.devstack import EmbeddedPostgres, EmbeddedRedis, UserRegistry


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A live process that is not us, standing in for another devstack user."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def embedded_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(data_dir=tmp_path / "redis", run_dir=tmp_path / "run")
    yield server
    pid = devstack.read_pidfile(server.pidfile)
    if pid is not None and devstack.pid_alive(pid):  # a failed test must not leak a server
        devstack.terminate_pid(pid)


# --- URLs ---------------------------------------------------------------------------------------


def test_postgres_url_puts_the_socket_folder_in_host() -> None:
    url = devstack.postgres_url(
        socket_dir=Path("/srv/app dir/var/pgdata"), port=5432, database="brokerage"
    )
    parsed = dj_database_url.parse(url)
    assert parsed["ENGINE"] == "django.db.backends.postgresql"
    assert parsed["HOST"] == "/srv/app dir/var/pgdata"
    assert parsed["PORT"] == 5432
    assert parsed["NAME"] == "brokerage"
    assert parsed["USER"] == "postgres"
    assert not parsed.get("OPTIONS")


def test_redis_url() -> None:
    assert devstack.redis_url(host="127.0.0.1", port=6390, db=1) == "redis://127.0.0.1:6390/1"


def test_user_registry_prunes_dead_pids(tmp_path: Path, sleeper: int) -> None:
    registry = UserRegistry(tmp_path / "svc.users")
    gone = dead_pid()
    assert registry.add(gone) == []
    assert registry.add(sleeper) == []  # the dead one does not count
    assert registry.add(123_456_789) == [sleeper]  # nonexistent pid: added, pruned on next read
    assert registry.remove(sleeper) == []


def test_secret_key_is_generated_once_and_private(tmp_path: Path) -> None:
    first = devstack.secret_key_file(tmp_path)
    assert len(first) >= 50
    assert devstack.secret_key_file(tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_test_env_drops_debug_and_sets_a_secret_key() -> None:
    env = devstack.test_env({"DEBUG": "1", "PATH": "/usr/bin"})
    assert "DEBUG" not in env
    assert env["SECRET_KEY"]
    assert env["PATH"].startswith(str(Path(sys.executable).parent))


# --- Embedded Redis -----------------------------------------------------------------------------


def test_embedded_redis_starts_persists_and_stops(embedded_redis: EmbeddedRedis) -> None:
    port = embedded_redis.start()
    assert embedded_redis.started_here
    pid = devstack.read_pidfile(embedded_redis.pidfile)
    assert pid is not None
    assert devstack.pid_alive(pid)
    client = redis.Redis(host="127.0.0.1", port=port)
    assert client.ping()
    client.set("devstack-test", "kept")
    client.close()

    assert embedded_redis.stop() is True
    assert not devstack.pid_alive(pid), "redis-server left running"
    assert not devstack.redis_ping("127.0.0.1", port)
    assert not embedded_redis.pidfile.exists()

    # A second run reuses the data (append-only file).
    again = EmbeddedRedis(data_dir=embedded_redis.data_dir, run_dir=embedded_redis.run_dir)
    port2 = again.start()
    client = redis.Redis(host="127.0.0.1", port=port2)
    assert client.get("devstack-test") == b"kept"
    client.close()
    pid2 = devstack.read_pidfile(again.pidfile)
    assert again.stop() is True
    assert pid2 is not None
    assert not devstack.pid_alive(pid2)


def test_embedded_redis_left_by_a_crashed_run_is_reused_then_stopped(
    embedded_redis: EmbeddedRedis,
) -> None:
    port = embedded_redis.start(user_pid=dead_pid())  # its only user died without stopping it
    pid = devstack.read_pidfile(embedded_redis.pidfile)

    second = EmbeddedRedis(data_dir=embedded_redis.data_dir, run_dir=embedded_redis.run_dir)
    assert second.start() == port
    assert not second.started_here
    assert devstack.read_pidfile(second.pidfile) == pid
    assert second.stop() is True  # no live user left: the adopted server is stopped
    assert pid is not None
    assert not devstack.pid_alive(pid)


def test_embedded_redis_shared_by_two_runs_stops_with_the_last(
    embedded_redis: EmbeddedRedis, sleeper: int
) -> None:
    port = embedded_redis.start(user_pid=sleeper)
    assert embedded_redis.start() == port  # this process joins
    assert embedded_redis.stop() is False  # the other user is alive: keep serving it
    assert devstack.redis_ping("127.0.0.1", port)
    assert embedded_redis.stop(user_pid=sleeper) is True
    assert not devstack.redis_ping("127.0.0.1", port)


def test_embedded_redis_ignores_a_stale_pidfile(embedded_redis: EmbeddedRedis) -> None:
    embedded_redis.data_dir.mkdir(parents=True)
    embedded_redis.pidfile.write_text(f"{dead_pid()}\n")
    embedded_redis.portfile.write_text("1\n")
    port = embedded_redis.start()
    assert embedded_redis.started_here
    assert devstack.redis_ping("127.0.0.1", port)
    assert embedded_redis.stop() is True


# --- Embedded PostgreSQL ------------------------------------------------------------------------


def test_embedded_postgres_starts_creates_database_and_stops(tmp_path: Path, sleeper: int) -> None:
    started = time.monotonic()
    server = EmbeddedPostgres(data_dir=tmp_path / "pgdata", run_dir=tmp_path / "run")
    server.start()
    try:
        assert server.started_here
        assert server.ensure_database("demo_db") is True
        assert server.ensure_database("demo_db") is False
        settings = dj_database_url.parse(server.url("demo_db"))
        with psycopg.connect(
            host=settings["HOST"],
            port=settings["PORT"],
            user=settings["USER"],
            dbname=settings["NAME"],
        ) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("demo_db",)
        pid = server.postmaster_pid()
        assert pid is not None
    finally:
        assert server.stop() is True
    assert not devstack.pid_alive(pid), "postmaster left running"
    assert server.postmaster_pid() is None

    # After a crash or reboot postmaster.pid may name a live, unrelated process.
    (server.data_dir / "postmaster.pid").write_text(f"{sleeper}\n")
    again = EmbeddedPostgres(data_dir=server.data_dir, run_dir=server.run_dir)
    again.start()
    try:
        assert again.started_here
        assert again.ensure_database("demo_db") is False  # the data survived the restart
    finally:
        assert again.stop() is True
    assert time.monotonic() - started < 30


def test_read_dotenv(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# comment\n"
        "export DEBUG=0\n"
        "SECRET_KEY='quoted # not a comment'\n"
        'SITE_URL="https://broker.example.com"\n'
        "LOG_LEVEL=WARNING # trailing comment\n"
        "not a pair\n"
        "BAD-KEY=1\n"
    )
    assert devstack.read_dotenv(path) == {
        "DEBUG": "0",
        "SECRET_KEY": "quoted # not a comment",
        "SITE_URL": "https://broker.example.com",
        "LOG_LEVEL": "WARNING",
    }
    assert devstack.read_dotenv(tmp_path / "missing") == {}
