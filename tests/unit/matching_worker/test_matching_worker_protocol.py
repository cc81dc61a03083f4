import json
import zlib
from decimal import Decimal

import pytest

from apps.matching.engine import AddInstrument, Cancel, EndOfSession, NewOrder, command_to_dict
from apps.matching.protocol import (
    Names,
    command_as_dict,
    decode_command_entry,
    decode_output_entry,
    encode_command,
    encode_command_entry,
    encode_events,
    shard_for,
    valid_command_id,
)


def test_shard_for_is_crc32_modulo_and_stable() -> None:
    assert shard_for("AAPL", 1) == 0
    assert shard_for("AAPL", 7) == zlib.crc32(b"AAPL") % 7
    assert [shard_for(s, 2) for s in ("AAPL", "MSFT", "TSLA", "BTC-USD")] == [0, 1, 1, 0]
    with pytest.raises(ValueError, match="shards must be >= 1"):
        shard_for("AAPL", 0)


def test_names() -> None:
    n = Names("p", "m")
    assert (n.in_stream(3), n.out_stream(3), n.health_key(3)) == ("p:in:3", "p:out:3", "p:health:3")
    assert (n.md_channel("AAPL"), Names.consumer(3)) == ("m:AAPL", "matcher-3")
    assert Names().in_stream(0) == "matcher:in:0"


def test_command_entry_round_trip_drops_ts() -> None:
    fields = encode_command_entry(
        "instrument:X:0.01:1", AddInstrument(123, "X", Decimal("0.01"), Decimal("1"))
    )
    assert fields["cmd"] == b'["add_instrument","X","0.01","1"]'
    cid, data = decode_command_entry(fields)  # type: ignore[arg-type]
    assert cid == "instrument:X:0.01:1"
    assert data == {
        "command": "add_instrument",
        "symbol": "X",
        "tick_size": "0.01",
        "lot_size": "1",
    }
    obj = encode_command_entry("c", Cancel(5, "o1", "a1"), positional=False)
    assert obj["cmd"] == b'{"command":"cancel","order_id":"o1","account":"a1"}'
    positional = encode_command_entry("c", Cancel(5, "o1", "a1"))
    assert decode_command_entry(obj)[1] == decode_command_entry(positional)[1]  # type: ignore[arg-type]


def test_positional_form_leaves_out_trailing_defaults() -> None:
    order = NewOrder(0, "o", "a", "AAPL", "buy", "limit", "GTC", 10, 18950)
    assert encode_command(order) == b'["new_order","o","a","AAPL","buy","limit","GTC",10,18950]'
    market = NewOrder(0, "m", "a", "AAPL", "sell", "market", "IOC", 3, protection=5)
    assert encode_command(market) == (
        b'["new_order","m","a","AAPL","sell","market","IOC",3,null,null,"none",5]'
    )
    expected = {k: v for k, v in command_to_dict(market).items() if k != "ts"}
    assert command_as_dict(json.loads(encode_command(market))) == expected
    assert encode_command(EndOfSession(0)) == b'["end_of_session"]'
    with pytest.raises(ValueError, match="not a command"):
        command_as_dict(["cancel"])
    with pytest.raises(ValueError, match="invalid command id"):
        encode_command_entry("has space", Cancel(0, "o1"))
    assert not valid_command_id("")
    assert not valid_command_id("x" * 257)
    assert valid_command_id("oms:3f2a9c1e-8b7d-4e3f-a1b2-c3d4e5f60718:new")


def test_output_entry_decoding_checks_the_seq_range() -> None:
    events = [("rejected", 7, 1, "cancel", "o", None, "UNKNOWN_ORDER")]
    entry = decode_output_entry(
        b"1-1", {b"first": b"7", b"last": b"7", b"ts": b"1", b"ev": encode_events(events)}
    )
    assert entry.events == events
    assert entry.input_id is None
    with pytest.raises(ValueError, match="seq range does not match"):
        decode_output_entry(
            "1-2", {"first": "8", "last": "8", "ts": "1", "ev": encode_events(events)}
        )
