"""Snapshots of the worker state: engine + de-duplication window + journal position.

File ``snapshot-<seq:020d>-<segment:08d>.snap`` (``seq`` = last engine sequence number covered,
``segment`` = first journal segment to replay after it), little-endian::

    header 48 bytes: magic b"MSNAP\\0\\1\\0" | u32 version | u32 meta_len | u64 dedupe_len |
                     u64 image_len | u64 engine_len | u32 crc32(all parts) | u32 crc32(header)
    meta   JSON (shard, shards, seq, segment, last_input_id, last_ts, commands, created_at)
    dedupe DedupeWindow.dump()
    image  fastsnap.dump(engine): what recovery loads (~6x faster than the JSON; may be empty)
    engine Engine.snapshot() (canonical JSON; its sha256 is the state hash; loaded only when
           the image is missing or written for another engine layout)

Written as ``<name>.tmp``, fsync'ed, renamed, then the directory fsync'ed: a crash leaves either
the previous set of snapshots or the new one, plus at most a stray ``.tmp`` (removed at start).
A snapshot that fails any check is renamed ``.corrupt`` and the previous one is used with its
longer journal tail. The newest ``keep`` snapshots are kept, and the journal segments they need.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .journal import fsync_dir

log = logging.getLogger("apps.matching.worker")

MAGIC: Final = b"MSNAP\x00\x01\x00"
VERSION: Final = 1
_HEAD: Final = struct.Struct("<8sIIQQQII")
HEADER_SIZE: Final = _HEAD.size  # 48
_HEAD_CRC_AT: Final = HEADER_SIZE - 4
_NAME_RE: Final = re.compile(r"snapshot-(\d{20})-(\d{8})\.snap")
_CHUNK: Final = 8 << 20


class SnapshotInvalid(Exception):
    pass


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    seq: int
    segment: int
    path: Path


@dataclass(slots=True)
class Snapshot:
    meta: dict[str, Any]
    dedupe: bytes
    image: bytes
    engine: bytes


def snapshot_name(seq: int, segment: int) -> str:
    return f"snapshot-{seq:020d}-{segment:08d}.snap"


def list_snapshots(directory: Path) -> list[SnapshotFile]:
    """Complete snapshot files, newest (highest seq, then segment) first."""
    found = []
    for path in directory.iterdir():
        m = _NAME_RE.fullmatch(path.name)
        if m:
            found.append(SnapshotFile(int(m.group(1)), int(m.group(2)), path))
    found.sort(key=lambda s: (s.seq, s.segment), reverse=True)
    return found


def remove_temporaries(directory: Path) -> list[Path]:
    removed = []
    for path in directory.glob("snapshot-*.tmp"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def encode(meta: dict[str, Any], dedupe: bytes, image: bytes, engine: bytes) -> list[bytes]:
    """The file content as parts (header, meta, dedupe, image, engine): no 100 MB concatenation."""
    meta_b = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode("ascii")
    crc = 0
    for part in (meta_b, dedupe, image, engine):
        crc = zlib.crc32(part, crc)
    head = _HEAD.pack(MAGIC, VERSION, len(meta_b), len(dedupe), len(image), len(engine), crc, 0)
    head = head[:_HEAD_CRC_AT]
    head += struct.pack("<I", zlib.crc32(head))
    return [head, meta_b, dedupe, image, engine]


def write(
    directory: Path,
    *,
    seq: int,
    segment: int,
    parts: list[bytes],
    pause: Callable[[], None] | None = None,
) -> Path:
    """Write a snapshot atomically (temp file, fsync, rename, fsync dir)."""
    final = directory / snapshot_name(seq, segment)
    tmp = final.with_name(final.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for part in parts:
            view = memoryview(part)
            for start in range(0, len(view), _CHUNK):
                chunk = view[start : start + _CHUNK]
                while chunk:
                    chunk = chunk[os.write(fd, chunk) :]
                if pause is not None:
                    pause()
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(directory)
    return final


def read(path: Path) -> Snapshot:
    """Read and verify a snapshot; ``SnapshotInvalid`` on any mismatch."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnapshotInvalid(f"{path}: {exc}") from exc
    if len(data) < HEADER_SIZE:
        raise SnapshotInvalid(f"{path}: shorter than its header")
    magic, version, meta_len, dedupe_len, image_len, engine_len, crc, hcrc = _HEAD.unpack_from(
        data, 0
    )
    if magic != MAGIC or zlib.crc32(data[:_HEAD_CRC_AT]) != hcrc:
        raise SnapshotInvalid(f"{path}: bad header")
    if version != VERSION:
        raise SnapshotInvalid(f"{path}: unsupported version {version}")
    end = HEADER_SIZE + meta_len + dedupe_len + image_len + engine_len
    if len(data) != end:
        raise SnapshotInvalid(f"{path}: size {len(data)}, header says {end}")
    view = memoryview(data)
    if zlib.crc32(view[HEADER_SIZE:]) != crc:
        raise SnapshotInvalid(f"{path}: checksum mismatch")
    a = HEADER_SIZE + meta_len
    b = a + dedupe_len
    c = b + image_len
    try:
        meta = json.loads(data[HEADER_SIZE:a])
    except ValueError as exc:
        raise SnapshotInvalid(f"{path}: bad metadata: {exc}") from exc
    return Snapshot(meta, data[a:b], data[b:c], data[c:])


def mark_corrupt(path: Path, reason: str) -> None:
    target = path.with_name(path.name + ".corrupt")
    log.error("snapshot %s is invalid (%s): kept as %s, using an older one", path, reason, target)
    os.replace(path, target)
    fsync_dir(path.parent)


def prune(directory: Path, *, keep: int, retain_journal: bool) -> None:
    """Keep the newest ``keep`` snapshots and the journal segments the oldest of them needs."""
    from .journal import list_segments

    snaps = list_snapshots(directory)
    for old in snaps[keep:]:
        old.path.unlink(missing_ok=True)
    kept = snaps[:keep]
    if kept and not retain_journal:
        needed = min(s.segment for s in kept)
        for index, path in list_segments(directory):
            if index < needed:
                path.unlink(missing_ok=True)
    fsync_dir(directory)


def now_s() -> float:
    return time.time()
