"""pydantic-ai message history in an :class:`EventStore` (extra ``pydantic-ai``).

::

    history = await load_history(store, "conversation-42")
    result = await agent.run("And then?", message_history=history)
    await save_run(store, "conversation-42", result)      # one turn: the run's new messages

Mapping (docs/ADAPTERS.md): each ``ModelMessage`` is one ``pydantic_ai_message`` event
holding ``ModelMessagesTypeAdapter``'s JSON of it under ``message`` (the serialisation
pydantic-ai documents for storing history); the event's timestamp is the message's
own. A run is one finished turn. From synchronous code: ``facade.call(save_run,
facade.store, thread_id, result)`` on a :class:`~s3_eventstore.sync.SyncEventStore`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pydantic
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
)
from pydantic_core import PydanticSerializationError

from s3_eventstore.adapters.journal import ThreadJournal
from s3_eventstore.adapters.mapping import PYDANTIC_AI_MESSAGE, item_record, payload_of
from s3_eventstore.errors import InvalidInputError, UnreadableItemError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from s3_eventstore.store import EventStore

__all__ = ["MessageHistory", "load_history", "save_messages", "save_run"]


async def _save_messages(journal: ThreadJournal, messages: Sequence[ModelMessage]) -> int | None:
    """Validate, map and commit ``messages`` as one turn."""
    messages = list(messages)
    for index, message in enumerate(messages):
        if not isinstance(message, ModelRequest | ModelResponse):
            raise InvalidInputError(
                f"message {index} is a {type(message).__name__}, not a pydantic-ai ModelMessage"
            )
    try:
        dumped: list[dict[str, Any]] = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    except (pydantic.ValidationError, PydanticSerializationError, TypeError) as err:
        raise InvalidInputError(f"not a list of pydantic-ai messages: {err}") from None
    records = []
    for message, data in zip(messages, dumped, strict=True):
        moment = getattr(message, "timestamp", None)
        aware = isinstance(moment, datetime) and moment.tzinfo is not None
        records.append(item_record(PYDANTIC_AI_MESSAGE, data, timestamp=moment if aware else None))
    if not records:
        return None
    return await journal.commit(records)


async def _save_run(journal: ThreadJournal, result: Any) -> int | None:
    """Commit ``result.new_messages()`` as one turn."""
    new_messages = getattr(result, "new_messages", None)
    if not callable(new_messages):
        raise InvalidInputError(f"{type(result).__name__} is not a pydantic-ai run result")
    return await _save_messages(journal, new_messages())


async def _load(journal: ThreadJournal) -> list[ModelMessage]:
    """Read and validate the thread's messages."""
    messages: list[ModelMessage] = []
    for envelope, fields in await journal.read([PYDANTIC_AI_MESSAGE]):
        data = payload_of(envelope, fields)
        try:
            messages.extend(ModelMessagesTypeAdapter.validate_python([data]))
        except pydantic.ValidationError as err:
            raise UnreadableItemError(
                f"not a pydantic-ai ModelMessage: {err.error_count()} validation error(s)",
                event_id=str(envelope.event_id),
            ) from None
    return messages


class MessageHistory:
    """One thread's pydantic-ai history, kept across runs: after the first ``load`` only
    new turns are fetched (the module functions start afresh each call).

    Args:
        store: The store.
        thread_id: The thread.

    Raises:
        InvalidThreadIdError: ``thread_id`` is not a non-empty string.
    """

    def __init__(self, store: EventStore, thread_id: str) -> None:
        self._journal = ThreadJournal(store, thread_id)
        self.thread_id = thread_id

    async def load(self) -> list[ModelMessage]:
        """See :func:`load_history`.

        Raises:
            StorageError: the store could not be read.
            IntegrityError: a stored turn failed verification.
            UnreadableItemError: a stored message does not validate as a ``ModelMessage``.
        """
        return await _load(self._journal)

    async def save_run(self, result: Any) -> int | None:
        """See :func:`save_run`.

        Raises:
            InvalidInputError: ``result`` has no ``new_messages()``.
            StorageError: the turn could not be written; nothing was written.
        """
        return await _save_run(self._journal, result)

    async def save_messages(self, messages: Sequence[ModelMessage]) -> int | None:
        """See :func:`save_messages`.

        Raises:
            InvalidInputError: an element is not a pydantic-ai ``ModelMessage``.
            StorageError: the turn could not be written; nothing was written.
        """
        return await _save_messages(self._journal, messages)


async def save_messages(
    store: EventStore, thread_id: str, messages: Sequence[ModelMessage]
) -> int | None:
    """Append ``messages`` to the thread as one finished turn; returns the turn number
    (``None`` for no messages, when nothing is written).

    Raises:
        InvalidThreadIdError: bad thread id.
        InvalidInputError: an element is not a pydantic-ai ``ModelMessage``.
        StorageError: the turn could not be written; nothing was written.
    """
    return await _save_messages(ThreadJournal(store, thread_id), messages)


async def save_run(store: EventStore, thread_id: str, result: Any) -> int | None:
    """Append a run's *new* messages (``result.new_messages()``) as one finished turn.

    Pass the loaded history as ``message_history`` to the run, so that only what the
    run added is written. Works with ``AgentRunResult`` and ``StreamedRunResult``.

    Raises:
        InvalidThreadIdError: bad thread id.
        InvalidInputError: ``result`` has no ``new_messages()``.
        StorageError: the turn could not be written; nothing was written.
    """
    return await _save_run(ThreadJournal(store, thread_id), result)


async def load_history(store: EventStore, thread_id: str) -> list[ModelMessage]:
    """The thread's messages, oldest first, ready for ``message_history=``.

    Raises:
        InvalidThreadIdError: bad thread id.
        StorageError: the store could not be read.
        IntegrityError: a stored turn failed verification.
        UnreadableItemError: a stored message does not validate as a ``ModelMessage``.
    """
    return await _load(ThreadJournal(store, thread_id))
