"""Envelopes that cannot be archived losslessly are refused with InvalidEnvelopeError,
from both constructors, before anything is buffered."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3_eventstore import AgentEventEnvelope, InvalidEnvelopeError, S3EventStore

VALID: dict[str, Any] = {
    "event_id": "0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10",
    "sequence": 3,
    "timestamp": "2026-11-24T01:02:03.123456789Z",
    "type": "text_delta",
    "delta": "hi",
}


def _without(field: str) -> dict[str, Any]:
    return {key: value for key, value in VALID.items() if key != field}


def _with(**fields: Any) -> dict[str, Any]:
    return {**VALID, **fields}


def test_the_valid_envelope_is_valid() -> None:
    assert AgentEventEnvelope.from_dict(VALID).sequence == 3


@pytest.mark.parametrize("field", ["event_id", "sequence", "timestamp", "type"])
def test_missing_required_field(field: str) -> None:
    message = f"^envelope has no '{field}' field$"
    with pytest.raises(InvalidEnvelopeError, match=message):
        AgentEventEnvelope.from_dict(_without(field))
    import orjson

    with pytest.raises(InvalidEnvelopeError, match=message):
        AgentEventEnvelope.from_json(orjson.dumps(_without(field)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with(blob=object()), "^envelope is not JSON-serialisable: Type is not JSON serializable"),
        (_with(blob=b"bytes"), "^envelope is not JSON-serialisable: Type is not JSON serializable"),
        (_with(blob={1, 2}), "^envelope is not JSON-serialisable: Type is not JSON serializable"),
        (_with(blob={1: "x"}), "^envelope is not JSON-serialisable: Dict key must be str"),
        (_with(blob={None: "x"}), "^envelope is not JSON-serialisable: Dict key must be str"),
        (_with(blob=10**308), r"^\$\.blob is an integer of more than 308 digits"),
        (_with(blob=-(10**308)), r"^\$\.blob is an integer of more than 308 digits"),
        (_with(blob=math.nan), r"^\$\.blob is nan, which JSON cannot represent$"),
        (_with(blob=[1, {"x": math.inf}]), r"^\$\.blob\[1\]\.x is inf, which JSON cannot"),
        (_with(blob=-math.inf), r"^\$\.blob is -inf, which JSON cannot represent$"),
        (_with(blob="lone \ud800"), "^envelope is not JSON-serialisable: str is not valid UTF-8"),
        (_with(sequence=2**64), r"^sequence must be an integer in 0\.\.2\*\*64-1, not 1844674"),
        (_with(sequence=-1), r"^sequence must be an integer in 0\.\.2\*\*64-1, not -1$"),
        (_with(sequence=True), r"^sequence must be an integer in 0\.\.2\*\*64-1, not True$"),
        (_with(sequence=1.0), r"^sequence must be an integer in 0\.\.2\*\*64-1, not 1\.0$"),
        (_with(event_id="nope"), "^event_id 'nope' is not a UUID$"),
        (_with(event_id=uuid.uuid4()), "^envelope is not JSON-serialisable|^event_id must be"),
        (_with(timestamp="yesterday"), "^timestamp 'yesterday' is not RFC 3339"),
        (_with(type=""), "^type must be a non-empty string, not ''$"),
        (_with(type=None), "^type must be a non-empty string, not None$"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_from_dict_refuses(data: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEnvelopeError, match=message):
        AgentEventEnvelope.from_dict(data)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"", "^envelope is not valid JSON: "),
        (b"not json", "^envelope is not valid JSON: "),
        (b"[1, 2]", "^an envelope must be a JSON object, not list$"),
        (b'{"a": NaN}', "^envelope is not valid JSON: "),
        (b'{"a": Infinity}', "^envelope is not valid JSON: "),
        (b'{"a": 1e400}', "^envelope is not valid JSON: number is infinity"),
        (b'{"a": "\\ud800"}', "^envelope is not valid JSON: "),
        (b"\xff\xfe", "^envelope is not valid JSON: "),
        ("\ud800", "^envelope is not valid JSON: "),
        (
            (
                b'{"event_id": "0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10", "sequence": '
                b'18446744073709551616, "timestamp": "2026-11-24T01:02:03Z", "type": "x"}'
            ),
            r"^sequence must be an integer in 0\.\.2\*\*64-1, not 18446744073709551616$",
        ),
    ],
)
def test_from_json_refuses(line: bytes | str, message: str) -> None:
    with pytest.raises(InvalidEnvelopeError, match=message):
        AgentEventEnvelope.from_json(line)


def test_from_json_keeps_big_field_integers_verbatim() -> None:
    """A u64-overflowing number in an event's own fields is not the envelope's to judge:
    the line is archived byte for byte, so nothing is lost."""
    line = (
        b'{"event_id":"0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10","sequence":1,'
        b'"timestamp":"2026-11-24T01:02:03Z","type":"x","n":18446744073709551616}'
    )
    assert AgentEventEnvelope.from_json(line).to_json() == line


@given(st.dictionaries(st.text(max_size=5), st.integers(min_value=2**64), min_size=1, max_size=3))
def test_any_field_integer_over_u64_is_kept_exactly_by_from_dict(extra: dict[str, int]) -> None:
    envelope = AgentEventEnvelope.from_dict({**VALID, "extra": extra})
    assert envelope.to_dict()["extra"] == extra
    assert AgentEventEnvelope.from_json(envelope.to_json()).to_dict()["extra"] == extra


@pytest.mark.parametrize("bad", [None, {}, VALID, "{}", 7])
async def test_append_refuses_what_is_not_an_envelope(bad: Any) -> None:
    store = S3EventStore("bucket", "p")
    with pytest.raises(InvalidEnvelopeError):
        await store.append("t", 0, bad)
    assert store.open_turns() == []
    assert store.client is None  # no client was even created
