"""The Procfile, the compose file and the Dockerfile describe the same processes."""

import json
import re
import shlex
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[3]
PROCESSES = ("web", "worker", "beat", "matcher", "relay", "settlement")


def procfile() -> dict[str, str]:
    entries = {}
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def shell_command(command: list[str], *, compose: bool) -> str:
    """`sh -c "exec <cmd>"` → `<cmd>` (compose escapes `$` as `$$`)."""
    assert command[:2] == ["sh", "-c"], command
    script = command[2].replace("$$", "$") if compose else command[2]
    assert script.startswith("exec "), "exec, so the process gets signals as PID 1"
    return script.removeprefix("exec ")


def test_procfile_has_the_platform_processes() -> None:
    assert tuple(procfile()) == PROCESSES


def test_compose_runs_the_procfile_commands() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((BASE_DIR / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", *PROCESSES} <= set(services)
    for name, command in procfile().items():
        assert shell_command(services[name]["command"], compose=True) == command, name
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["BIND_HOST"] == "0.0.0.0"  # noqa: S104 - inside a container
    for name in ("postgres", "redis", "web"):
        assert "healthcheck" in services[name], name


def test_dockerfile_default_command_is_the_procfile_web() -> None:
    text = (BASE_DIR / "docker" / "Dockerfile").read_text()
    match = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert match is not None
    assert shell_command(json.loads(match.group(1)), compose=False) == procfile()["web"]
    assert re.search(r"^USER app$", text, re.MULTILINE), "runs as a non-root user"
    assert shlex.split(procfile()["web"])[0] == "daphne"
