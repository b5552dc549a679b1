"""How framework items become agent-sdk envelopes, stated once (see docs/ADAPTERS.md).

Every adapter writes the same shape: one envelope per framework item, the item's own
JSON nested *unchanged* under one field, and one finished turn per batch the framework
considers complete (an ``add_items`` call, an agent invocation, a run)::

    {"event_id": <uuid4>, "sequence": <index in the turn>, "timestamp": <RFC 3339>,
     "type": "openai_agents_item", "item": {...the SDK's item, verbatim...}}

* ``type`` names the framework and the kind of record (table ``EVENT_TYPES``); the item
  keeps its own discriminators (``"type": "message"``, ``"kind": "request"``) inside,
  so no item key can collide with an envelope key.
* ``sequence`` is the position in the turn, from 0, like agent-sdk's per-run counter:
  it restarts every turn, so order by turn and position, never by sequence.
* ``timestamp`` is when the adapter recorded the item, unless the framework stamps its
  own (pydantic-ai messages): then it is that time.
* ``event_id`` is a fresh UUID v4: the handle a retraction names.

Retraction: an archive turn is immutable, so removing or rewriting an item that is
already in a finished turn is recorded by a *later* turn::

    {"type": "retraction", "retracts": ["<event_id>", ...], "reason": "pop_item"}

optionally followed, in the same turn, by the replacement item carrying
``"replaces": "<event_id>"``. :func:`replay` applies them on read: a retracted item
disappears; a replacement takes the retracted item's place. The original bytes stay
in the archive, so an auditor (or the ``events`` view) still sees what was said and
when it was withdrawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents
from s3_eventstore.errors import InvalidInputError, UnreadableItemError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

__all__ = [
    "EVENT_TYPES",
    "OPENAI_AGENTS_ITEM",
    "PYDANTIC_AI_MESSAGE",
    "RETRACTION",
    "STRANDS_AGENT",
    "STRANDS_MESSAGE",
    "STRANDS_MULTI_AGENT",
    "STRANDS_SESSION",
    "Record",
    "item_record",
    "replay",
    "retraction_record",
]

OPENAI_AGENTS_ITEM: Final = "openai_agents_item"
PYDANTIC_AI_MESSAGE: Final = "pydantic_ai_message"
STRANDS_SESSION: Final = "strands_session"
STRANDS_AGENT: Final = "strands_agent"
STRANDS_MESSAGE: Final = "strands_message"
STRANDS_MULTI_AGENT: Final = "strands_multi_agent"
RETRACTION: Final = "retraction"

EVENT_TYPES: Final[Mapping[str, tuple[str, str]]] = {
    OPENAI_AGENTS_ITEM: ("item", "one TResponseInputItem of an OpenAI Agents SDK session"),
    PYDANTIC_AI_MESSAGE: ("message", "one pydantic-ai ModelMessage (ModelMessagesTypeAdapter)"),
    STRANDS_SESSION: ("session", "the strands Session record (Session.to_dict())"),
    STRANDS_AGENT: ("agent", "a strands SessionAgent (state, conversation manager)"),
    STRANDS_MESSAGE: ("message", "a strands SessionMessage (SessionMessage.to_dict())"),
    STRANDS_MULTI_AGENT: ("state", "a strands multi-agent state (serialize_state())"),
    RETRACTION: ("retracts", "withdraws earlier events by event_id"),
}
"""Every event type the adapters write: ``type -> (payload field, what it holds)``."""


@dataclass(frozen=True, slots=True)
class Record:
    """One item before it gets its place in a turn."""

    event_type: str
    """The envelope ``type`` (a key of :data:`EVENT_TYPES`)."""
    fields: Mapping[str, Any]
    """The event's fields: the payload field, plus ``agent_id``/``replaces`` where used."""
    timestamp: datetime | str | None = None
    """The item's own time, or ``None`` for the time of writing."""
    event_id: str | None = None
    """A fixed event id (a buffered record keeps its id when edited), or ``None`` for new."""

    def envelope(self, sequence: int) -> AgentEventEnvelope:
        """The envelope of this record at position ``sequence`` of its turn.

        Raises:
            InvalidEnvelopeError: the payload is not JSON-serialisable exactly.
        """
        return AgentEventEnvelope.create(
            self.event_type,
            self.fields,
            sequence=sequence,
            event_id=self.event_id,
            timestamp=self.timestamp,
        )


def item_record(
    event_type: str,
    payload: Any,
    *,
    timestamp: datetime | str | None = None,
    event_id: str | None = None,
    **extra: Any,
) -> Record:
    """A record holding ``payload`` (the framework's JSON) under the type's payload field.

    Raises:
        InvalidInputError: ``event_type`` is not one of :data:`EVENT_TYPES`.
    """
    try:
        field_name = EVENT_TYPES[event_type][0]
    except KeyError:
        raise InvalidInputError(f"unknown adapter event type {event_type!r}") from None
    return Record(event_type, {field_name: payload, **extra}, timestamp, event_id)


def retraction_record(retracts: Sequence[str], reason: str) -> Record:
    """A record withdrawing the events ``retracts`` (event ids), for ``reason``."""
    return Record(RETRACTION, {"retracts": list(retracts), "reason": reason})


def payload_of(envelope: AgentEventEnvelope, fields: Mapping[str, Any] | None = None) -> Any:
    """The framework JSON an adapter event holds.

    Raises:
        UnreadableItemError: the event has no payload field.
    """
    data = envelope.fields if fields is None else fields
    field_name = EVENT_TYPES[envelope.type][0]
    if field_name not in data:
        raise UnreadableItemError(
            f"{envelope.type} event has no {field_name!r} field", event_id=str(envelope.event_id)
        )
    return data[field_name]


def replay(
    turns: Iterable[StoredTurnEvents], event_types: Iterable[str]
) -> list[tuple[AgentEventEnvelope, dict[str, Any]]]:
    """The effective events of ``event_types`` in a thread, oldest first, with their fields.

    Only finished turns count (an open turn is a batch still being written). Retractions
    are applied in turn order: a retracted event disappears, an event with ``replaces``
    takes the place of the one it replaces (or goes to the end if that one is unknown).
    Events of other types (agent-sdk events, another adapter's) are skipped.

    Raises:
        UnreadableItemError: a retraction is malformed.
    """
    wanted = set(event_types)
    slots: list[tuple[AgentEventEnvelope, dict[str, Any]] | None] = []
    position: dict[str, int] = {}
    retracted: dict[str, int] = {}  # event id -> the slot it left empty
    for turn in turns:
        if not turn.finished:
            continue
        for envelope in turn.events:
            if envelope.type == RETRACTION:
                for event_id in _retracted_ids(envelope):
                    index = position.pop(event_id, None)
                    if index is not None:
                        slots[index] = None
                        retracted[event_id] = index
                continue
            if envelope.type not in wanted:
                continue
            fields = envelope.fields
            event_id = str(envelope.event_id)
            replaces = fields.get("replaces")
            index = retracted.pop(replaces, None) if isinstance(replaces, str) else None
            if index is None or slots[index] is not None:
                index = len(slots)
                slots.append(None)
            slots[index] = (envelope, fields)
            position[event_id] = index
    return [slot for slot in slots if slot is not None]


def _retracted_ids(envelope: AgentEventEnvelope) -> list[str]:
    retracts = envelope.fields.get("retracts")
    if not isinstance(retracts, list) or not all(isinstance(item, str) for item in retracts):
        raise UnreadableItemError(
            "a retraction's 'retracts' must be a list of event ids", event_id=str(envelope.event_id)
        )
    return retracts
