"""Issue 13, values: every public conversion keeps every JSON number exact or refuses it,
nothing orjson would render by its own rules slips in, and the grammar is agent-sdk's."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from collections import OrderedDict, namedtuple
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3_eventstore import AgentEventEnvelope, InvalidEnvelopeError, StoredTurnEvents
from s3_eventstore.jsonvalue import MAX_DEPTH

HEAD = (
    b'{"event_id":"0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10","sequence":1,'
    b'"timestamp":"2026-11-24T01:02:03Z","type":"x",'
)
BASE: dict[str, Any] = {
    "event_id": "0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10",
    "sequence": 1,
    "timestamp": "2026-11-24T01:02:03Z",
    "type": "x",
}


def line_with(number: bytes) -> bytes:
    return HEAD + b'"n":' + number + b',"deep":{"list":[' + number + b"]}}"


def all_conversions(envelope: AgentEventEnvelope) -> list[dict[str, Any]]:
    """The envelope's dict through every public path that produces one."""
    turn = StoredTurnEvents(7, (envelope,), True)
    again = StoredTurnEvents.from_dict(turn.to_dict())
    return [
        envelope.to_dict(),
        {**BASE, **envelope.fields},
        AgentEventEnvelope.from_dict(envelope.to_dict()).to_dict(),
        AgentEventEnvelope.from_json(envelope.to_json()).to_dict(),
        turn.to_dict()["events"][0],
        again.events[0].to_dict(),
        AgentEventEnvelope.from_json(again.events[0].to_json()).to_dict(),
        AgentEventEnvelope.create(
            "x", envelope.fields, sequence=1, event_id=BASE["event_id"], timestamp=BASE["timestamp"]
        ).to_dict(),
    ]


# --- 1. numbers -----------------------------------------------------------------------------

EXACT_INTEGERS = [
    2**64,  # the issue's input
    -9223372036854775809,  # the issue's input: just below i64
    2**64 - 1,
    -(2**63),
    2**63,
    10**40,
    -(10**40),
    10**308 - 1,
    -(10**308 - 1),
    0,
]


@pytest.mark.parametrize("number", EXACT_INTEGERS)
def test_integers_of_any_size_stay_exact_through_every_conversion(number: int) -> None:
    line = line_with(str(number).encode())
    envelope = AgentEventEnvelope.from_json(line)
    assert envelope.to_json() == line  # archived byte for byte
    for data in all_conversions(envelope):
        assert type(data["n"]) is int
        assert data["n"] == number
        assert data["deep"]["list"] == [number]
    built = AgentEventEnvelope.from_dict({**BASE, "n": number, "deep": {"list": [number]}})
    assert built.to_dict()["n"] == number
    assert AgentEventEnvelope.from_json(built.to_json()).to_dict()["n"] == number
    created = AgentEventEnvelope.create("x", {"n": number}, sequence=1)
    assert created.to_dict()["n"] == number


def test_stored_turn_round_trip_keeps_the_issue_line_byte_for_byte() -> None:
    line = HEAD + b'"n":18446744073709551616}'
    turn = StoredTurnEvents(5, (AgentEventEnvelope.from_json(line),), True)
    again = StoredTurnEvents.from_dict(turn.to_dict())
    assert again.events[0].to_dict()["n"] == 2**64
    assert again.events[0].to_json() == line
    assert again == turn


@pytest.mark.parametrize(
    "text",
    [
        b"0.1",
        b"1.10",
        b"-0.0",
        b"0.0",
        b"1e300",
        b"1E2",
        b"-1.5e-300",
        b"5e-324",
        b"1.7976931348623157e308",
        b"0.30000000000000004",
        b"123456789012345.6",
    ],
)
def test_floats_a_double_holds_exactly_are_kept(text: bytes) -> None:
    line = line_with(text)
    envelope = AgentEventEnvelope.from_json(line)
    assert envelope.to_json() == line
    expected = decimal.Decimal(text.decode())
    for data in all_conversions(envelope):
        assert type(data["n"]) is float
        assert decimal.Decimal(repr(data["n"])) == expected
        assert str(data["n"]).startswith("-") == text.startswith(b"-")  # -0.0 keeps its sign


def test_negative_zero_integer_reads_as_serde_does() -> None:
    """serde_json reads ``-0`` as the float -0.0; so does every conversion here."""
    envelope = AgentEventEnvelope.from_json(line_with(b"-0"))
    for data in all_conversions(envelope):
        assert data["n"] == 0.0
        assert str(data["n"]) == "-0.0"


@pytest.mark.parametrize(
    "text",
    [
        b"3.14159265358979323846",  # more digits than a double holds
        b"1.0000000000000001",
        b"18446744073709551616.5",
        b"2.5e-324",  # rounds to a subnormal
        b"1e-400",  # underflows to 0
        b"1e400",  # overflows to infinity
        b"-1e400",
        b"1" + b"0" * 400,  # an integer no double holds
        b"9" * 5000,  # past Python's int/str conversion limit
    ],
)
def test_numbers_no_conversion_can_keep_are_refused(text: bytes) -> None:
    with pytest.raises(InvalidEnvelopeError):
        AgentEventEnvelope.from_json(line_with(text))
    with pytest.raises(InvalidEnvelopeError):
        AgentEventEnvelope.from_json(line_with(text).decode())


@pytest.mark.parametrize("number", [10**308, -(10**308), 10**400])
def test_from_dict_refuses_integers_no_reader_holds(number: int) -> None:
    with pytest.raises(InvalidEnvelopeError, match="more than 308 digits"):
        AgentEventEnvelope.from_dict({**BASE, "n": number})
    with pytest.raises(InvalidEnvelopeError, match="more than 308 digits"):
        AgentEventEnvelope.create("x", {"n": [number]}, sequence=0)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(10**30), 10**30)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_any_json_value_survives_every_conversion(value: Any) -> None:
    envelope = AgentEventEnvelope.from_dict({**BASE, "v": value})
    for data in all_conversions(envelope):
        assert json.dumps(data["v"]) == json.dumps(value)  # same values, same float signs


# --- 2. values with no exact JSON form, wherever they hide --------------------------------


@dataclasses.dataclass
class Point:
    x: float


class Colour(enum.Enum):
    RED = float("nan")


class Level(enum.IntEnum):
    HIGH = 3


class Name(enum.StrEnum):
    ADA = "ada"


class NanFloat(float):
    pass


Pair = namedtuple("Pair", "a b")


@pytest.mark.parametrize(
    "value",
    [
        Point(float("nan")),  # the issue's input
        Point(1.0),  # any dataclass: orjson writes it by its own rules
        {"a": [Point(float("inf"))]},
        [[[{"k": Point(0.0)}]]],
        dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        dt.date(2025, 1, 1),
        dt.time(12, 0),
        uuid.UUID("4fced04c-3b01-40aa-a3c8-43862969f837"),
        Colour.RED,
        np.float32("nan"),
        np.array([1.0, float("nan")]),
        np.int64(3),
        decimal.Decimal("NaN"),
        decimal.Decimal("1.5"),
        pytest.param(orjson.Fragment(b"NaN"), id="Fragment(NaN)"),
        pytest.param(orjson.Fragment(b"[1]"), id="Fragment([1])"),
        {"x": {1, 2}},
        b"bytes",
        NanFloat("nan"),
        [NanFloat("inf")],
        np.float64("nan"),  # a float subclass
        {"nested": {"deeper": np.float64("-inf")}},
    ],
    ids=repr,
)
def test_values_without_exact_json_are_refused_everywhere(value: Any) -> None:
    with pytest.raises(InvalidEnvelopeError):
        AgentEventEnvelope.from_dict({**BASE, "v": value})
    with pytest.raises(InvalidEnvelopeError):
        AgentEventEnvelope.create("x", {"v": value}, sequence=0)
    with pytest.raises(InvalidEnvelopeError):
        StoredTurnEvents.from_dict({"turn": 1, "events": [{**BASE, "v": value}], "finished": True})


def test_subclasses_of_json_types_are_written_as_their_value() -> None:
    value = {
        Name.ADA: [Level.HIGH, Name.ADA, np.float64(0.5), True],
        "ordered": OrderedDict(b=1, a=2),
        "pair": Pair(1, 2),
    }
    envelope = AgentEventEnvelope.from_dict({**BASE, "v": value})
    assert envelope.to_dict()["v"] == {
        "ada": [3, "ada", 0.5, True],
        "ordered": {"b": 1, "a": 2},
        "pair": [1, 2],
    }
    assert list(envelope.to_dict()["v"]["ordered"]) == ["b", "a"]


@pytest.mark.parametrize("key", [1, None, 1.5, ("a",), b"k"])
def test_non_string_keys_are_refused_at_any_depth(key: Any) -> None:
    with pytest.raises(InvalidEnvelopeError, match="key must be str"):
        AgentEventEnvelope.from_dict({**BASE, "v": [{"ok": {key: 1}}]})


# --- 4. nesting -----------------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1, 1000, 5000, 100_000])
def test_deep_nesting_gives_invalid_envelope_not_recursion_error(depth: int) -> None:
    # The envelope object is one level: a value nested `depth` deep makes depth + 1.
    allowed = depth + 1 <= MAX_DEPTH
    line = HEAD + b'"v":' + b"[" * depth + b"]" * depth + b"}"
    data = {**BASE, "v": nested(depth)}
    for build in (
        lambda: AgentEventEnvelope.from_json(line),
        lambda: AgentEventEnvelope.from_dict(data),
        lambda: AgentEventEnvelope.create("x", {"v": nested(depth)}, sequence=0),
        lambda: StoredTurnEvents.from_dict({"turn": 0, "events": [data], "finished": False}),
    ):
        if allowed:
            build()
        else:
            with pytest.raises(InvalidEnvelopeError, match="levels deep"):
                build()


def test_the_deepest_allowed_value_round_trips() -> None:
    data = {**BASE, "v": nested(MAX_DEPTH - 1)}
    envelope = AgentEventEnvelope.from_dict(data)
    assert envelope.to_dict() == data
    assert AgentEventEnvelope.from_json(envelope.to_json()).to_dict() == data


@pytest.mark.parametrize(
    "line",
    [
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        b"[" * 100_000,
        HEAD + b'"v":' + b"[" * 300 + b"]" * 300 + b',"n":18446744073709551616}',
    ],
)
def test_deep_json_lines_are_refused_with_a_typed_error(line: bytes) -> None:
    with pytest.raises(InvalidEnvelopeError):
        AgentEventEnvelope.from_json(line)


# --- other hostile arguments ------------------------------------------------------------------


@pytest.mark.parametrize("line", [5, 10**12, None, 1.5, ["{}"], object()])
def test_from_json_refuses_what_is_not_text(line: Any) -> None:
    with pytest.raises(InvalidEnvelopeError, match="expected bytes or str"):
        AgentEventEnvelope.from_json(line)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "turn",
        {"turn": 1, "events": 5, "finished": True},
        {"turn": 1, "events": "ab", "finished": True},
        {"turn": 1, "events": [], "finished": 1},
        {"turn": -1, "events": [], "finished": True},
        {"turn": 2**64, "events": [], "finished": True},
        {"turn": True, "events": [], "finished": True},
        {"turn": 1, "events": [None], "finished": True},
        {"turn": 1, "finished": True},
    ],
    ids=repr,
)
def test_stored_turn_from_dict_refuses_other_shapes(data: Any) -> None:
    with pytest.raises(InvalidEnvelopeError):
        StoredTurnEvents.from_dict(data)


@pytest.mark.parametrize("event_id", [0, "", 5, b"x"])
def test_create_never_replaces_a_falsy_or_wrong_event_id(event_id: Any) -> None:
    with pytest.raises(InvalidEnvelopeError, match="event_id"):
        AgentEventEnvelope.create("x", sequence=0, event_id=event_id)


@pytest.mark.parametrize("timestamp", ["", 0])
def test_create_never_replaces_a_falsy_timestamp(timestamp: Any) -> None:
    with pytest.raises(InvalidEnvelopeError, match="timestamp"):
        AgentEventEnvelope.create("x", sequence=0, timestamp=timestamp)


@pytest.mark.parametrize("fields", [[("a", 1)], "ab", 5])
def test_create_refuses_fields_that_are_not_a_mapping(fields: Any) -> None:
    with pytest.raises(InvalidEnvelopeError, match="fields must be a mapping"):
        AgentEventEnvelope.create("x", fields, sequence=0)


def test_create_renders_early_years_with_four_digits() -> None:
    moment = dt.datetime(33, 4, 3, 15, 0, tzinfo=dt.UTC)
    envelope = AgentEventEnvelope.create("x", sequence=0, timestamp=moment)
    assert envelope.timestamp == "0033-04-03T15:00:00Z"
    assert envelope.datetime == moment


def test_parquet_export_keeps_big_integers_exact(tmp_path: Any) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from s3_eventstore.ops.export import ParquetSink

    event = AgentEventEnvelope.from_json(line_with(b"18446744073709551616"))
    assert (
        event.fields_json() == b'{"n":18446744073709551616,"deep":{"list":[18446744073709551616]}}'
    )
    sink = ParquetSink(tmp_path / "out.parquet")
    sink.write_turn("t", 1, [event])
    sink.close()
    row = pq.read_table(tmp_path / "out.parquet").to_pylist()[0]
    assert json.loads(row["fields"])["n"] == 2**64
    assert row["envelope"].encode() == event.to_json()


def test_envelopes_cannot_be_subclassed_to_bypass_validation() -> None:
    with pytest.raises(TypeError, match="cannot be subclassed"):

        class Evil(AgentEventEnvelope):
            def to_json(self) -> bytes:
                return b"not json"
