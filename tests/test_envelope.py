"""AgentEventEnvelope: the agent-sdk wire shape, lossless."""

from __future__ import annotations

import pickle
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from s3_eventstore import AgentEventEnvelope, InvalidEnvelopeError, StoredTurnEvents
from s3_eventstore.testing import AgentSdkVectors, load_agent_sdk_vectors


@pytest.fixture(scope="module")
def vectors() -> AgentSdkVectors:
    return load_agent_sdk_vectors()


@pytest.mark.parametrize("name", ["envelopes.jsonl", "legacy_envelopes.input.jsonl"])
def test_every_fixture_line_round_trips_byte_for_byte(vectors: AgentSdkVectors, name: str) -> None:
    lines = vectors.lines(name)
    assert lines
    for line in lines:
        envelope = AgentEventEnvelope.from_json(line)
        assert envelope.to_json() == line
        assert AgentEventEnvelope.from_json(line.decode()).to_json() == line
        assert AgentEventEnvelope.from_dict(envelope.to_dict()).to_json() == line


def test_all_24_event_types_are_covered(vectors: AgentSdkVectors) -> None:
    types = {AgentEventEnvelope.from_json(line).type for line in vectors.lines()}
    assert len(types) == 24


def test_packaged_workload_sample_is_the_fixture(vectors: AgentSdkVectors) -> None:
    from importlib import resources

    packaged = resources.files("s3_eventstore.demo.workload_data") / "agent_sdk_envelopes.jsonl"
    assert packaged.read_bytes() == (vectors.root / "envelopes.jsonl").read_bytes()


def test_accessors() -> None:
    line = (
        b'{"event_id":"e3f4ce37-bc92-4b5f-9e82-2e44a4bc5aa2","sequence":18446744073709551615,'
        b'"timestamp":"2025-06-01T12:00:00.539384757Z","type":"brand_new_type",'
        b'"zeta":1,"alpha":{"b":2,"a":[1,2]}}'
    )
    envelope = AgentEventEnvelope.from_json(line)
    assert envelope.event_id == uuid.UUID("e3f4ce37-bc92-4b5f-9e82-2e44a4bc5aa2")
    assert envelope.sequence == 2**64 - 1
    assert envelope.timestamp == "2025-06-01T12:00:00.539384757Z"
    assert envelope.datetime == datetime(2025, 6, 1, 12, 0, 0, 539384, tzinfo=UTC)
    assert envelope.timestamp_ns == 1748779200_539384757
    assert envelope.type == "brand_new_type"
    assert envelope.fields == {"zeta": 1, "alpha": {"b": 2, "a": [1, 2]}}
    assert list(envelope.fields) == ["zeta", "alpha"]
    assert envelope.wire_size == len(line)
    assert envelope.to_json() == line


def test_offsets_and_precision() -> None:
    envelope = AgentEventEnvelope.from_json(
        b'{"event_id":"8073a2a0-12be-442f-a6df-8c44d07120c8","sequence":9,'
        b'"timestamp":"2025-01-10T07:00:02.123-03:00","type":"x"}'
    )
    tz = timezone(-timedelta(hours=3))
    assert envelope.datetime == datetime(2025, 1, 10, 7, 0, 2, 123000, tzinfo=tz)
    assert (
        envelope.timestamp_ns
        == int(datetime(2025, 1, 10, 10, 0, 2, tzinfo=UTC).timestamp()) * (10**9) + 123_000_000
    )


def test_to_dict_is_a_deep_copy_and_envelopes_are_immutable() -> None:
    envelope = AgentEventEnvelope.create("tool_call_start", {"input": {"a": [1]}}, sequence=0)
    data = envelope.to_dict()
    data["input"]["a"].append(2)
    assert envelope.to_dict()["input"] == {"a": [1]}
    with pytest.raises(AttributeError):
        envelope.sequence = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        AgentEventEnvelope()


def test_create_uses_serde_key_order() -> None:
    moment = datetime(2025, 6, 1, 12, 0, 0, 539000, tzinfo=UTC)
    envelope = AgentEventEnvelope.create(
        "text_delta",
        {"message_id": "m", "delta": "hé 会"},
        sequence=4,
        event_id="e3f4ce37-bc92-4b5f-9e82-2e44a4bc5aa2",
        timestamp=moment,
    )
    assert (
        envelope.to_json()
        == (
            '{"event_id":"e3f4ce37-bc92-4b5f-9e82-2e44a4bc5aa2","sequence":4,'
            '"timestamp":"2025-06-01T12:00:00.539Z","type":"text_delta","message_id":"m",'
            '"delta":"hé 会"}'
        ).encode()
    )
    with pytest.raises(InvalidEnvelopeError, match="redefine"):
        AgentEventEnvelope.create("x", {"type": "y"}, sequence=0)


def test_pretty_printed_input_becomes_one_line() -> None:
    data = {"event_id": str(uuid.uuid4()), "sequence": 0, "timestamp": "2025-01-01T00:00:00Z"}
    data["type"] = "start"
    pretty = orjson.dumps(data, option=orjson.OPT_INDENT_2)
    envelope = AgentEventEnvelope.from_json(b"  " + pretty + b"\n")
    assert b"\n" not in envelope.to_json()
    assert envelope.to_dict() == data
    assert AgentEventEnvelope.from_json(orjson.dumps(data) + b"\r\n").to_json() == orjson.dumps(
        data
    )


def test_equality_hash_pickle() -> None:
    one = AgentEventEnvelope.create("x", sequence=0)
    same = AgentEventEnvelope.from_json(one.to_json())
    assert one == same
    assert hash(one) == hash(same)
    assert one != AgentEventEnvelope.create("x", sequence=0)
    assert pickle.loads(pickle.dumps(one)) == one
    assert "type='x'" in repr(one)


GOOD: dict[str, Any] = {
    "event_id": "e3f4ce37-bc92-4b5f-9e82-2e44a4bc5aa2",
    "sequence": 0,
    "timestamp": "2025-06-01T12:00:00Z",
    "type": "start",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"event_id": None}, "event_id must be a UUID string"),
        ({"event_id": "nope"}, "is not a UUID"),
        ({"sequence": -1}, "sequence must be an integer"),
        ({"sequence": 2**64}, "sequence must be an integer"),
        ({"sequence": True}, "sequence must be an integer"),
        ({"sequence": 1.0}, "sequence must be an integer"),
        ({"timestamp": "yesterday"}, "is not RFC 3339"),
        ({"timestamp": "2025-13-01T00:00:00Z"}, "is not RFC 3339"),
        ({"timestamp": "2025-06-01T12:00:00"}, "is not RFC 3339"),
        ({"timestamp": 5}, "timestamp must be"),
        ({"type": ""}, "type must be a non-empty string"),
        ({"type": 3}, "type must be a non-empty string"),
        ({"value": float("nan")}, "JSON cannot represent"),
        ({"value": [1, {"x": float("inf")}]}, r"\$\.value\[1\]\.x"),
        ({"value": 10**308}, "more than 308 digits"),
        ({"value": {1: "x"}}, "not JSON-serialisable"),
        ({"value": object()}, "not JSON-serialisable"),
    ],
)
def test_invalid_dicts_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEnvelopeError, match=message):
        AgentEventEnvelope.from_dict({**GOOD, **change})


@pytest.mark.parametrize("missing", ["event_id", "sequence", "timestamp", "type"])
def test_missing_fields_are_refused(missing: str) -> None:
    data = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(InvalidEnvelopeError, match=f"no '{missing}' field"):
        AgentEventEnvelope.from_dict(data)
    with pytest.raises(InvalidEnvelopeError, match=f"no '{missing}' field"):
        AgentEventEnvelope.from_json(orjson.dumps(data))


@pytest.mark.parametrize(
    "line", [b"", b"{", b"[1]", b'"s"', b"\xff\xfe", b'{"a":NaN}', b'{"sequence":1e400}']
)
def test_invalid_json_is_refused(line: bytes) -> None:
    with pytest.raises(InvalidEnvelopeError):
        AgentEventEnvelope.from_json(line)


def test_stored_turn_events_json_shape() -> None:
    event = AgentEventEnvelope.from_dict(GOOD)
    turn = StoredTurnEvents(3, (event,), True)
    assert turn.to_dict() == {"turn": 3, "events": [GOOD], "finished": True}
    assert StoredTurnEvents.from_dict(turn.to_dict()) == turn
    with pytest.raises(InvalidEnvelopeError):
        StoredTurnEvents.from_dict({"turn": "3", "events": [], "finished": True})
