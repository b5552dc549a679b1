"""The mapping every adapter shares: records, retractions applied on read, the commit
protocol, and the analytics view over threads written by the adapters."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import (
    AgentEventEnvelope,
    InMemoryEventStore,
    InvalidInputError,
    S3EventStore,
    StorageUnavailableError,
    StoredTurnEvents,
    TurnAlreadyFinishedError,
    UnreadableItemError,
)
from s3_eventstore.adapters.journal import MAX_COMMIT_ATTEMPTS, ThreadJournal
from s3_eventstore.adapters.mapping import (
    EVENT_TYPES,
    OPENAI_AGENTS_ITEM,
    RETRACTION,
    item_record,
    replay,
    retraction_record,
)
from tests.archive_fixtures import cli_env

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server

__all__ = ["cli_env"]


def item(content: str, **extra: Any) -> AgentEventEnvelope:
    return item_record(OPENAI_AGENTS_ITEM, {"content": content}, **extra).envelope(0)


def turn(number: int, *events: AgentEventEnvelope, finished: bool = True) -> StoredTurnEvents:
    return StoredTurnEvents(number, events, finished)


def contents(turns: list[StoredTurnEvents]) -> list[str]:
    return [fields["item"]["content"] for _, fields in replay(turns, [OPENAI_AGENTS_ITEM])]


def retract(*events: AgentEventEnvelope) -> AgentEventEnvelope:
    return retraction_record([str(e.event_id) for e in events], "test").envelope(0)


def test_replay_applies_retractions_and_replacements_in_turn_order() -> None:
    a, b, c = item("a"), item("b"), item("c")
    b2 = item("b2", replaces=str(b.event_id))
    assert contents([turn(1, a, b), turn(2, c)]) == ["a", "b", "c"]
    assert contents([turn(1, a, b), turn(2, c), turn(3, retract(b))]) == ["a", "c"]
    assert contents([turn(1, a, b, c), turn(2, retract(b), b2)]) == ["a", "b2", "c"]
    # retracting the replacement, twice, or an unknown id: idempotent, nothing else moves
    unknown = item("never stored")
    history = [turn(1, a, b, c), turn(2, retract(b), b2), turn(3, retract(b2, b2, unknown))]
    assert contents(history) == ["a", "c"]
    # a replacement whose original is unknown goes to the end
    orphan = item("orphan", replaces=str(unknown.event_id))
    assert contents([turn(1, a), turn(2, orphan)]) == ["a", "orphan"]


def test_replay_skips_open_turns_and_foreign_events() -> None:
    a, b = item("a"), item("b")
    sdk_event = AgentEventEnvelope.create("text", {"message_id": "m", "text": "t"}, sequence=0)
    assert contents([turn(1, a, sdk_event), turn(2, b, finished=False)]) == ["a"]
    # a retraction in an open turn is not applied either: the batch is not committed
    assert contents([turn(1, a), turn(2, retract(a), finished=False)]) == ["a"]


@pytest.mark.parametrize(
    "fields",
    [{}, {"retracts": "id"}, {"retracts": [1]}, {"retracts": None}],
)
def test_a_malformed_retraction_is_a_typed_error(fields: dict[str, Any]) -> None:
    bad = AgentEventEnvelope.create(RETRACTION, fields, sequence=0)
    with pytest.raises(UnreadableItemError) as info:
        replay([turn(1, item("a"), bad)], [OPENAI_AGENTS_ITEM])
    assert info.value.event_id == str(bad.event_id)


def test_records_and_their_envelopes() -> None:
    with pytest.raises(InvalidInputError):
        item_record("made_up_type", {})
    record = item_record(OPENAI_AGENTS_ITEM, {"role": "user"}, timestamp="2025-06-01T12:00:00Z")
    envelope = record.envelope(4)
    assert envelope.to_dict() == {
        "event_id": str(envelope.event_id),
        "sequence": 4,
        "timestamp": "2025-06-01T12:00:00Z",
        "type": "openai_agents_item",
        "item": {"role": "user"},
    }
    assert set(EVENT_TYPES) >= {OPENAI_AGENTS_ITEM, RETRACTION}
    assert retraction_record(["x"], "why").fields == {"retracts": ["x"], "reason": "why"}


class FinishFails(InMemoryEventStore):
    def __init__(self, error: Exception, times: int) -> None:
        super().__init__()
        self.error, self.times = error, times

    async def finish_turn(self, thread_id: str, turn: int) -> None:
        if self.times > 0:
            self.times -= 1
            raise self.error
        await super().finish_turn(thread_id, turn)


async def test_commit_is_all_or_nothing() -> None:
    store = FinishFails(StorageUnavailableError("down"), times=1)
    journal = ThreadJournal(store, "t")
    with pytest.raises(StorageUnavailableError):
        await journal.commit([item_record(OPENAI_AGENTS_ITEM, {"content": "lost"})])
    assert await journal.read([OPENAI_AGENTS_ITEM]) == []  # the open turn is not history
    assert await journal.commit([item_record(OPENAI_AGENTS_ITEM, {"content": "kept"})]) == 2
    assert [f["item"]["content"] for _, f in await journal.read([OPENAI_AGENTS_ITEM])] == ["kept"]


async def test_commit_gives_up_after_losing_every_race() -> None:
    store = FinishFails(TurnAlreadyFinishedError("t", 0), times=MAX_COMMIT_ATTEMPTS)
    with pytest.raises(TurnAlreadyFinishedError):
        await ThreadJournal(store, "t").commit([item_record(OPENAI_AGENTS_ITEM, {})])


async def test_failed_commit_discards_the_s3_buffer(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    class FailingPut(S3EventStore):
        async def finish_turn(self, thread_id: str, turn: int) -> None:
            raise StorageUnavailableError("injected")

    async with FailingPut(
        bucket, "p", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as store:
        with pytest.raises(StorageUnavailableError):
            await ThreadJournal(store, "t").commit([item_record(OPENAI_AGENTS_ITEM, {})])
        assert store.open_turns() == []
        assert store.buffered_bytes == 0


@pytest.mark.usefixtures("cli_env")
def test_adapter_threads_are_queryable_in_the_events_view(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    """One archive, three frameworks: DuckDB's events view reads every adapter's thread."""
    pytest.importorskip("duckdb")
    pytest.importorskip("duckdb_extension_httpfs")
    pytest.importorskip("agents")
    pytest.importorskip("strands")
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent as PydanticAgent
    from pydantic_ai.models.test import TestModel
    from strands.types.session import SessionMessage

    from s3_eventstore.adapters.openai_agents import EventStoreSession
    from s3_eventstore.adapters.pydantic_ai import save_run
    from s3_eventstore.adapters.strands import EventStoreSessionManager
    from s3_eventstore.ops import analytics
    from s3_eventstore.sync import SyncEventStore

    def s3() -> S3EventStore:
        return S3EventStore(
            bucket, "mixed", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
        )

    async def write_async() -> None:
        async with s3() as store:
            session = EventStoreSession("oa-thread", store)
            await session.add_items([{"role": "user", "content": "Bonjour"}])  # type: ignore[list-item]
            await session.add_items([{"role": "assistant", "content": "Salut"}])  # type: ignore[list-item]
            await session.pop_item()
            result = await PydanticAgent(TestModel(custom_output_text="ok")).run("hi")
            await save_run(store, "pai-thread", result)

    asyncio.run(write_async())
    with SyncEventStore(s3()) as facade:
        manager = EventStoreSessionManager("strands-thread", facade)
        manager.create_agent("strands-thread", _agent_record())
        message: Any = {"role": "user", "content": [{"text": "Hallo"}]}
        manager.create_message("strands-thread", "default", SessionMessage.from_message(message, 0))
        manager.flush()

    con = analytics.connect(f"s3://{bucket}/mixed", endpoint_url=s3_server.endpoint_url)
    rows = con.sql(
        "SELECT thread_id, turn, type, count(*) FROM events GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert rows == [
        ("oa-thread", 1, "openai_agents_item", 1),
        ("oa-thread", 2, "openai_agents_item", 1),
        ("oa-thread", 3, "retraction", 1),
        ("pai-thread", 1, "pydantic_ai_message", 2),
        ("strands-thread", 1, "strands_agent", 1),
        ("strands-thread", 1, "strands_message", 1),
        ("strands-thread", 1, "strands_session", 1),
    ]
    said = con.sql(
        "SELECT event->'item'->>'content' FROM events WHERE type = 'openai_agents_item' "
        "AND event_id NOT IN (SELECT unnest(from_json(event->'retracts', '[\"VARCHAR\"]')) "
        "FROM events WHERE type = 'retraction') ORDER BY turn"
    ).fetchall()
    assert said == [("Bonjour",)]  # the effective history, in SQL
    kinds = con.sql(
        "SELECT event->'message'->>'kind' FROM events WHERE type = 'pydantic_ai_message' "
        "ORDER BY sequence"
    ).fetchall()
    assert kinds == [("request",), ("response",)]
    text = con.sql(
        "SELECT event->'message'->'message'->'content'->0->>'text' FROM events "
        "WHERE type = 'strands_message'"
    ).fetchall()
    assert text == [("Hallo",)]


def _agent_record() -> Any:
    from strands.types.session import SessionAgent

    return SessionAgent(agent_id="default", state={"k": 1}, conversation_manager_state={})


async def test_incremental_reads_see_what_others_did() -> None:
    """Each journal keeps finished turns; later reads must still see other writers'
    commits, a clear, and a clear followed by a rewrite."""
    store = InMemoryEventStore()
    mine, theirs = ThreadJournal(store, "t"), ThreadJournal(store, "t")

    async def seen(journal: ThreadJournal) -> list[str]:
        return [f["item"]["content"] for _, f in await journal.read([OPENAI_AGENTS_ITEM])]

    def batch(*contents: str) -> list[Any]:
        return [item_record(OPENAI_AGENTS_ITEM, {"content": c}) for c in contents]

    await mine.commit(batch("a"))
    assert await seen(mine) == ["a"]
    await theirs.commit(batch("b", "c"))
    assert await seen(mine) == ["a", "b", "c"]
    await theirs.clear()
    assert await seen(mine) == []
    await theirs.commit(batch("x"))
    await theirs.commit(batch("y"))
    await theirs.commit(batch("z"))  # the rewrite reaches past what `mine` had kept
    assert await seen(mine) == ["x", "y", "z"]
    await store.append("t", 4, item("open"))  # a turn still open is skipped, then seen
    await theirs.turns()  # a writer that knows of the open turn commits past it
    await theirs.commit(batch("after-open"))
    assert await seen(mine) == ["x", "y", "z", "after-open"]
    await store.finish_turn("t", 4)
    assert await seen(mine) == ["x", "y", "z", "open", "after-open"]


async def test_a_failed_commit_leaves_no_gap_for_readers(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    """Readers find new turns by number, so a failed commit's number is used again."""

    class FlakyPut(S3EventStore):
        fail = 0

        async def finish_turn(self, thread_id: str, turn: int) -> None:
            if self.fail:
                self.fail -= 1
                raise StorageUnavailableError("injected")
            await super().finish_turn(thread_id, turn)

    options: dict[str, Any] = {"endpoint_url": s3_server.endpoint_url}
    async with (
        FlakyPut(bucket, "gap", session=s3_server.session(), **options) as writer_store,
        S3EventStore(bucket, "gap", session=s3_server.session(), **options) as reader_store,
    ):
        writer, reader = ThreadJournal(writer_store, "t"), ThreadJournal(reader_store, "t")
        assert await writer.commit([item_record(OPENAI_AGENTS_ITEM, {"content": "1"})]) == 1
        assert len(await reader.read([OPENAI_AGENTS_ITEM])) == 1
        writer_store.fail = 1
        with pytest.raises(StorageUnavailableError):
            await writer.commit([item_record(OPENAI_AGENTS_ITEM, {"content": "lost"})])
        assert await writer.commit([item_record(OPENAI_AGENTS_ITEM, {"content": "2"})]) == 2
        contents = [f["item"]["content"] for _, f in await reader.read([OPENAI_AGENTS_ITEM])]
        assert contents == ["1", "2"]


async def test_reads_fetch_only_new_turns(s3_server: EmbeddedS3Server, bucket: str) -> None:
    async with S3EventStore(
        bucket, "cost", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as store:
        journal = ThreadJournal(store, "t")
        for n in range(8):
            await journal.commit([item_record(OPENAI_AGENTS_ITEM, {"content": str(n)})])
        await journal.read([OPENAI_AGENTS_ITEM])
        store.requests.reset()
        assert len(await journal.read([OPENAI_AGENTS_ITEM])) == 8
        # the newest kept turn (still there?) and the next number (nothing): not 8 GETs
        assert store.requests.calls["GetObject"] == 2
        fresh = ThreadJournal(store, "t")
        store.requests.reset()
        assert len(await fresh.read([OPENAI_AGENTS_ITEM])) == 8
        assert store.requests.calls["GetObject"] == 8  # a first read is a full read
