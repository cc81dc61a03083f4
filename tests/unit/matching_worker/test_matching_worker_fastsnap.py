"""The fast engine image restores the same engine: same hash now, same events afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.matching.engine import Engine, command_from_dict
from apps.matching.worker import fastsnap
from tests.integration.matching.support import BASE_DIR, dedupe_commands, mixed_commands


def _apply(engine: Engine, cmds: list, ts0: int) -> list:
    out: list = []
    for i, (_cid, d) in enumerate(cmds):
        out += engine.process(command_from_dict({**d, "ts": ts0 + i}))
    return out


def test_image_round_trip_behaves_identically() -> None:
    cmds = dedupe_commands(mixed_commands(8000, seed=9))
    half = len(cmds) // 2
    original = Engine()
    _apply(original, cmds[:half], 0)
    canonical = original.snapshot()
    image = fastsnap.dump_verified(original, canonical)
    restored = fastsnap.load(image)
    assert restored.snapshot() == canonical
    assert _apply(restored, cmds[half:], 10**6) == _apply(original, cmds[half:], 10**6)
    assert restored.state_hash() == original.state_hash()


def test_an_image_from_another_layout_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    image = fastsnap.dump(Engine())
    monkeypatch.setattr(fastsnap, "_MARSHAL_VERSION", 3)
    with pytest.raises(fastsnap.LayoutChanged, match="another engine layout"):
        fastsnap.load(image)


def test_image_loads_in_a_process_with_another_hash_seed(tmp_path: Path) -> None:
    """The order table is sharded by hash(order id): str hashes differ between processes."""
    script = """
import sys
from apps.matching.engine import Engine, command_from_dict
from apps.matching.worker import fastsnap
from tests.integration.matching.support import BASE_DIR, dedupe_commands, mixed_commands
cmds = dedupe_commands(mixed_commands(3000, seed=4))
half = len(cmds) // 2
def apply(e, cs, t0):
    out = []
    for i, (_c, d) in enumerate(cs):
        out += e.process(command_from_dict({**d, "ts": t0 + i}))
    return out
path = sys.argv[2]
if sys.argv[1] == "dump":
    e = Engine()
    apply(e, cmds[:half], 0)
    open(path, "wb").write(fastsnap.dump(e))
else:
    e = fastsnap.load(open(path, "rb").read())
print(len(apply(e, cmds[half:], 10**6)), e.state_hash())
"""
    image = tmp_path / "image"
    outputs = []
    for seed, mode in (("1", "dump"), ("2", "load")):
        proc = subprocess.run(
            [sys.executable, "-c", script, mode, str(image)],
            capture_output=True,
            text=True,
            check=True,
            cwd=BASE_DIR,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(BASE_DIR)},
        )
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
