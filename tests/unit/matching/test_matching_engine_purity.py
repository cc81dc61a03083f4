"""The engine is a pure core: standard library only, no clock, no randomness, no I/O."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ENGINE_DIR = Path(__file__).resolve().parents[3] / "apps" / "matching" / "engine"
REPO_ROOT = ENGINE_DIR.parents[2]

# Everything the engine may import. Deliberately absent: time, datetime, random, uuid, os,
# secrets, threading, asyncio, socket, pickle (and every third-party package).
ALLOWED = {
    "__future__",
    "collections",
    "dataclasses",
    "decimal",
    "hashlib",
    "heapq",
    "json",
    "typing",
}
FORBIDDEN_TOP_LEVEL = {"django", "redis", "rest_framework", "channels", "celery"}


def _engine_files() -> list[Path]:
    files = sorted(ENGINE_DIR.rglob("*.py"))
    assert files, ENGINE_DIR
    return files


def test_engine_imports_only_allowlisted_stdlib_modules() -> None:
    assert set(sys.stdlib_module_names) | {"__future__"} >= ALLOWED
    for path in _engine_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: inside the engine package
                    continue
                names = [node.module or ""]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"__import__", "open", "eval", "exec", "float"}, (
                    f"{path.name}:{node.lineno} calls {node.func.id}"
                )
                continue
            elif isinstance(node, ast.Constant) and isinstance(node.value, float):
                raise AssertionError(f"{path.name}:{node.lineno}: float literal in the engine")
            else:
                continue
            for name in names:
                assert name.split(".")[0] in ALLOWED, f"{path.name}:{node.lineno} imports {name}"


def test_importing_engine_pulls_in_no_framework() -> None:
    code = (
        "import apps.matching.engine, sys; "
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN_TOP_LEVEL!r}); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=60)
