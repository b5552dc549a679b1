"""EventStoreSession against the real OpenAI Agents SDK: its Runner with a ScriptedModel, and
the session behaviour the SDK's own session tests expect of a Session (tests/memory/
test_session.py in openai-agents-python, restated here against this adapter)."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

import orjson
import pytest

pytest.importorskip("agents")

from agents import Agent, Runner, SessionSettings, set_tracing_disabled
from agents.memory.session import Session
from agents.testing import ScriptedModel, assistant_message

from s3_eventstore import (
    InMemoryEventStore,
    InvalidEnvelopeError,
    InvalidInputError,
    InvalidThreadIdError,
    S3EventStore,
    StorageUnavailableError,
)
from s3_eventstore.adapters.mapping import OPENAI_AGENTS_ITEM, RETRACTION
from s3_eventstore.adapters.openai_agents import EventStoreSession
from s3_eventstore.sync import LoopBoundEventStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server
    from s3_eventstore.store import EventStore

set_tracing_disabled(True)  # the SDK would otherwise try to export traces over the network


@pytest.fixture(params=["memory", "s3"])
async def store(
    request: pytest.FixtureRequest, s3_server: EmbeddedS3Server, bucket: str
) -> AsyncIterator[EventStore]:
    """The in-memory store, and an S3 store shared across loops (run_sync uses its own)."""
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    s3 = S3EventStore(
        bucket, "sessions", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    )
    shared = LoopBoundEventStore(s3)
    yield shared
    await shared.aclose()


def _run_sync_in_thread(agent: Agent[Any], text: str, **kwargs: Any) -> Any:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return Runner.run_sync(agent, text, **kwargs)
    finally:
        loop.close()


async def run_agent(method: str, agent: Agent[Any], text: str, **kwargs: Any) -> Any:
    if method == "run":
        return await Runner.run(agent, text, **kwargs)
    if method == "run_sync":
        return await asyncio.to_thread(_run_sync_in_thread, agent, text, **kwargs)
    result = Runner.run_streamed(agent, text, **kwargs)
    async for _ in result.stream_events():
        pass
    return result


def test_is_an_sdk_session() -> None:
    assert isinstance(EventStoreSession("s", InMemoryEventStore()), Session)


@pytest.mark.parametrize("method", ["run", "run_sync", "run_streamed"])
async def test_runner_keeps_history_across_runs(method: str, store: EventStore) -> None:
    session = EventStoreSession("golden-gate", store)
    model = ScriptedModel()
    agent = Agent(name="test", model=model)

    model.enqueue([assistant_message("San Francisco")])
    first = await run_agent(method, agent, "What city is the Golden Gate in?", session=session)
    assert first.final_output == "San Francisco"
    model.enqueue([assistant_message("California")])
    second = await run_agent(method, agent, "What state is it in?", session=session)
    assert second.final_output == "California"

    sent = model.calls[-1].input
    assert isinstance(sent, list)
    assert sent[0] == {"content": "What city is the Golden Gate in?", "role": "user"}
    assert len(sent) == 3  # question, answer, new question
    items = await session.get_items()
    assert [item.get("role") for item in items] == ["user", "assistant", "user", "assistant"]
    turns = await store.get_turns("golden-gate")
    assert turns
    assert all(turn.finished for turn in turns)
    assert all(e.type == OPENAI_AGENTS_ITEM for turn in turns for e in turn.events)
    # Nothing buffered is left behind: every add_items became a finished turn.
    assert sum(len(turn.events) for turn in turns) == 4


@pytest.mark.parametrize("method", ["run", "run_sync", "run_streamed"])
async def test_sessions_are_isolated(method: str, store: EventStore) -> None:
    model = ScriptedModel()
    agent = Agent(name="test", model=model)
    cats, dogs = EventStoreSession("session_1", store), EventStoreSession("session_2", store)
    model.enqueue([assistant_message("I like cats")])
    await run_agent(method, agent, "I like cats", session=cats)
    model.enqueue([assistant_message("I like dogs")])
    await run_agent(method, agent, "I like dogs", session=dogs)
    model.enqueue([assistant_message("Yes, you mentioned cats")])
    result = await run_agent(method, agent, "What did I say I like?", session=cats)
    assert result.final_output == "Yes, you mentioned cats"
    sent = model.calls[-1].input
    assert isinstance(sent, list)
    assert "dogs" not in orjson.dumps(sent).decode()


async def test_without_a_session_there_is_no_history() -> None:
    model = ScriptedModel()
    agent = Agent(name="test", model=model)
    model.enqueue([assistant_message("Hello")])
    await Runner.run(agent, "Hi there")
    model.enqueue([assistant_message("I don't remember")])
    await Runner.run(agent, "Do you remember?")
    assert len(model.calls[-1].input) == 1


async def test_add_get_clear(store: EventStore) -> None:
    session = EventStoreSession("direct", store)
    await session.add_items(
        [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there!"}]
    )
    assert await session.get_items() == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there!"},
    ]
    await session.clear_session()
    assert await session.get_items() == []
    assert await store.get_turns("direct") == []
    await session.add_items([])  # an empty batch writes nothing
    assert await store.get_turns("direct") == []


async def test_pop_item_in_order_then_none(store: EventStore) -> None:
    session = EventStoreSession("pop", store)
    assert await session.pop_item() is None
    await session.add_items(
        [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi there!"},
            {"role": "user", "content": "How are you?"},
        ]
    )
    assert await session.pop_item() == {"role": "user", "content": "How are you?"}
    assert [i["content"] for i in await session.get_items()] == ["Hello", "Hi there!"]
    assert await session.pop_item() == {"role": "assistant", "content": "Hi there!"}
    assert await session.pop_item() == {"role": "user", "content": "Hello"}
    assert await session.pop_item() is None
    assert await session.get_items() == []


async def test_pop_is_a_retraction_that_keeps_the_original_bytes(store: EventStore) -> None:
    session = EventStoreSession("audit", store)
    await session.add_items([{"role": "user", "content": "keep"}])
    await session.add_items([{"role": "user", "content": "regret"}])
    popped_event = (await store.get_turn("audit", 2)).events[0]  # type: ignore[union-attr]
    assert await session.pop_item() == {"role": "user", "content": "regret"}

    turns = await store.get_turns("audit")
    assert [t.turn for t in turns] == [1, 2, 3]
    assert turns[1].events == (popped_event,)  # the original turn is untouched
    (retraction,) = turns[2].events
    assert retraction.type == RETRACTION
    assert retraction.fields == {"retracts": [str(popped_event.event_id)], "reason": "pop_item"}
    # A new session object (another process, a restart) reads the same effective history.
    assert await EventStoreSession("audit", store).get_items() == [
        {"role": "user", "content": "keep"}
    ]
    await session.add_items([{"role": "user", "content": "after"}])
    assert [i["content"] for i in await session.get_items()] == ["keep", "after"]


async def test_pop_only_affects_its_session(store: EventStore) -> None:
    one, two = EventStoreSession("session_1", store), EventStoreSession("session_2", store)
    await one.add_items([{"role": "user", "content": "Session 1 message"}])
    await two.add_items(
        [
            {"role": "user", "content": "Session 2 message 1"},
            {"role": "user", "content": "Session 2 message 2"},
        ]
    )
    assert (await two.pop_item() or {}).get("content") == "Session 2 message 2"
    assert [i["content"] for i in await one.get_items()] == ["Session 1 message"]
    assert [i["content"] for i in await two.get_items()] == ["Session 2 message 1"]


async def test_limits_across_turns_and_settings(store: EventStore) -> None:
    session = EventStoreSession("limits", store)
    contents = ["Message 1", "Response 1", "Message 2", "Response 2", "Message 3", "Response 3"]
    items: list[Any] = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": c}
        for i, c in enumerate(contents)
    ]
    await session.add_items(items[:3])
    await session.add_items(items[3:])

    async def latest(limit: int | None) -> list[str]:
        return [i["content"] for i in await session.get_items(limit=limit)]

    assert await latest(None) == contents
    assert await latest(2) == contents[-2:]
    assert await latest(4) == contents[-4:]  # spans both turns
    assert await latest(10) == contents
    assert await latest(0) == []
    with pytest.raises(InvalidInputError):
        await session.get_items(limit=-1)

    configured = EventStoreSession("limits", store, session_settings=SessionSettings(limit=3))
    assert [i["content"] for i in await configured.get_items()] == contents[-3:]
    assert [i["content"] for i in await configured.get_items(limit=5)] == contents[-5:]


async def test_runner_honours_session_settings_limit(store: EventStore) -> None:
    session = EventStoreSession("windowed", store, session_settings=SessionSettings(limit=2))
    await session.add_items(
        [{"role": "user", "content": f"old {i}"} for i in range(5)]  # type: ignore[misc]
    )
    model = ScriptedModel()
    model.enqueue([assistant_message("ok")])
    await Runner.run(Agent(name="test", model=model), "new", session=session)
    sent = model.calls[-1].input
    assert isinstance(sent, list)
    assert [i.get("content") for i in sent] == ["old 3", "old 4", "new"]


async def test_items_round_trip_byte_for_byte(store: EventStore) -> None:
    session = EventStoreSession("lossless", store)
    item: Any = {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": "Grüße 👋 \u2028 ' OR 1=1; DROP TABLE messages; --",
        "extra": {"z": 1, "a": [1.5, 1e-7, 12345678901234567890, None, True], "ключ": "значение"},
    }
    await session.add_items([item])
    (event,) = (await store.get_turn("lossless", 1)).events  # type: ignore[union-attr]
    assert orjson.loads(event.to_json())["item"] == item
    assert orjson.dumps(orjson.loads(event.to_json())["item"]) == orjson.dumps(item)
    (back,) = await session.get_items()
    assert back == item
    assert list(back) == list(item)  # key order kept
    assert list(back["extra"]) == ["z", "a", "ключ"]


async def test_bad_items_write_nothing(store: EventStore) -> None:
    session = EventStoreSession("bad", store)
    with pytest.raises(InvalidInputError):
        await session.add_items([{"role": "user", "content": "ok"}, "not an item"])  # type: ignore[list-item]
    with pytest.raises(InvalidEnvelopeError):
        await session.add_items([{"role": "user", "content": math.nan}])  # type: ignore[misc]
    with pytest.raises(InvalidEnvelopeError):
        await session.add_items([{"role": "user", "content": math.inf}])  # type: ignore[misc]
    with pytest.raises(InvalidEnvelopeError):
        await session.add_items([{"role": "user", "content": object()}])  # type: ignore[misc]
    assert await store.get_turns("bad") == []
    await session.add_items([{"role": "user", "content": 2**70}])  # type: ignore[misc]
    assert await session.get_items() == [{"role": "user", "content": 2**70}]  # kept exactly
    with pytest.raises(InvalidThreadIdError):
        EventStoreSession("", store)
    with pytest.raises(InvalidInputError):
        EventStoreSession("x", store, clear="shred")  # type: ignore[arg-type]


async def test_clear_by_retraction_deletes_nothing(store: EventStore) -> None:
    session = EventStoreSession("worm", store, clear="retract")
    await session.add_items([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    await session.clear_session()
    assert await session.get_items() == []
    assert [t.turn for t in await store.get_turns("worm")] == [1, 2]
    await session.clear_session()  # nothing left to retract: no new turn
    assert len(await store.get_turns("worm")) == 2
    await session.add_items([{"role": "user", "content": "c"}])
    assert [i["content"] for i in await session.get_items()] == ["c"]


async def test_concurrent_add_items_lose_nothing(store: EventStore) -> None:
    sessions = [EventStoreSession("busy", store) for _ in range(4)]

    async def writer(n: int) -> None:
        await sessions[n % 4].add_items(
            [{"role": "user", "content": f"{n}-{i}"} for i in range(3)]  # type: ignore[misc]
        )

    await asyncio.gather(*(writer(n) for n in range(8)))
    turns = await store.get_turns("busy")
    assert len(turns) == 8
    assert all(t.finished for t in turns)
    for turn in turns:  # each batch is one contiguous turn
        contents = [e.fields["item"]["content"] for e in turn.events]
        n = contents[0].split("-")[0]
        assert contents == [f"{n}-{i}" for i in range(3)]


async def test_two_writers_in_two_processes_lose_nothing(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    """Two stores (two processes) pick the same turn numbers: the conditional PUT decides,
    the loser moves to the next number, every batch lands exactly once."""
    options: dict[str, Any] = {"endpoint_url": s3_server.endpoint_url}
    async with (
        S3EventStore(bucket, "p", session=s3_server.session(), **options) as first,
        S3EventStore(bucket, "p", session=s3_server.session(), **options) as second,
    ):
        a, b = EventStoreSession("shared", first), EventStoreSession("shared", second)
        await a.get_items()
        await b.get_items()  # both now believe turn 1 is next

        async def burst(session: EventStoreSession, tag: str) -> None:
            for i in range(5):
                await session.add_items([{"role": "user", "content": f"{tag}{i}"}])  # type: ignore[misc]

        await asyncio.gather(burst(a, "a"), burst(b, "b"))
        contents = [i["content"] for i in await EventStoreSession("shared", first).get_items()]
        assert sorted(contents) == sorted([f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)])
        assert [c for c in contents if c[0] == "a"] == [f"a{i}" for i in range(5)]
        assert first.open_turns() == []
        assert second.open_turns() == []


class FailingFinish(InMemoryEventStore):
    async def finish_turn(self, thread_id: str, turn: int) -> None:
        raise StorageUnavailableError("injected outage", operation="PutObject")


async def test_storage_errors_reach_the_runner_and_write_nothing() -> None:
    store = FailingFinish()
    session = EventStoreSession("down", store)
    model = ScriptedModel()
    model.enqueue([assistant_message("never stored")])
    result = Runner.run_streamed(Agent(name="test", model=model), "hi", session=session)
    with pytest.raises(StorageUnavailableError, match="injected outage"):
        async for _ in result.stream_events():
            pass
    assert await session.get_items() == []  # the open turn is not history


def test_session_settings_are_coerced_like_the_sdk_sessions() -> None:
    store = InMemoryEventStore()
    default = EventStoreSession("s", store)
    assert isinstance(default.session_settings, SessionSettings)
    assert default.session_settings.limit is None
    from_dict = EventStoreSession("s", store, session_settings={"limit": 4})  # type: ignore[arg-type]
    assert from_dict.session_settings == SessionSettings(limit=4)
    with pytest.raises(InvalidInputError, match="limitt"):
        EventStoreSession("s", store, session_settings={"limitt": 4})  # type: ignore[arg-type]
