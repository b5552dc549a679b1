"""save_run / load_history driving real pydantic-ai agents with TestModel and FunctionModel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from s3_eventstore import (
    InMemoryEventStore,
    InvalidInputError,
    InvalidThreadIdError,
    S3EventStore,
    UnreadableItemError,
)
from s3_eventstore.adapters.mapping import PYDANTIC_AI_MESSAGE
from s3_eventstore.adapters.pydantic_ai import (
    MessageHistory,
    load_history,
    save_messages,
    save_run,
)
from s3_eventstore.envelope import AgentEventEnvelope

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server
    from s3_eventstore.store import EventStore


@pytest.fixture(params=["memory", "s3"])
async def store(
    request: pytest.FixtureRequest, s3_server: EmbeddedS3Server, bucket: str
) -> AsyncIterator[EventStore]:
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    async with S3EventStore(
        bucket, "pydantic", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as s3:
        yield s3


def echo_history(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Answers with how many user prompts it has seen: proves the history reached the model."""
    prompts = [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart)
    ]
    return ModelResponse(parts=[TextPart(f"{len(prompts)}: {' | '.join(map(str, prompts))}")])


async def test_runs_continue_from_the_archive(store: EventStore) -> None:
    agent = Agent(FunctionModel(echo_history))
    first = await agent.run("Hello")
    assert await save_run(store, "chat", first) == 1
    history = await load_history(store, "chat")
    assert history == first.all_messages()

    second = await agent.run("And again", message_history=history)
    assert second.output == "2: Hello | And again"
    assert await save_run(store, "chat", second) == 2  # only the run's new messages

    turns = await store.get_turns("chat")
    assert [len(t.events) for t in turns] == [2, 2]
    assert all(e.type == PYDANTIC_AI_MESSAGE for t in turns for e in t.events)
    assert await load_history(store, "chat") == second.all_messages()


async def test_tool_calls_and_exact_round_trip(store: EventStore) -> None:
    agent = Agent(TestModel())

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    result = await agent.run("Add some numbers, bitte — 🙂")
    await save_run(store, "tools", result)
    loaded = await load_history(store, "tools")
    assert loaded == result.all_messages()
    assert ModelMessagesTypeAdapter.dump_json(loaded) == ModelMessagesTypeAdapter.dump_json(
        result.all_messages()
    )
    kinds = [m.kind for m in loaded]
    assert kinds == ["request", "response", "request", "response"]
    (turn,) = await store.get_turns("tools")
    for message, event in zip(result.all_messages(), turn.events, strict=True):
        assert event.timestamp.startswith(message.timestamp.strftime("%Y-%m-%dT%H:%M:%S"))  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["memory", "s3"])
def test_sync_code_path(kind: str, s3_server: EmbeddedS3Server, bucket: str) -> None:
    """run_sync plus the helpers from synchronous code, through the sync facade."""
    from s3_eventstore.sync import SyncEventStore

    inner: EventStore = InMemoryEventStore()
    if kind == "s3":
        inner = S3EventStore(
            bucket, "sync", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
        )
    with SyncEventStore(inner) as facade:
        agent = Agent(TestModel(custom_output_text="fine"))
        result = agent.run_sync("hi")
        assert facade.call(save_run, facade.store, "sync", result) == 1
        history = facade.call(load_history, facade.store, "sync")
        assert history == result.all_messages()
        again = agent.run_sync("again", message_history=history)
        assert facade.call(save_run, facade.store, "sync", again) == 2
        assert facade.call(load_history, facade.store, "sync") == again.all_messages()


async def test_empty_and_bad_input(store: EventStore) -> None:
    assert await save_messages(store, "empty", []) is None
    assert await store.get_turns("empty") == []
    assert await load_history(store, "never-written") == []
    with pytest.raises(InvalidInputError):
        await save_run(store, "bad", object())
    with pytest.raises(InvalidInputError):
        await save_messages(store, "bad", ["not a message"])  # type: ignore[list-item]
    with pytest.raises(InvalidThreadIdError):
        await load_history(store, "")
    assert await store.get_turns("bad") == []


async def test_a_foreign_payload_is_a_typed_error(store: EventStore) -> None:
    bogus = AgentEventEnvelope.create(PYDANTIC_AI_MESSAGE, {"message": {"kind": "??"}}, sequence=0)
    await store.append("odd", 1, bogus)
    await store.finish_turn("odd", 1)
    with pytest.raises(UnreadableItemError) as info:
        await load_history(store, "odd")
    assert info.value.event_id == str(bogus.event_id)


def test_message_order_survives_many_turns() -> None:
    import asyncio

    async def scenario() -> list[Any]:
        store = InMemoryEventStore()
        agent = Agent(FunctionModel(echo_history))
        history: list[ModelMessage] = []
        for n in range(5):
            result = await agent.run(f"q{n}", message_history=history)
            await save_run(store, "long", result)
            history = await load_history(store, "long")
        return history

    history = asyncio.run(scenario())
    assert len(history) == 10
    last = history[-1]
    assert isinstance(last, ModelResponse)
    assert last.parts[0].content == "5: q0 | q1 | q2 | q3 | q4"  # type: ignore[union-attr]


async def test_message_history_object_reads_only_new_turns(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    async with S3EventStore(
        bucket, "incremental", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as store:
        history = MessageHistory(store, "chat")
        agent = Agent(FunctionModel(echo_history))
        for n in range(4):
            result = await agent.run(f"q{n}", message_history=await history.load())
            await history.save_run(result)
        store.requests.reset()
        messages = await history.load()
        assert len(messages) == 8
        assert store.requests.calls["GetObject"] == 2  # newest kept turn + the next number
        store.requests.reset()
        assert messages == await load_history(store, "chat")  # same as a fresh full read
        assert store.requests.calls["GetObject"] == 4  # one per turn
