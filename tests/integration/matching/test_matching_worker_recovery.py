"""Recovery of the real worker process: torn tail, mid-journal corruption, snapshot + replay
equality, a corrupt snapshot, and a journal that lost data."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from apps.matching.worker.journal import (
    RECORD_HEAD_SIZE,
    SEGMENT_HEADER_SIZE,
    frame,
    list_segments,
)
from tests.integration.matching.support import (
    Harness,
    dedupe_commands,
    mixed_commands,
    normalize,
    reference_run,
    stamps_from_journal,
)


def _run_and_kill(harness: Harness, cmds: list, *extra: str) -> None:
    """Produce ``cmds``, let a worker apply them all, then SIGKILL it (no final snapshot)."""
    harness.produce(cmds)
    worker = harness.spawn(*extra)
    harness.wait_running(worker)
    harness.wait_until(harness.caught_up)
    worker.kill()


def _record_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of each record in a segment file."""
    data = path.read_bytes()
    pos, out = SEGMENT_HEADER_SIZE, []
    while pos < len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        out.append((pos, length))
        pos += RECORD_HEAD_SIZE + length
    return out


def _reference(harness: Harness, cmds: list) -> tuple[str, list]:
    expected = dedupe_commands(cmds)
    order, ts_of = stamps_from_journal(harness.journal_records())
    assert order == [cid for cid, _ in expected]
    engine, events = reference_run(expected, ts_of)
    return engine.state_hash(), normalize(events)


def test_torn_tail_is_truncated_reported_and_recovered(harness: Harness) -> None:
    cmds = mixed_commands(600, seed=1)
    _run_and_kill(harness, cmds, "--snapshot-every", "0", "--batch", "50")
    ref_hash, ref_events = _reference(harness, cmds)
    _index, segment = list_segments(harness.journal_dir)[-1]
    valid_size = segment.stat().st_size
    with open(segment, "ab") as f:  # a crash mid-write: head complete, payload cut short
        f.write(frame(b"\x02" * 400)[:150])

    worker = harness.spawn()
    harness.wait_running(worker)
    assert segment.stat().st_size == valid_size
    assert worker.terminate() == 0
    log = worker.log()
    assert f"torn tail in {segment} at offset {valid_size} (150 bytes" in log
    assert "truncating" in log
    assert harness.health()["state_hash"] == ref_hash
    events, duplicates = harness.output_events()
    assert events == ref_events
    assert duplicates == 0


def test_mid_journal_corruption_stops_with_file_and_offset(harness: Harness) -> None:
    cmds = mixed_commands(400, seed=2)
    _run_and_kill(harness, cmds, "--snapshot-every", "0", "--batch", "40")
    _index, segment = list_segments(harness.journal_dir)[-1]
    records = _record_offsets(segment)
    assert len(records) >= 3
    offset, length = records[1]
    data = bytearray(segment.read_bytes())
    data[offset + RECORD_HEAD_SIZE + length // 2] ^= 0xFF  # one flipped bit pattern mid-record
    segment.write_bytes(bytes(data))

    rc, log = harness.run_to_exit()
    assert rc == 3, log
    assert f"journal corrupt: {segment} at offset {offset}" in log
    assert "record checksum mismatch with more records after it" in log
    assert segment.read_bytes() == bytes(data), "nothing was truncated or rewritten"
    # The read-only state dump refuses too.
    rc2, log2 = harness.run_to_exit("--dump-state")
    assert rc2 == 3
    assert f"at offset {offset}" in log2


def test_snapshot_plus_replay_equals_full_replay_hash_and_events(harness: Harness) -> None:
    cmds = mixed_commands(3000, seed=3)
    _run_and_kill(
        harness, cmds, "--snapshot-every", "700", "--retain-journal", "--snapshot-mode", "inline"
    )
    ref_hash, ref_events = _reference(harness, cmds)
    snaps = sorted(harness.journal_dir.glob("snapshot-*.snap"))
    assert snaps, "the worker wrote snapshots"

    from_snapshot = harness.dump_state()
    assert from_snapshot["snapshot_seq"] > 0
    assert from_snapshot["state_hash"] == ref_hash

    # Without snapshots the whole journal is replayed: same state.
    aside = harness.journal_dir.parent / "aside"
    aside.mkdir()
    for s in snaps:
        shutil.move(s, aside / s.name)
    full = harness.dump_state()
    assert full["snapshot_seq"] == 0
    assert full["state_hash"] == ref_hash

    # Same events: drop the output stream, restart from the journal alone, compare.
    harness.client.delete(harness.names.out_stream(0))
    worker = harness.spawn()
    harness.wait_running(worker)
    assert worker.terminate() == 0
    events, duplicates = harness.output_events()
    assert events == ref_events
    assert duplicates == 0
    assert harness.health()["state_hash"] == ref_hash


def test_corrupt_snapshot_falls_back_to_the_previous_one(harness: Harness) -> None:
    cmds = mixed_commands(2500, seed=4)
    _run_and_kill(
        harness, cmds, "--snapshot-every", "600", "--snapshot-mode", "inline", "--retain-journal"
    )
    ref_hash, ref_events = _reference(harness, cmds)
    snaps = sorted(harness.journal_dir.glob("snapshot-*.snap"))
    assert len(snaps) == 2
    newest = snaps[-1]
    data = bytearray(newest.read_bytes())
    data[-100] ^= 0x55
    newest.write_bytes(bytes(data))

    worker = harness.spawn()
    harness.wait_running(worker)
    assert worker.terminate() == 0
    log = worker.log()
    assert f"snapshot {newest} is invalid (" in log
    assert f"loaded snapshot {snaps[0].name}" in log
    assert (newest.parent / (newest.name + ".corrupt")).exists()
    assert harness.health()["state_hash"] == ref_hash
    events, duplicates = harness.output_events()
    assert events == ref_events
    assert duplicates == 0


def test_output_stream_ahead_of_the_journal_refuses_to_start(harness: Harness) -> None:
    cmds = mixed_commands(200, seed=5)
    _run_and_kill(harness, cmds, "--snapshot-every", "0")
    for path in harness.journal_dir.iterdir():  # the disk was lost, Redis was not
        if path.name != "LOCK":
            path.unlink()
    rc, log = harness.run_to_exit()
    assert rc == 5, log
    assert "journal data is missing" in log
