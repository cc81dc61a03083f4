import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from apps.matching.protocol import Names
from tests.integration.matching.support import Harness


@pytest.fixture
def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def harness(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    """A worker deployment of its own: unique key prefix (parallel runs never collide), journal
    under tmp_path; streams and keys are deleted afterwards."""
    tag = uuid.uuid4().hex[:12]
    logs = tmp_path / "logs"
    logs.mkdir()
    h = Harness(
        redis_url=redis_url,
        names=Names(f"test-{tag}:matcher", f"test-{tag}:md"),
        journal_dir=tmp_path / "journal",
        logs_dir=logs,
        client=redis.Redis.from_url(redis_url),
    )
    try:
        yield h
    finally:
        h.cleanup()
