"""The worker's own Redis client against the real Redis, and fed byte by byte."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from apps.matching.worker.resp import Redis, RespError


@pytest.fixture
def conn(redis_url: str) -> Iterator[tuple[Redis, str]]:
    r = Redis(redis_url)
    key = f"test-resp-{id(r)}"
    r.execute("DEL", key)
    try:
        yield r, key
    finally:
        r.execute("DEL", key)
        r.close()


def test_entries_of_any_shape_are_read(conn: tuple[Redis, str]) -> None:
    r, key = conn
    r.execute("XGROUP", "CREATE", key, "g", "0", "MKSTREAM")
    ids = [
        r.execute("XADD", key, "*", "id", "plain", "cmd", '{"a":1}'),
        r.execute("XADD", key, "*", "id", "with\r\ncrlf", "cmd", "{\r}"),
        r.execute("XADD", key, "*", "cmd", '{"b":2}', "id", "reordered", "extra", "x"),
        r.execute("XADD", key, "*", "other", "field"),
        r.execute("XADD", key, "*", "id", "é", "cmd", "ü" * 100_000),
    ]
    got = [e[:3] for e in r.xreadgroup("g", "c", key, count=10, block_ms=None)]
    assert got == [
        (ids[0], b"plain", b'{"a":1}'),
        (ids[1], b"with\r\ncrlf", b"{\r}"),
        (ids[2], b"reordered", b'{"b":2}'),
        (ids[3], None, None),
        (ids[4], "é".encode(), ("ü" * 100_000).encode()),
    ]
    # Delivered, not acknowledged, then deleted: comes back from the PEL without fields.
    r.execute("XDEL", key, ids[0])
    pending = r.xreadgroup("g", "c", key, count=10, block_ms=None, start="0")
    assert pending[0] == (ids[0], None, None, b"$%d\r\n%s\r\n" % (len(ids[0]), ids[0]))
    assert [p[0] for p in pending] == ids
    assert r.xreadgroup("g", "c", key, count=10, block_ms=10) == []
    with pytest.raises(RespError, match="NOGROUP"):
        r.xreadgroup("nogroup", "c", key, count=1, block_ms=None)
    assert r.pipeline([["PING"], ["INCR", key]])[1].args[0].startswith("WRONGTYPE")


def test_replies_split_at_every_byte_are_parsed() -> None:
    server, client = socket.socketpair()
    entries = b"".join(
        b"*2\r\n$5\r\n%d-0\r\n*4\r\n$2\r\nid\r\n$4\r\nc%d\r\n$3\r\ncmd\r\n$2\r\n{}\r\n" % (i, i)
        for i in range(100, 103)
    )
    reply = b"*1\r\n*2\r\n$1\r\ns\r\n*3\r\n" + entries + b"*-1\r\n"

    def feed() -> None:
        server.recv(1024)
        for i in range(len(reply)):
            server.sendall(reply[i : i + 1])

    t = threading.Thread(target=feed)
    t.start()
    r = Redis("redis://unused", sock=client)
    got = r.xreadgroup("g", "c", "s", count=10, block_ms=None)
    assert got == [(b"%d-0" % i, b"c%d" % i, b"{}", b"$5\r\n%d-0\r\n" % i) for i in range(100, 103)]
    assert r.read_reply() is None  # the nil that followed, parsed after the entries
    t.join()
    server.close()
    r.close()
