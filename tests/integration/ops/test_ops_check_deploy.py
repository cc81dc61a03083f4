"""Production defaults pass Django's deployment checklist with zero warnings."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[3]

# Variables that switch settings away from the production defaults.
PROFILE_OVERRIDES = (
    "DEBUG",
    "SECURE_SSL_REDIRECT",
    "SECURE_COOKIES",
    "SECURE_HSTS_SECONDS",
    "ALLOWED_HOSTS",
    "BEHIND_TLS_PROXY",
)


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_OVERRIDES}
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_with_production_defaults() -> None:
    env = production_env(SECRET_KEY=secrets.token_urlsafe(64))
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in result.stdout, output
    assert "WARNINGS" not in output, output
    assert "(security." not in output, output


def test_settings_refuse_to_load_without_secret_key_when_debug_is_off() -> None:
    env = production_env()
    env.pop("SECRET_KEY", None)
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
