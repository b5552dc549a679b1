"""The agent-sdk wire shape: one event envelope, and one turn of them.

An envelope is kept as the exact bytes it arrived in (or, when built from a dict,
as orjson's compact rendering of it), so that archiving it is lossless: unknown
event types, unknown fields, key order, number formatting, nanosecond timestamps
and u64 sequences all survive byte for byte. The four fields every envelope has
are validated once, on construction, and cached; everything else is parsed only
when asked for, which keeps a buffered envelope small (bytes plus four scalars).
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from s3_eventstore.errors import InvalidEnvelopeError
from s3_eventstore.jsonvalue import dump_exact, load_exact, load_wide, plain_json
from s3_eventstore.timestamps import Timestamp, is_uuid, parse_timestamp

__all__ = ["ENVELOPE_KEYS", "AgentEventEnvelope", "StoredTurnEvents"]

U64_MAX: Final = 2**64 - 1
ENVELOPE_KEYS: Final = ("event_id", "sequence", "timestamp")
"""Keys the envelope itself owns; every other key belongs to the flattened event."""

_LINE_BREAKS = (b"\r", b"\n")
_ALLOCATION: Final = 16
"""CPython's small-object allocator hands out blocks in multiples of 16 bytes."""


_BYTES_BASE: Final = sys.getsizeof(b"")
_STR_BASE: Final = sys.getsizeof("")


def _allocated(size: int) -> int:
    return -(-size // _ALLOCATION) * _ALLOCATION


def _timestamp(text: str) -> Timestamp:
    try:
        return parse_timestamp(text)
    except ValueError as err:
        raise InvalidEnvelopeError(f"timestamp {text!r} is not RFC 3339: {err}") from None


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
    if not is_uuid(event_id):
        raise InvalidEnvelopeError(f"event_id {event_id[:80]!r} is not a UUID")
    if type(sequence) is not int or not 0 <= sequence <= U64_MAX:
        raise InvalidEnvelopeError(f"sequence must be an integer in 0..2**64-1, not {sequence!r}")
    if not isinstance(timestamp, str):
        raise InvalidEnvelopeError("timestamp must be an RFC 3339 string")
    _timestamp(timestamp)
    if not isinstance(event_type, str) or not event_type:
        raise InvalidEnvelopeError(f"type must be a non-empty string, not {event_type!r}")
    return event_id, sequence, timestamp, sys.intern(event_type)


class AgentEventEnvelope:
    """One agent event in the agent-sdk serde JSON shape.

    ``{"event_id": <uuid>, "sequence": <u64>, "timestamp": <RFC 3339>, "type": <snake_case>,
    ...the event's own fields}``. Instances are immutable and compare by their wire bytes.

    Build one with :meth:`from_json` (bytes kept verbatim), :meth:`from_dict` (rendered
    compactly by orjson, key order kept) or :meth:`create` (serde's key order).
    """

    __slots__ = ("_event_id", "_raw", "_sequence", "_timestamp", "_type", "_wide")

    _raw: bytes
    _event_id: str
    _sequence: int
    _timestamp: str
    _type: str
    _wide: bool
    """True when the line holds numbers orjson cannot read exactly (integers outside
    -2**63..2**64-1, ``-0``): :meth:`to_dict` then reads it with the exact parser."""

    def __init__(self) -> None:
        raise TypeError("use AgentEventEnvelope.from_json, .from_dict or .create")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Stores trust an envelope's bytes and fields because construction validated them;
        # a subclass could override to_json or timestamp and slip past every check.
        raise TypeError("AgentEventEnvelope cannot be subclassed")

    @classmethod
    def _build(cls, raw: bytes, data: Any, wide: bool) -> AgentEventEnvelope:
        event_id, sequence, timestamp, event_type = _core_fields(data)
        self = object.__new__(cls)
        self._raw = raw
        self._event_id = event_id
        self._sequence = sequence
        self._timestamp = timestamp
        self._type = event_type
        self._wide = wide
        return self

    # --- construction ----------------------------------------------------------------

    @classmethod
    def from_json(
        cls, line: bytes | bytearray | memoryview | str, *, unique_keys: bool = True
    ) -> AgentEventEnvelope:
        """Parse one JSON line; its bytes are kept verbatim for a lossless round trip.

        Surrounding whitespace is dropped. A document that spans several lines (pretty
        printed) is re-rendered compactly, since a JSON-lines archive cannot hold it as is.
        Numbers must be exact (see :mod:`s3_eventstore.jsonvalue`): integers of any size
        are kept, a float whose digits a double cannot hold is refused. A key twice in
        one object is refused (JSON readers disagree on which value counts);
        ``unique_keys=False`` is for reading lines archived before that rule, which are
        then read as orjson reads them (the last value wins).

        Raises:
            InvalidEnvelopeError: not JSON, not an object, a required field is missing or
                malformed (agent-sdk's grammar), nested deeper than serde_json reads, or
                holding a number that cannot be read exactly, or a key twice in one object.
        """
        if isinstance(line, str):
            try:
                raw = line.encode("utf-8")
            except UnicodeEncodeError as err:
                raise InvalidEnvelopeError(f"envelope is not valid JSON: {err}") from None
        elif isinstance(line, bytes | bytearray | memoryview):
            raw = bytes(line)
        else:
            raise InvalidEnvelopeError(
                f"envelope is not valid JSON: expected bytes or str, not {type(line).__name__}"
            )
        raw = raw.strip(b" \t\r\n")
        data, wide = load_exact(raw)
        if unique_keys:
            _reject_duplicate_keys(raw, data, wide)
        if b"\n" in raw or b"\r" in raw:
            raw = dump_exact(data, wide=wide)
        return cls._build(raw, data, wide)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentEventEnvelope:
        """Build an envelope from a JSON-compatible mapping, keeping its key order.

        Raises:
            InvalidEnvelopeError: a required field is missing or malformed, or a value
                cannot be written as JSON exactly: NaN or infinity, integers of more than
                308 digits, non-string keys, nesting deeper than serde_json reads, or any
                type but dict, list, tuple, str, int, float, bool and None (dataclasses,
                datetimes, UUIDs, numpy values ... wherever they hide).
        """
        if not isinstance(data, Mapping):
            raise InvalidEnvelopeError(f"an envelope must be a mapping, not {type(data).__name__}")
        plain, wide = plain_json(dict(data))
        _core_fields(plain)
        return cls._build(dump_exact(plain, wide=wide), plain, wide)

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
                envelope key or ``type``, or is not a mapping.
        """
        if fields is None:
            fields = {}
        elif not isinstance(fields, Mapping):
            raise InvalidEnvelopeError(f"fields must be a mapping, not {type(fields).__name__}")
        clash = [key for key in (*ENVELOPE_KEYS, "type") if key in fields]
        if clash:
            raise InvalidEnvelopeError(f"event fields may not redefine {clash}")
        if isinstance(timestamp, datetime):
            timestamp = format_rfc3339(timestamp)
        elif timestamp is None:
            timestamp = format_rfc3339(datetime.now(UTC))
        if event_id is None:
            event_id = uuid.uuid4()
        data: dict[str, Any] = {
            "event_id": str(event_id) if isinstance(event_id, uuid.UUID) else event_id,
            "sequence": sequence,
            "timestamp": timestamp,
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
        """The timestamp as an aware ``datetime`` in its own offset.

        Python keeps microseconds (see ``timestamp_ns``); a leap second reads as
        ``23:59:59.999999``, as agent-sdk's ``time`` crate reads it.

        Raises:
            InvalidEnvelopeError: the year is 0000, which agent-sdk accepts but Python's
                ``datetime`` cannot hold (``timestamp_ns`` can).
        """
        try:
            return _timestamp(self._timestamp).to_datetime()
        except ValueError as err:
            raise InvalidEnvelopeError(
                f"timestamp {self._timestamp!r} has no Python datetime: {err}"
            ) from None

    @property
    def timestamp_ns(self) -> int:
        """The timestamp as integer nanoseconds since the Unix epoch, with full precision."""
        return _timestamp(self._timestamp).unix_nanos

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

    def fields_json(self) -> bytes:
        """:attr:`fields` as one compact JSON object, every number exact."""
        return dump_exact(self.fields, wide=self._wide)

    @property
    def wire_size(self) -> int:
        """Length of the JSON line in bytes, without the newline."""
        return len(self._raw)

    @property
    def memory_size(self) -> int:
        """Bytes this envelope holds in memory: its line, itself and its cached fields,
        each as CPython allocates it, plus one list slot (what a buffer of it costs).
        ``max_buffer_bytes`` counts this (measured against RSS: benchmarks/buffer_memory.py)."""
        # event_id and timestamp are ASCII (their grammars say so): compact str objects.
        size = _allocated(_BYTES_BASE + len(self._raw)) + _ENVELOPE_BYTES + 8
        size += _allocated(_STR_BASE + len(self._event_id))
        size += _allocated(_STR_BASE + len(self._timestamp))
        if self._sequence > 256:  # smaller ints are shared
            size += _allocated(sys.getsizeof(self._sequence))
        if len(self._type) > 64:  # short types are interned: one copy for all events
            size += _allocated(sys.getsizeof(self._type))
        return size

    # --- serialisation ------------------------------------------------------------------

    def to_json(self) -> bytes:
        """The envelope's JSON line (no trailing newline), byte for byte as it came in."""
        return self._raw

    def to_dict(self) -> dict[str, Any]:
        """A fresh, deep copy of the envelope as a JSON-compatible dict.

        Every number is exact: integers of any size are ``int``, ``-0`` is ``-0.0``.
        """
        data: dict[str, Any] = load_wide(self._raw) if self._wide else orjson.loads(self._raw)
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


_ENVELOPE_BYTES: Final = _allocated(sys.getsizeof(object.__new__(AgentEventEnvelope)))


def format_rfc3339(moment: datetime) -> str:
    """Render an aware datetime the way chrono's ``AutoSi`` does (0, 3 or 6 fraction digits)."""
    if moment.tzinfo is None:
        raise InvalidEnvelopeError("timestamps must be timezone-aware")
    moment = moment.astimezone(UTC)
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
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

        ``events`` may hold envelopes as dicts (as :meth:`to_dict` writes them) or as
        :class:`AgentEventEnvelope` instances.

        Raises:
            InvalidEnvelopeError: the value is not of that shape (``turn`` an integer in
                ``0..2**64-1``, ``events`` a list, ``finished`` a bool), or an event is
                invalid.
        """
        if not isinstance(data, Mapping):
            raise InvalidEnvelopeError(
                f"a stored turn must be a mapping, not {type(data).__name__}"
            )
        try:
            turn, events, finished = data["turn"], data["events"], data["finished"]
        except KeyError as err:
            raise InvalidEnvelopeError(f"not a stored turn: no {err.args[0]!r} field") from None
        if type(turn) is not int or not 0 <= turn <= U64_MAX or type(finished) is not bool:
            raise InvalidEnvelopeError(
                "a stored turn needs an integer turn in 0..2**64-1 and a boolean finished"
            )
        if not isinstance(events, list | tuple):
            raise InvalidEnvelopeError(f"events must be a list, not {type(events).__name__}")
        return cls(
            turn,
            tuple(
                event if type(event) is AgentEventEnvelope else AgentEventEnvelope.from_dict(event)
                for event in events
            ),
            finished,
        )

    @staticmethod
    def events_of(turns: Iterable[StoredTurnEvents]) -> list[AgentEventEnvelope]:
        """Flatten turns into turn-major event order."""
        return [event for turn in turns for event in turn.events]


def _unique_pairs(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise InvalidEnvelopeError(f"envelope has the key {key[:100]!r} twice in one object")
        seen.add(key)


_UNIQUE_KEYS_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_pairs)
"""Built once: ``json.loads(..., object_pairs_hook=...)`` builds a decoder per call."""


def _reject_duplicate_keys(raw: bytes, data: Any, wide: bool) -> None:
    """Refuse a JSON text with a key twice in one object (``data`` is its exact parse).

    JSON readers disagree about ``{"type":"a","type":"b"}``: orjson and Python keep the
    last value, DuckDB's and Athena's JSON functions the first, so such a line would say
    one thing to the library and another to analytics.
    """
    if dump_exact(data, wide=wide) == raw:
        return  # a rendering never holds a key twice: raw is its own unique-key rendering
    try:
        _UNIQUE_KEYS_DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as err:
        if isinstance(err, InvalidEnvelopeError):
            raise
        raise InvalidEnvelopeError(f"envelope keys cannot be checked: {err}") from None
