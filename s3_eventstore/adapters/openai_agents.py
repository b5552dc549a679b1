"""OpenAI Agents SDK ``Session`` over an :class:`EventStore` (extra ``openai-agents``).

::

    session = EventStoreSession("conversation-42", store)
    result = await Runner.run(agent, "Hello", session=session)

Mapping (docs/ADAPTERS.md): each ``TResponseInputItem`` is one ``openai_agents_item``
event holding the item verbatim under ``item``; each ``add_items`` call is one finished
turn (with the S3 store: one PUT, all or nothing). ``pop_item`` cannot edit a finished
turn, so it commits a turn holding one ``retraction`` of the newest item; reads apply it.
``clear_session`` deletes the thread (``store.clear``), or, with ``clear="retract"``,
retracts every item instead so that nothing is deleted (for Object Lock archives).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

from agents.memory.session_settings import (
    SessionSettings,
    coerce_session_settings,
    resolve_session_limit,
)

from s3_eventstore.adapters.journal import ThreadJournal
from s3_eventstore.adapters.mapping import (
    OPENAI_AGENTS_ITEM,
    item_record,
    payload_of,
    retraction_record,
)
from s3_eventstore.errors import InvalidInputError, UnreadableItemError

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

    from s3_eventstore.envelope import AgentEventEnvelope
    from s3_eventstore.store import EventStore

__all__ = ["EventStoreSession"]


class EventStoreSession:
    """An ``agents.memory.Session`` whose history is one thread of an :class:`EventStore`.

    Args:
        session_id: The session id; it is the thread id in the store.
        store: The store. For ``Runner.run_sync`` (a new event loop per call) wrap an S3
            store in :class:`~s3_eventstore.sync.LoopBoundEventStore`.
        session_settings: The SDK's settings, or a dict of them (``limit`` applies to
            ``get_items``); ``None`` for the defaults.
        clear: ``"delete"`` (default): ``clear_session`` deletes the thread's objects;
            ``"retract"``: it commits a retraction of every item and deletes nothing.

    Raises:
        InvalidThreadIdError: ``session_id`` is not a non-empty string.
        InvalidInputError: ``clear`` is neither ``"delete"`` nor ``"retract"``, or
            ``session_settings`` has unknown or invalid fields.
    """

    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        store: EventStore,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        clear: Literal["delete", "retract"] = "delete",
    ) -> None:
        if clear not in ("delete", "retract"):
            raise InvalidInputError(f"clear must be 'delete' or 'retract', not {clear!r}")
        try:
            settings = (
                SessionSettings()
                if session_settings is None
                else coerce_session_settings(session_settings)
            )
        except (TypeError, ValueError) as err:
            raise InvalidInputError(f"bad session_settings: {err}") from None
        self._journal = ThreadJournal(store, session_id)
        self.session_id = session_id
        self.session_settings = settings
        self.clear_mode = clear

    async def _items(self) -> list[tuple[AgentEventEnvelope, TResponseInputItem]]:
        items: list[tuple[AgentEventEnvelope, TResponseInputItem]] = []
        for envelope, fields in await self._journal.read([OPENAI_AGENTS_ITEM]):
            item = payload_of(envelope, fields)
            if not isinstance(item, dict):
                raise UnreadableItemError(
                    "an openai_agents_item must hold a JSON object", event_id=str(envelope.event_id)
                )
            items.append((envelope, cast("TResponseInputItem", item)))
        return items

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The session's items, oldest first; with ``limit``, the newest ``limit`` of them.

        Raises:
            InvalidInputError: ``limit`` is not a non-negative int.
            StorageError: the store could not be read.
            IntegrityError: a stored turn failed verification.
            UnreadableItemError: an item event does not hold a JSON object.
        """
        limit = resolve_session_limit(limit, self.session_settings)
        if limit is not None and (type(limit) is not int or limit < 0):
            raise InvalidInputError(f"limit must be a non-negative int or None, not {limit!r}")
        if limit == 0:
            return []
        items = [item for _, item in await self._items()]
        return items if limit is None else items[-limit:]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` as one finished turn (nothing for an empty list).

        Raises:
            InvalidInputError: an item is not a JSON object; nothing was written.
            InvalidEnvelopeError: an item cannot be written as JSON exactly (NaN,
                infinity, a non-JSON value); nothing was written.
            StorageError: the turn could not be written; nothing was written.
        """
        records = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidInputError(
                    f"item {index} is a {type(item).__name__}, not a JSON object (dict)"
                )
            records.append(item_record(OPENAI_AGENTS_ITEM, item))
        if records:
            await self._journal.commit(records)

    async def pop_item(self) -> TResponseInputItem | None:
        """Withdraw the newest item and return it; ``None`` when the session is empty.

        The item stays in the archive; a new turn records its retraction.

        Raises:
            StorageError: the store could not be read or written.
            IntegrityError: a stored turn failed verification.
        """
        async with self._journal.lock():
            items = await self._items()
            if not items:
                return None
            envelope, item = items[-1]
            await self._journal.commit(
                [retraction_record([str(envelope.event_id)], "pop_item")], locked=True
            )
            return item

    async def clear_session(self) -> None:
        """Remove every item: delete the thread, or retract all items (``clear="retract"``).

        Raises:
            StorageError: the store could not be read or written (``ObjectLockedError``
                when retention forbids deleting: use ``clear="retract"``).
        """
        if self.clear_mode == "delete":
            await self._journal.clear()
            return
        async with self._journal.lock():
            items = await self._items()
            if items:
                ids = [str(envelope.event_id) for envelope, _ in items]
                await self._journal.commit([retraction_record(ids, "clear_session")], locked=True)

    def __repr__(self) -> str:
        return f"EventStoreSession(session_id={self.session_id!r})"
