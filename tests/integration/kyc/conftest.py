from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings


@pytest.fixture(autouse=True)
def kyc_media_root(settings: Settings, tmp_path: Path) -> Path:
    """Every KYC test stores files in its own temporary folder, never in the real MEDIA_ROOT."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def media_files(kyc_media_root: Path) -> Callable[[], list[Path]]:
    """Lists every file currently stored under the test's MEDIA_ROOT."""

    def list_files() -> list[Path]:
        return sorted(path for path in kyc_media_root.rglob("*") if path.is_file())

    return list_files
