"""Journal framing: round trip, torn tails (truncated) versus corruption (refused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.matching.worker.journal import (
    RECORD_HEAD_SIZE,
    SEGMENT_HEADER_SIZE,
    JournalCorrupt,
    JournalWriter,
    frame,
    iter_journal,
    read_segment,
    truncate_torn,
)

PAYLOADS = [b"first", b"second record", b"x" * 1000]


def _segment(tmp_path: Path, payloads: list[bytes] = PAYLOADS, index: int = 0) -> Path:
    writer = JournalWriter(tmp_path, shard=0, index=index, fresh=True)
    for p in payloads:
        writer.append(p)
    writer.close()
    return writer.path


def _offsets(payloads: list[bytes]) -> list[int]:
    out, pos = [], SEGMENT_HEADER_SIZE
    for p in payloads:
        out.append(pos)
        pos += RECORD_HEAD_SIZE + len(p)
    return out


def test_round_trip(tmp_path: Path) -> None:
    path = _segment(tmp_path)
    records, torn = read_segment(path, shard=0, index=0, last=True)
    assert [p for _o, p in records] == PAYLOADS
    assert [o for o, _p in records] == _offsets(PAYLOADS)
    assert torn is None


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (frame(b"torn payload")[:5], "incomplete record head"),
        (frame(b"torn payload")[: RECORD_HEAD_SIZE + 3], "record runs past the end of the file"),
        (b"\x00" * 40, "bad record head (zeros)"),
    ],
)
def test_torn_tail_is_reported_at_the_end_of_valid_data(
    tmp_path: Path, tail: bytes, reason: str
) -> None:
    path = _segment(tmp_path)
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(tail)
    records, torn = read_segment(path, shard=0, index=0, last=True)
    assert [p for _o, p in records] == PAYLOADS
    assert torn is not None
    assert (torn.offset, torn.reason) == (size, reason)
    truncate_torn(torn, shard=0, index=0)
    assert path.stat().st_size == size
    assert read_segment(path, shard=0, index=0, last=True)[1] is None


def test_bad_checksum_of_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    path = _segment(tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    records, torn = read_segment(path, shard=0, index=0, last=True)
    assert len(records) == 2
    assert torn is not None
    assert torn.offset == _offsets(PAYLOADS)[2]
    assert torn.reason == "checksum mismatch in the last record"


def test_bad_checksum_followed_by_more_data_is_corruption(tmp_path: Path) -> None:
    path = _segment(tmp_path)
    off = _offsets(PAYLOADS)[1]
    data = bytearray(path.read_bytes())
    data[off + RECORD_HEAD_SIZE + 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt) as err:
        read_segment(path, shard=0, index=0, last=True)
    assert err.value.offset == off
    assert str(err.value) == (
        f"journal corrupt: {path} at offset {off}: "
        "record checksum mismatch with more records after it"
    )


def test_damaged_length_field_is_corruption_not_a_torn_tail(tmp_path: Path) -> None:
    path = _segment(tmp_path)
    off = _offsets(PAYLOADS)[1]
    data = bytearray(path.read_bytes())
    data[off + 1] ^= 0x40  # the length now runs past EOF, but the head checksum catches it
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt, match=f"at offset {off}: bad record head"):
        read_segment(path, shard=0, index=0, last=True)


def test_damage_in_a_segment_that_is_not_the_last_is_corruption(tmp_path: Path) -> None:
    path = _segment(tmp_path)
    with open(path, "ab") as f:
        f.write(frame(b"torn")[:7])
    _segment(tmp_path, [b"next"], index=1)
    with pytest.raises(JournalCorrupt, match="in a segment that is not the last"):
        list(iter_journal(tmp_path, shard=0, start_index=0))


def test_missing_segment_and_foreign_header_are_corruption(tmp_path: Path) -> None:
    _segment(tmp_path, index=0)
    _segment(tmp_path, index=2)
    with pytest.raises(JournalCorrupt, match="segment missing in the sequence"):
        list(iter_journal(tmp_path, shard=0, start_index=0))
    with pytest.raises(JournalCorrupt, match="belongs to shard 0, not 3"):
        read_segment(tmp_path / "journal-00000000.log", shard=3, index=0, last=True)


def test_incomplete_segment_header_is_torn_and_rewritten(tmp_path: Path) -> None:
    path = _segment(tmp_path, [])
    header = path.read_bytes()
    path.write_bytes(header[:10])
    records, torn = read_segment(path, shard=0, index=0, last=True)
    assert records == []
    assert torn is not None
    assert torn.offset == 0
    truncate_torn(torn, shard=0, index=0)
    assert path.read_bytes() == header
