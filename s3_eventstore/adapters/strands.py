"""strands ``SessionManager`` over an :class:`EventStore` (extra ``strands``).

::

    manager = EventStoreSessionManager("conversation-42", S3EventStore.from_url(url))
    agent = Agent(model=..., session_manager=manager)
    agent("Hello")          # one PUT when the invocation ends
    manager.close()

strands calls its session hooks synchronously, once per message. Instead of one object
per message (strands' own ``S3SessionManager``), this manager *buffers*: messages,
agent state and redactions collect in memory and are committed as **one finished turn
when the invocation ends** (``AfterInvocationEvent``; ``AfterMultiAgentInvocationEvent``
for multi-agent state), through the sync facade (:mod:`s3_eventstore.sync`).

It is strands' own :class:`RepositorySessionManager` (restore, conversation-manager
offsets, tool-use repair, redaction bookkeeping) over a :class:`SessionRepository`
whose records are envelopes (docs/ADAPTERS.md):

* ``strands_session`` ``{"session": Session.to_dict()}``
* ``strands_agent`` ``{"agent": SessionAgent.to_dict()}`` — the latest one per
  invocation (state syncs after every message are collapsed in the buffer);
* ``strands_message`` ``{"message": SessionMessage.to_dict(), "agent_id": ...}``;
* ``strands_multi_agent`` ``{"state": serialize_state(), "multi_agent_id": ...}``.

``redact_latest_message`` before the invocation ends edits the buffered message (the
unredacted text never reaches storage); after it ended, the next turn carries a
``retraction`` of the stored message plus its replacement (``"replaces"``).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strands.hooks.events import AfterInvocationEvent, AfterMultiAgentInvocationEvent
from strands.session.repository_session_manager import RepositorySessionManager
from strands.session.session_repository import SessionRepository
from strands.types.session import Session, SessionAgent, SessionMessage

from s3_eventstore.adapters.journal import ThreadJournal
from s3_eventstore.adapters.mapping import (
    EVENT_TYPES,
    STRANDS_AGENT,
    STRANDS_MESSAGE,
    STRANDS_MULTI_AGENT,
    STRANDS_SESSION,
    Record,
    item_record,
    payload_of,
    retraction_record,
)
from s3_eventstore.errors import InvalidInputError, UnreadableItemError
from s3_eventstore.store import EventStore
from s3_eventstore.sync import LoopThread, SyncEventStore

if TYPE_CHECKING:
    from strands.hooks.registry import HookRegistry
    from strands.multiagent.base import MultiAgentBase

    from s3_eventstore.envelope import AgentEventEnvelope

__all__ = ["EventStoreSessionManager"]

_TYPES = (STRANDS_SESSION, STRANDS_AGENT, STRANDS_MESSAGE, STRANDS_MULTI_AGENT)

_Key = tuple[str, ...]


@dataclass(slots=True)
class _Stored:
    """A record as it is in the archive: its payload and the event id that holds it."""

    payload: dict[str, Any]
    event_id: str


def _key_of(envelope: AgentEventEnvelope, fields: dict[str, Any]) -> tuple[_Key, dict[str, Any]]:
    payload = payload_of(envelope, fields)
    if not isinstance(payload, dict):
        raise UnreadableItemError(
            f"a {envelope.type} event must hold a JSON object", event_id=str(envelope.event_id)
        )
    try:
        if envelope.type == STRANDS_SESSION:
            return ("session",), payload
        if envelope.type == STRANDS_AGENT:
            return ("agent", str(payload["agent_id"])), payload
        if envelope.type == STRANDS_MESSAGE:
            return ("message", str(fields["agent_id"]), str(int(payload["message_id"]))), payload
        return ("multi", str(fields["multi_agent_id"])), payload
    except (KeyError, TypeError, ValueError) as err:
        raise UnreadableItemError(
            f"a {envelope.type} event lacks its key: {err}", event_id=str(envelope.event_id)
        ) from None


class EventStoreSessionManager(RepositorySessionManager, SessionRepository):
    """A strands session manager writing one turn per agent invocation.

    Args:
        session_id: The strands session id; it is the thread id in the store.
        store: A :class:`SyncEventStore`, or an async :class:`EventStore` to run on a
            private loop thread (created here, closed by :meth:`close`). Hand an S3 store
            over before its first use.
        loop_thread: With an async ``store``: the loop thread to run it on (shared with
            other facades); ``None`` starts a private one.
        **kwargs: Passed to ``RepositorySessionManager``.

    Raises:
        InvalidThreadIdError: ``session_id`` is not a non-empty string.
        StorageError: the session could not be read.
    """

    def __init__(
        self,
        session_id: str,
        store: SyncEventStore | EventStore,
        *,
        loop_thread: LoopThread | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(store, SyncEventStore):
            self._facade, self._owns_facade = store, False
        elif isinstance(store, EventStore):
            self._facade, self._owns_facade = SyncEventStore(store, loop_thread), True
        else:
            raise TypeError(f"expected an EventStore or SyncEventStore, not {type(store).__name__}")
        self._journal = ThreadJournal(self._facade.store, session_id)
        self._guard = threading.RLock()
        self._archived: dict[_Key, _Stored] | None = None
        self._pending: list[Record] = []
        self._pending_index: dict[_Key, int] = {}
        self.turns_written = 0
        """Turns this manager committed (one per invocation that changed something)."""
        super().__init__(session_id=session_id, session_repository=self, **kwargs)

    # --- lifecycle --------------------------------------------------------------------

    def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
        """strands' hooks, plus a flush when an invocation ends (after its final sync)."""
        # After* callbacks run in reverse registration order: registering the flush
        # first makes it run after the base class's final sync_agent.
        registry.add_callback(AfterInvocationEvent, self._flush_after)
        registry.add_callback(AfterMultiAgentInvocationEvent, self._flush_after)
        super().register_hooks(registry, **kwargs)

    def _flush_after(self, event: AfterInvocationEvent | AfterMultiAgentInvocationEvent) -> None:
        self.flush()

    def flush(self) -> int | None:
        """Commit everything buffered as one finished turn; returns its number (``None``
        when nothing was buffered). On failure the buffer is kept for the next flush.

        Raises:
            StorageError: the turn could not be written (nothing was).
            InvalidEnvelopeError: a record is not JSON-serialisable exactly.
            SyncFacadeError: the facade is closed.
        """
        with self._guard:
            if not self._pending:
                return None
            records = list(self._pending)
            turn = self._facade.call(self._journal.commit, records)
            archived = self._load()
            for record in records:
                if record.event_type == "retraction":
                    continue
                key = self._key_of_record(record)
                assert record.event_id is not None
                archived[key] = _Stored(
                    dict(record.fields)[_payload_field(record)], record.event_id
                )
            self._pending.clear()
            self._pending_index.clear()
            self.turns_written += 1
            return turn

    def close(self) -> None:
        """Flush, then close the facade if this manager created it.

        Raises:
            StorageError: the final flush failed (the facade is closed all the same).
        """
        try:
            self.flush()
        finally:
            if self._owns_facade:
                self._facade.close()

    # --- the buffer and the archive ---------------------------------------------------

    def _load(self) -> dict[_Key, _Stored]:
        if self._archived is None:
            archived: dict[_Key, _Stored] = {}
            positions: dict[str, int] = {}
            for envelope, fields in self._facade.call(self._journal.read, _TYPES):
                key, payload = _key_of(envelope, fields)
                if key[0] == "message":
                    # A message's index is its position in the agent's effective history.
                    # Normally that is the message_id strands gave it; two writers of one
                    # session (two processes) may both have used an index, and both turns
                    # are stored: renumbering keeps every message instead of letting one
                    # hide the other.
                    position = positions.get(key[1], 0)
                    positions[key[1]] = position + 1
                    if payload.get("message_id") != position:
                        payload = {**payload, "message_id": position}
                    key = ("message", key[1], str(position))
                archived[key] = _Stored(payload, str(envelope.event_id))
            self._archived = archived
        return self._archived

    @staticmethod
    def _key_of_record(record: Record) -> _Key:
        fields = dict(record.fields)
        payload = fields[_payload_field(record)]
        if record.event_type == STRANDS_SESSION:
            return ("session",)
        if record.event_type == STRANDS_AGENT:
            return ("agent", str(payload["agent_id"]))
        if record.event_type == STRANDS_MESSAGE:
            return ("message", str(fields["agent_id"]), str(payload["message_id"]))
        return ("multi", str(fields["multi_agent_id"]))

    def _current(self, key: _Key) -> dict[str, Any] | None:
        with self._guard:
            index = self._pending_index.get(key)
            if index is not None:
                record = self._pending[index]
                payload: dict[str, Any] = dict(record.fields)[_payload_field(record)]
                return payload
            stored = self._load().get(key)
            return None if stored is None else stored.payload

    def _buffer(self, key: _Key, event_type: str, payload: dict[str, Any], **extra: Any) -> None:
        """Buffer a record; a record with the same key still in the buffer is replaced in
        place (same event id), one already archived is retracted and replaced."""
        with self._guard:
            index = self._pending_index.get(key)
            if index is not None:
                old = self._pending[index]
                kept = {k: v for k, v in old.fields.items() if k != _payload_field(old)}
                self._pending[index] = item_record(
                    event_type, payload, event_id=old.event_id, **(kept | extra)
                )
                return
            stored = self._load().get(key)
            if stored is not None and event_type == STRANDS_MESSAGE:
                self._pending.append(retraction_record([stored.event_id], "redact"))
                extra = {**extra, "replaces": stored.event_id}
            self._pending_index[key] = len(self._pending)
            self._pending.append(
                item_record(event_type, payload, event_id=str(uuid.uuid4()), **extra)
            )

    def _check_session(self, session_id: str) -> None:
        if session_id != self.session_id:
            raise InvalidInputError(
                f"this manager serves session {self.session_id!r}, not {session_id!r}"
            )

    @property
    def pending_records(self) -> int:
        """Records buffered for the next turn."""
        return len(self._pending)

    # --- SessionRepository ------------------------------------------------------------

    def create_session(self, session: Session, **kwargs: Any) -> Session:
        """Buffer the session record.

        Raises:
            InvalidInputError: another session's id, or the session exists already.
        """
        _require(session, Session, "session")
        self._check_session(session.session_id)
        if self._current(("session",)) is not None:
            raise InvalidInputError(f"session {session.session_id!r} already exists")
        self._buffer(("session",), STRANDS_SESSION, session.to_dict())
        return session

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        """The session record, or ``None`` for a new session.

        Raises:
            InvalidInputError: another session's id.
            StorageError: the store could not be read.
        """
        self._check_session(session_id)
        payload = self._current(("session",))
        return None if payload is None else Session.from_dict(payload)

    def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Buffer a new agent record.

        Raises:
            InvalidInputError: another session's id.
        """
        self._check_session(session_id)
        _require(session_agent, SessionAgent, "session_agent")
        self._buffer(("agent", session_agent.agent_id), STRANDS_AGENT, session_agent.to_dict())

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        """The agent record, or ``None``.

        Raises:
            InvalidInputError: another session's id.
        """
        self._check_session(session_id)
        payload = self._current(("agent", agent_id))
        return None if payload is None else SessionAgent.from_dict(payload)

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Buffer the agent's new state (keeping its ``created_at``).

        Raises:
            InvalidInputError: another session's id, or an unknown agent.
        """
        _require(session_agent, SessionAgent, "session_agent")
        previous = self.read_agent(session_id, session_agent.agent_id)
        if previous is None:
            raise InvalidInputError(f"agent {session_agent.agent_id!r} does not exist")
        session_agent.created_at = previous.created_at
        self._buffer(("agent", session_agent.agent_id), STRANDS_AGENT, session_agent.to_dict())

    def create_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Buffer a message.

        Raises:
            InvalidInputError: another session's id.
        """
        self._check_session(session_id)
        _require(session_message, SessionMessage, "session_message")
        key = ("message", agent_id, str(session_message.message_id))
        self._buffer(key, STRANDS_MESSAGE, session_message.to_dict(), agent_id=agent_id)

    def read_message(
        self, session_id: str, agent_id: str, message_id: int, **kwargs: Any
    ) -> SessionMessage | None:
        """One message, or ``None``.

        Raises:
            InvalidInputError: another session's id.
        """
        self._check_session(session_id)
        payload = self._current(("message", agent_id, str(message_id)))
        return None if payload is None else SessionMessage.from_dict(payload)

    def update_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Edit a buffered message, or retract and replace an archived one.

        Raises:
            InvalidInputError: another session's id, or an unknown message.
        """
        self._check_session(session_id)
        _require(session_message, SessionMessage, "session_message")
        key = ("message", agent_id, str(session_message.message_id))
        if self._current(key) is None:
            raise InvalidInputError(f"message {session_message.message_id} does not exist")
        self._buffer(key, STRANDS_MESSAGE, session_message.to_dict(), agent_id=agent_id)

    def list_messages(
        self,
        session_id: str,
        agent_id: str,
        limit: int | None = None,
        offset: int = 0,
        **kwargs: Any,
    ) -> list[SessionMessage]:
        """The agent's messages by index, from ``offset``, at most ``limit``.

        Raises:
            InvalidInputError: another session's id.
        """
        self._check_session(session_id)
        with self._guard:
            keys = {k for k in self._load() if k[:2] == ("message", agent_id)}
            keys |= {k for k in self._pending_index if k[:2] == ("message", agent_id)}
            ordered = sorted(keys, key=lambda k: int(k[2]))
            end = None if limit is None else offset + limit
            return [
                SessionMessage.from_dict(payload)
                for key in ordered[offset:end]
                if (payload := self._current(key)) is not None
            ]

    def create_multi_agent(
        self, session_id: str, multi_agent: MultiAgentBase, **kwargs: Any
    ) -> None:
        """Buffer a multi-agent state.

        Raises:
            InvalidInputError: another session's id.
        """
        self._check_session(session_id)
        self._buffer(
            ("multi", multi_agent.id),
            STRANDS_MULTI_AGENT,
            multi_agent.serialize_state(),
            multi_agent_id=multi_agent.id,
        )

    def read_multi_agent(
        self, session_id: str, multi_agent_id: str, **kwargs: Any
    ) -> dict[str, Any] | None:
        """A multi-agent state, or ``None``.

        Raises:
            InvalidInputError: another session's id.
        """
        self._check_session(session_id)
        return self._current(("multi", multi_agent_id))

    def update_multi_agent(
        self, session_id: str, multi_agent: MultiAgentBase, **kwargs: Any
    ) -> None:
        """Buffer a multi-agent state update.

        Raises:
            InvalidInputError: another session's id.
        """
        self.create_multi_agent(session_id, multi_agent)


def _require(value: object, kind: type, what: str) -> None:
    if not isinstance(value, kind):
        raise InvalidInputError(
            f"{what} must be a strands {kind.__name__}, not {type(value).__name__}"
        )


def _payload_field(record: Record) -> str:
    return EVENT_TYPES[record.event_type][0]
