"""Input JSON -> journal records -> engine calls."""

from __future__ import annotations

import json
import marshal

from apps.matching.engine import BUY, GTC, LIMIT, Engine, command_from_dict
from apps.matching.worker.codec import (
    ADD_INSTRUMENT,
    INVALID,
    NEW,
    apply_records,
    decode_batch,
)
from tests.integration.matching.support import mixed_commands

ORDER = {
    "command": "new_order",
    "order_id": "o1",
    "account": "a",
    "symbol": "AAA",
    "side": "buy",
    "order_type": "limit",
    "tif": "GTC",
    "qty": 5,
    "price": 100,
}


def _raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_records_carry_engine_constants_through_the_journal() -> None:
    (rec,) = decode_batch([b"c1"], [_raw(ORDER)], shard=0, shards=1)
    assert rec[1] == NEW
    args = rec[2]
    assert (args[3], args[4], args[5]) == (BUY, LIMIT, GTC)
    assert args[3] is BUY
    assert args[4] is LIMIT
    _ts, _in, (again,) = marshal.loads(marshal.dumps((1, b"1-0", [rec]), 4))  # noqa: S302
    assert again[2][3] is BUY, "replay takes the same fast paths"
    assert again[2][4] is LIMIT


def test_both_forms_give_the_same_records() -> None:
    positional = [
        b'["new_order","o1","a","AAA","buy","limit","GTC",5,100]',
        b'["cancel","o1"]',
        b'["replace","o1","a",9]',
        b'["end_of_session"]',
        b'["add_instrument","AAA","0.01","1"]',
    ]
    objects = [
        _raw(ORDER),
        _raw({"command": "cancel", "order_id": "o1"}),
        _raw({"command": "replace", "order_id": "o1", "account": "a", "new_qty": 9}),
        _raw({"command": "end_of_session"}),
        _raw({"command": "add_instrument", "symbol": "AAA", "tick_size": "0.01", "lot_size": "1"}),
    ]
    ids = [b"%d" % i for i in range(5)]
    assert decode_batch(ids, positional, shard=0, shards=1) == decode_batch(
        ids, objects, shard=0, shards=1
    )
    bad = [b'["new_order","o1"]', b'["cancel"]', b"[]", b'["nope",1]', b'["cancel",[1],"a","b"]']
    recs = decode_batch([b"%d" % i for i in range(len(bad))], bad, shard=0, shards=1)
    assert [r[1] for r in recs] == [INVALID] * len(bad)


def test_a_malformed_piece_only_affects_itself() -> None:
    raws = [_raw(ORDER), b'{"command":"cancel","order_id":"o1"', _raw({**ORDER, "order_id": "o2"})]
    recs = decode_batch([b"a", b"b", b"c"], raws, shard=0, shards=1)
    assert [(r[0], r[1]) for r in recs] == [(b"a", NEW), (b"b", INVALID), (b"c", NEW)]
    assert recs[2][2][0] == "o2"


def test_invalid_shapes() -> None:
    cases = [
        b"[1, 2]",
        _raw({"command": "nope"}),
        _raw({**ORDER, "colour": "red"}),
        _raw({"command": "cancel"}),
        _raw({"command": "add_instrument", "symbol": "X", "tick_size": 0.01, "lot_size": "1"}),
        _raw({"command": "add_instrument", "symbol": "X", "tick_size": "abc", "lot_size": "1"}),
    ]
    recs = decode_batch([b"%d" % i for i in range(len(cases))], cases, shard=0, shards=1)
    assert [r[1] for r in recs] == [INVALID] * len(cases)
    good = _raw({"command": "add_instrument", "symbol": "X", "tick_size": "0.01", "lot_size": 1})
    assert decode_batch([b"x"], [good], shard=0, shards=1)[0][1:] == (
        ADD_INSTRUMENT,
        ("X", "0.01", "1"),
    )


def test_apply_records_matches_the_engines_own_command_path() -> None:
    cmds = mixed_commands(3000, seed=5)
    seen: set[str] = set()
    unique = [(c, d) for c, d in cmds if not (c in seen or seen.add(c))]  # type: ignore[func-returns-value]
    ours, ref = Engine(), Engine()
    ours_events, ref_events = [], []
    for start in range(0, len(unique), 97):
        chunk = unique[start : start + 97]
        ts = 1_000 + start
        recs = decode_batch(
            [c.encode() for c, _ in chunk], [_raw(d) for _, d in chunk], shard=0, shards=1
        )
        ours_events += apply_records(ours, ts, recs)
        for _c, d in chunk:
            ref_events += ref.process(command_from_dict({**d, "ts": ts}))
    assert ours_events == ref_events
    assert ours.state_hash() == ref.state_hash()
