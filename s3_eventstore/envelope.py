"""The agent-sdk wire shape: one event envelope, and one turn of them.

An envelope is kept as the exact bytes it arrived in (or, when built from a dict,
as orjson's compact rendering of it), so that archiving it is lossless: unknown
event types, unknown fields, key order, number formatting, nanosecond timestamps
and u64 sequences all survive byte for byte. The four fields every envelope has
are validated once, on construction, and cached; everything else is parsed only
when asked for, which keeps a buffered envelope small (bytes plus four scalars).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import orjson

from s3_eventstore.errors import InvalidEnvelopeError

__all__ = ["ENVELOPE_KEYS", "AgentEventEnvelope", "StoredTurnEvents"]

U64_MAX: Final = 2**64 - 1
ENVELOPE_KEYS: Final = ("event_id", "sequence", "timestamp")
"""Keys the envelope itself owns; every other key belongs to the flattened event."""

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})"
)
_LINE_BREAKS = re.compile(rb"[\r\n]")


def _parse_rfc3339(text: str) -> tuple[datetime, int]:
    """Return ``(aware datetime truncated to microseconds, nanoseconds of the second)``."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"timestamp {text!r} is not RFC 3339")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    nanos = int((fraction or "0")[:9].ljust(9, "0"))
    if offset in ("Z", "z"):
        tz: timezone = UTC
    else:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
        tz = timezone(sign * delta)
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), nanos // 1000, tz
    )
    return moment, nanos


def _reject_non_finite(value: Any, path: str = "$") -> None:
    """orjson writes NaN and infinities as ``null``: refuse them instead of altering data."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEnvelopeError(f"{path} is {value!r}, which JSON cannot represent")
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_non_finite(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _reject_non_finite(item, f"{path}[{index}]")


def _core_fields(data: Any) -> tuple[str, int, str, str]:
    """Validate the four fields every envelope has; return them."""
    if not isinstance(data, dict):
        raise InvalidEnvelopeError(f"an envelope must be a JSON object, not {type(data).__name__}")
    try:
        event_id = data["event_id"]
        sequence = data["sequence"]
        timestamp = data["timestamp"]
        event_type = data["type"]
    except KeyError as err:
        raise InvalidEnvelopeError(f"envelope has no {err.args[0]!r} field") from None
    if not isinstance(event_id, str):
        raise InvalidEnvelopeError("event_id must be a UUID string")
    try:
        uuid.UUID(event_id)
    except ValueError:
        raise InvalidEnvelopeError(f"event_id {event_id!r} is not a UUID") from None
    if type(sequence) is not int or not 0 <= sequence <= U64_MAX:
        raise InvalidEnvelopeError(f"sequence must be an integer in 0..2**64-1, not {sequence!r}")
    if not isinstance(timestamp, str):
        raise InvalidEnvelopeError("timestamp must be an RFC 3339 string")
    try:
        _parse_rfc3339(timestamp)
    except ValueError as err:
        raise InvalidEnvelopeError(f"timestamp {timestamp!r} is not RFC 3339: {err}") from None
    if not isinstance(event_type, str) or not event_type:
        raise InvalidEnvelopeError(f"type must be a non-empty string, not {event_type!r}")
    return event_id, sequence, timestamp, event_type


class AgentEventEnvelope:
    """One agent event in the agent-sdk serde JSON shape.

    ``{"event_id": <uuid>, "sequence": <u64>, "timestamp": <RFC 3339>, "type": <snake_case>,
    ...the event's own fields}``. Instances are immutable and compare by their wire bytes.

    Build one with :meth:`from_json` (bytes kept verbatim), :meth:`from_dict` (rendered
    compactly by orjson, key order kept) or :meth:`create` (serde's key order).
    """

    __slots__ = ("_event_id", "_raw", "_sequence", "_timestamp", "_type")

    _raw: bytes
    _event_id: str
    _sequence: int
    _timestamp: str
    _type: str

    def __init__(self) -> None:
        raise TypeError("use AgentEventEnvelope.from_json, .from_dict or .create")

    @classmethod
    def _build(cls, raw: bytes, data: Any) -> AgentEventEnvelope:
        event_id, sequence, timestamp, event_type = _core_fields(data)
        self = object.__new__(cls)
        self._raw = raw
        self._event_id = event_id
        self._sequence = sequence
        self._timestamp = timestamp
        self._type = event_type
        return self

    # --- construction ----------------------------------------------------------------

    @classmethod
    def from_json(cls, line: bytes | bytearray | memoryview | str) -> AgentEventEnvelope:
        """Parse one JSON line; its bytes are kept verbatim for a lossless round trip.

        Surrounding whitespace is dropped. A document that spans several lines (pretty
        printed) is re-rendered compactly, since a JSON-lines archive cannot hold it as is.

        Raises:
            InvalidEnvelopeError: not JSON, not an object, or a required field is missing
                or malformed.
        """
        try:
            raw = line.encode("utf-8") if isinstance(line, str) else bytes(line)
            raw = raw.strip(b" \t\r\n")
            data = orjson.loads(raw)
        except (orjson.JSONDecodeError, UnicodeEncodeError, TypeError) as err:
            raise InvalidEnvelopeError(f"envelope is not valid JSON: {err}") from None
        if _LINE_BREAKS.search(raw):
            raw = orjson.dumps(data)
        return cls._build(raw, data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentEventEnvelope:
        """Build an envelope from a JSON-compatible mapping, keeping its key order.

        Raises:
            InvalidEnvelopeError: a required field is missing or malformed, or a value
                cannot be written as JSON exactly (NaN, infinity, integers outside
                -2**63..2**64-1, non-string keys, objects JSON has no form for).
        """
        if not isinstance(data, Mapping):
            raise InvalidEnvelopeError(f"an envelope must be a mapping, not {type(data).__name__}")
        plain = dict(data)
        _core_fields(plain)
        _reject_non_finite(plain)
        try:
            raw = orjson.dumps(plain)
        except TypeError as err:
            raise InvalidEnvelopeError(f"envelope is not JSON-serialisable: {err}") from None
        return cls._build(raw, plain)

    @classmethod
    def create(
        cls,
        event_type: str,
        fields: Mapping[str, Any] | None = None,
        *,
        sequence: int,
        event_id: uuid.UUID | str | None = None,
        timestamp: datetime | str | None = None,
    ) -> AgentEventEnvelope:
        """Build an envelope in serde's key order, with a fresh id and the current time by default.

        Raises:
            InvalidEnvelopeError: as :meth:`from_dict`, or when ``fields`` redefines an
                envelope key or ``type``.
        """
        fields = dict(fields or {})
        clash = [key for key in (*ENVELOPE_KEYS, "type") if key in fields]
        if clash:
            raise InvalidEnvelopeError(f"event fields may not redefine {clash}")
        if isinstance(timestamp, datetime):
            timestamp = format_rfc3339(timestamp)
        data: dict[str, Any] = {
            "event_id": str(event_id or uuid.uuid4()),
            "sequence": sequence,
            "timestamp": timestamp or format_rfc3339(datetime.now(UTC)),
            "type": event_type,
        }
        data.update(fields)
        return cls.from_dict(data)

    # --- accessors ----------------------------------------------------------------------

    @property
    def event_id(self) -> uuid.UUID:
        """The event's id as a UUID."""
        return uuid.UUID(self._event_id)

    @property
    def sequence(self) -> int:
        """Position in its agent run. Restarts at 0 every run: never order by it."""
        return self._sequence

    @property
    def timestamp(self) -> str:
        """The timestamp exactly as written (RFC 3339, up to nanoseconds, any offset)."""
        return self._timestamp

    @property
    def datetime(self) -> datetime:
        """The timestamp as an aware ``datetime`` (Python keeps microseconds; see ``timestamp_ns``)."""
        return _parse_rfc3339(self._timestamp)[0]

    @property
    def timestamp_ns(self) -> int:
        """The timestamp as integer nanoseconds since the Unix epoch, with full precision."""
        moment, nanos = _parse_rfc3339(self._timestamp)
        whole = moment.replace(microsecond=0)
        return int(whole.timestamp()) * 1_000_000_000 + nanos

    @property
    def type(self) -> str:
        """The event's snake_case ``type`` tag (kept even when this library does not know it)."""
        return self._type

    @property
    def fields(self) -> dict[str, Any]:
        """The event's own fields (everything but the envelope keys and ``type``), a fresh copy."""
        data = self.to_dict()
        for key in (*ENVELOPE_KEYS, "type"):
            data.pop(key, None)
        return data

    @property
    def wire_size(self) -> int:
        """Length of the JSON line in bytes, without the newline."""
        return len(self._raw)

    # --- serialisation ------------------------------------------------------------------

    def to_json(self) -> bytes:
        """The envelope's JSON line (no trailing newline), byte for byte as it came in."""
        return self._raw

    def to_dict(self) -> dict[str, Any]:
        """A fresh, deep copy of the envelope as a JSON-compatible dict."""
        data: dict[str, Any] = orjson.loads(self._raw)
        return data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AgentEventEnvelope):
            return NotImplemented
        return self._raw == other.to_json()

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return (
            f"AgentEventEnvelope(type={self._type!r}, sequence={self._sequence}, "
            f"event_id={self._event_id!r}, timestamp={self._timestamp!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (AgentEventEnvelope.from_json, (self._raw,))


def format_rfc3339(moment: datetime) -> str:
    """Render an aware datetime the way chrono's ``AutoSi`` does (0, 3 or 6 fraction digits)."""
    if moment.tzinfo is None:
        raise InvalidEnvelopeError("timestamps must be timezone-aware")
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        if moment.microsecond % 1000 == 0:
            text += f".{moment.microsecond // 1000:03d}"
        else:
            text += f".{moment.microsecond:06d}"
    return text + "Z"


@dataclass(frozen=True, slots=True)
class StoredTurnEvents:
    """One turn of a thread as the store returns it: JSON shape ``{"turn", "events", "finished"}``."""

    turn: int
    """The turn number, ``0..2**64-1``."""
    events: tuple[AgentEventEnvelope, ...]
    """The turn's events in append order."""
    finished: bool
    """True once ``finish_turn`` closed the turn; open turns may still grow."""

    def to_dict(self) -> dict[str, Any]:
        """The agent-sdk JSON value of this turn."""
        return {
            "turn": self.turn,
            "events": [event.to_dict() for event in self.events],
            "finished": self.finished,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoredTurnEvents:
        """Parse the agent-sdk JSON value of a turn.

        Raises:
            InvalidEnvelopeError: the value is not of that shape, or an event is invalid.
        """
        try:
            turn, events, finished = data["turn"], data["events"], data["finished"]
        except (KeyError, TypeError) as err:
            raise InvalidEnvelopeError(f"not a stored turn: {err}") from None
        if type(turn) is not int or not isinstance(finished, bool):
            raise InvalidEnvelopeError("a stored turn needs an integer turn and a boolean finished")
        return cls(turn, tuple(AgentEventEnvelope.from_dict(e) for e in events), finished)

    @staticmethod
    def events_of(turns: Iterable[StoredTurnEvents]) -> list[AgentEventEnvelope]:
        """Flatten turns into turn-major event order."""
        return [event for turn in turns for event in turn.events]
