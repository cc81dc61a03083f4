"""Append-only, segmented, checksummed journal of input batches (group commit).

Files: ``journal-<index:08d>.log`` in the shard's journal directory; a new segment starts at
every snapshot, so recovery from a snapshot reads only the segments from the one it names.

Segment layout (little-endian)::

    header  32 bytes: magic b"MJRNL\\0\\1\\0" | u32 version | u32 shard | u64 index |
                      u32 crc32(previous 24 bytes) | u32 reserved (0)
    record  12-byte head: u32 length | u32 crc32(payload) | u32 crc32(first 8 head bytes)
            then ``length`` bytes of payload (length >= 1)

The head has its own checksum so that a damaged length field is told apart from a record that
was cut short: only a record whose head is intact (or entirely missing) can be a torn write.

Group commit: one ``write`` of head+payload and one ``fdatasync`` per batch; nothing derived
from a batch (events, acknowledgements) leaves the worker before ``append`` returns.

Reading (``read_segment``):

* the last segment may end in a *torn tail*: fewer bytes than a head, a head whose length runs
  past the end of the file, a final record (ending exactly at EOF) whose payload checksum
  fails, or a run of zero bytes up to EOF (a file system that extended the file before the
  crash). The reader reports the offset; the worker truncates there and logs a warning.
* anything else that fails a check - a bad head or payload followed by more data, any damage
  in a segment that is not the last, a bad segment header, a missing segment - raises
  ``JournalCorrupt`` naming the file and offset. Data is never skipped.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

MAGIC: Final = b"MJRNL\x00\x01\x00"
VERSION: Final = 1
_SEG_HEAD: Final = struct.Struct("<8sIIQII")
SEGMENT_HEADER_SIZE: Final = _SEG_HEAD.size  # 32
_REC_HEAD: Final = struct.Struct("<III")
RECORD_HEAD_SIZE: Final = _REC_HEAD.size  # 12
_LEN_CRC: Final = struct.Struct("<II")
MAX_RECORD: Final = 1 << 30
_SEGMENT_RE: Final = re.compile(r"journal-(\d{8})\.log")


class JournalCorrupt(Exception):
    """Damage that is not a torn tail: recovery must stop rather than skip data."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(f"journal corrupt: {path} at offset {offset}: {reason}")


@dataclass(frozen=True, slots=True)
class TornTail:
    path: Path
    offset: int  # where the valid data ends; the file should be truncated here
    size: int  # file size found
    reason: str


def segment_name(index: int) -> str:
    return f"journal-{index:08d}.log"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(index, path) of every segment, by index."""
    found = []
    for path in directory.iterdir():
        m = _SEGMENT_RE.fullmatch(path.name)
        if m:
            found.append((int(m.group(1)), path))
    found.sort()
    return found


def segment_header(shard: int, index: int) -> bytes:
    head = _SEG_HEAD.pack(MAGIC, VERSION, shard, index, 0, 0)[:24]
    return head + struct.pack("<II", zlib.crc32(head), 0)


def frame(payload: bytes) -> bytes:
    """Head + payload of one record."""
    lc = _LEN_CRC.pack(len(payload), zlib.crc32(payload))
    return lc + struct.pack("<I", zlib.crc32(lc)) + payload


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_header(path: Path, data: bytes | memoryview, shard: int, index: int) -> None:
    magic, version, h_shard, h_index, crc, _ = _SEG_HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise JournalCorrupt(path, 0, "bad segment magic (not a journal segment)")
    if zlib.crc32(bytes(data[:24])) != crc:
        raise JournalCorrupt(path, 0, "segment header checksum mismatch")
    if version != VERSION:
        raise JournalCorrupt(path, 0, f"unsupported journal version {version}")
    if h_index != index:
        raise JournalCorrupt(path, 0, f"segment header says index {h_index}, file name {index}")
    if h_shard != shard:
        raise JournalCorrupt(path, 0, f"segment belongs to shard {h_shard}, not {shard}")


def read_segment(
    path: Path, *, shard: int, index: int, last: bool
) -> tuple[list[tuple[int, bytes]], TornTail | None]:
    """All records of a segment as (offset, payload), plus the torn tail found (last only)."""
    data = path.read_bytes()
    size = len(data)
    if size < SEGMENT_HEADER_SIZE:
        if last and (not data.strip(b"\x00") or data == segment_header(shard, index)[:size]):
            return [], TornTail(path, 0, size, "segment header incomplete")
        raise JournalCorrupt(path, 0, f"segment shorter than its header ({size} bytes)")
    _check_header(path, data, shard, index)
    records: list[tuple[int, bytes]] = []
    pos = SEGMENT_HEADER_SIZE
    view = memoryview(data)
    crc32 = zlib.crc32
    unpack = _REC_HEAD.unpack_from
    while pos < size:
        torn = ""
        if size - pos < RECORD_HEAD_SIZE:
            torn = "incomplete record head"
        else:
            length, pcrc, hcrc = unpack(data, pos)
            if crc32(view[pos : pos + 8]) != hcrc or not 0 < length <= MAX_RECORD:
                torn = "bad record head"
            else:
                end = pos + RECORD_HEAD_SIZE + length
                if end > size:
                    torn = "record runs past the end of the file"
                else:
                    payload = view[pos + RECORD_HEAD_SIZE : end]
                    if crc32(payload) == pcrc:
                        records.append((pos, payload.tobytes()))
                        pos = end
                        continue
                    if end == size:
                        torn = "checksum mismatch in the last record"
                    else:
                        raise JournalCorrupt(
                            path, pos, "record checksum mismatch with more records after it"
                        )
        # Torn candidates: only at the end of the last segment, or zeros up to EOF.
        rest = view[pos:]
        zero_tail = not bytes(rest).strip(b"\x00")
        ends_here = torn in (
            "incomplete record head",
            "record runs past the end of the file",
            "checksum mismatch in the last record",
        )
        if last and (ends_here or zero_tail):
            return records, TornTail(path, pos, size, torn + (" (zeros)" if zero_tail else ""))
        raise JournalCorrupt(
            path, pos, torn + ("" if last else " in a segment that is not the last")
        )
    return records, None


def iter_journal(
    directory: Path, *, shard: int, start_index: int
) -> Iterator[tuple[int, Path, list[tuple[int, bytes]], TornTail | None]]:
    """(index, path, records, torn tail) of each segment from ``start_index``, in order.

    Raises ``JournalCorrupt`` for a missing segment in the sequence.
    """
    segments = [(i, p) for i, p in list_segments(directory) if i >= start_index]
    if segments and segments[0][0] != start_index:
        raise JournalCorrupt(
            directory / segment_name(start_index), 0, "segment missing (needed for replay)"
        )
    for n, (index, path) in enumerate(segments):
        if index != start_index + n:
            raise JournalCorrupt(
                directory / segment_name(start_index + n), 0, "segment missing in the sequence"
            )
        last = n == len(segments) - 1
        records, torn = read_segment(path, shard=shard, index=index, last=last)
        yield index, path, records, torn


class JournalWriter:
    """Appends framed records to the current segment; one fdatasync per ``append``."""

    def __init__(self, directory: Path, *, shard: int, index: int, fresh: bool) -> None:
        self.directory = directory
        self.shard = shard
        self.index = index
        self.path = directory / segment_name(index)
        if fresh:
            self._create(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.size = os.fstat(self._fd).st_size
        self.bytes_before = 0  # bytes of earlier segments still on disk (for metrics)
        self._syncer: ThreadPoolExecutor | None = None

    def _create(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, segment_header(self.shard, self.index))
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.directory)

    def append(self, payload: bytes) -> None:
        self.write(payload)
        self.sync()

    def write(self, payload: bytes) -> None:
        """Append one record (not yet durable: ``sync`` makes it so)."""
        data = frame(payload)
        _write_all(self._fd, data)
        self.size += len(data)

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def sync_in_background(self) -> Future[None]:
        """fdatasync on a helper thread (it releases the GIL), so the caller can compute while
        the disk works; wait on the future before letting anything depend on the record."""
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sync")
        return self._syncer.submit(os.fdatasync, self._fd)

    def rotate(self) -> int:
        """Start the next segment (durably created); returns its index. The current segment is
        flushed first: a snapshot taken after the rotation must never be ahead of it."""
        self.sync()
        self.close()
        self.bytes_before += self.size
        self.index += 1
        self.path = self.directory / segment_name(self.index)
        self._create(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.size = os.fstat(self._fd).st_size
        return self.index

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def shutdown(self) -> None:
        self.close()
        if self._syncer is not None:
            self._syncer.shutdown(wait=True)
            self._syncer = None


def truncate_torn(torn: TornTail, *, shard: int, index: int) -> None:
    """Cut a segment back to its valid prefix (rewriting an incomplete header) durably."""
    if torn.offset < SEGMENT_HEADER_SIZE:
        fd = os.open(torn.path, os.O_WRONLY | os.O_TRUNC)
        try:
            _write_all(fd, segment_header(shard, index))
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    fd = os.open(torn.path, os.O_WRONLY)
    try:
        os.ftruncate(fd, torn.offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
