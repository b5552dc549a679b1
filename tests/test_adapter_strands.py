"""EventStoreSessionManager driving a real strands Agent with a scripted model provider
(no network): one finished turn (one PUT) per invocation, restore, redaction."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("strands")

from strands import Agent, tool
from strands.models import Model
from strands.types.session import SessionMessage

from s3_eventstore import (
    InMemoryEventStore,
    InvalidInputError,
    S3EventStore,
    StorageUnavailableError,
)
from s3_eventstore.adapters.mapping import RETRACTION, STRANDS_MESSAGE
from s3_eventstore.adapters.strands import EventStoreSessionManager
from s3_eventstore.sync import SyncEventStore

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server


class ScriptedModel(Model):
    """A strands model provider that streams pre-scripted assistant turns.

    Each step is ``{"text": ...}``, ``{"tool": (name, id, input)}`` or
    ``{"redact_user": ..., "text": ...}`` (a guardrail that redacts the user's input).
    """

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.steps = list(steps)
        self.seen: list[list[dict[str, Any]]] = []

    def update_config(self, **model_config: Any) -> None:
        pass

    def get_config(self) -> Any:
        return {}

    async def structured_output(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        raise NotImplementedError
        yield

    async def stream(
        self, messages: Any, tool_specs: Any = None, system_prompt: Any = None, **kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        self.seen.append(json.loads(json.dumps(messages, default=str)))
        step = self.steps.pop(0)
        stop = "end_turn"
        yield {"messageStart": {"role": "assistant"}}
        if "redact_user" in step:
            yield {"redactContent": {"redactUserContentMessage": step["redact_user"]}}
            stop = "guardrail_intervened"
        if "tool" in step:
            name, tool_use_id, tool_input = step["tool"]
            yield {
                "contentBlockStart": {
                    "start": {"toolUse": {"name": name, "toolUseId": tool_use_id}}
                }
            }
            yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps(tool_input)}}}}
            yield {"contentBlockStop": {}}
            stop = "tool_use"
        else:
            yield {"contentBlockStart": {"start": {}}}
            yield {"contentBlockDelta": {"delta": {"text": step["text"]}}}
            yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": stop}}


class CountingStore(InMemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.finishes = 0
        self.fail_finish = False

    async def finish_turn(self, thread_id: str, turn: int) -> None:
        if self.fail_finish:
            raise StorageUnavailableError("injected outage", operation="PutObject")
        await super().finish_turn(thread_id, turn)
        self.finishes += 1


def plain(messages: list[Any]) -> list[Any]:
    return [{k: v for k, v in m.items() if k != "tracking_id"} for m in messages]


@pytest.fixture
def s3_store(s3_server: EmbeddedS3Server, bucket: str) -> Iterator[SyncEventStore]:
    facade = SyncEventStore(
        S3EventStore(
            bucket, "strands", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
        )
    )
    yield facade
    facade.close()


def test_one_put_per_invocation_and_restore(s3_store: SyncEventStore) -> None:
    s3 = s3_store.store
    assert isinstance(s3, S3EventStore)
    manager = EventStoreSessionManager("trip", s3_store)
    model = ScriptedModel([{"text": "Paris it is."}, {"text": "Three days."}])
    agent = Agent(model=model, session_manager=manager, callback_handler=None)
    agent.state.set("city", "Paris")

    agent("Where should I go?")
    assert s3.requests.calls["PutObject"] == 1
    agent("How long?")
    assert s3.requests.calls["PutObject"] == 2  # one PUT per invocation, not per message

    turns = s3_store.get_turns("trip")
    assert [t.turn for t in turns] == [1, 2]
    assert all(t.finished for t in turns)
    assert [e.type for e in turns[0].events] == [
        "strands_session",
        "strands_agent",
        STRANDS_MESSAGE,
        STRANDS_MESSAGE,
    ]
    assert [e.sequence for e in turns[0].events] == [0, 1, 2, 3]

    restored_model = ScriptedModel([{"text": "Welcome back."}])
    restored = Agent(
        model=restored_model,
        session_manager=EventStoreSessionManager("trip", s3_store),
        callback_handler=None,
    )
    assert plain(restored.messages) == plain(agent.messages)
    assert [m["role"] for m in restored.messages] == ["user", "assistant"] * 2
    assert restored.state.get("city") == "Paris"
    restored("Anything else?")
    assert len(restored_model.seen[0]) == 5  # the whole history went to the model


def test_tool_invocation_is_one_turn() -> None:
    store = CountingStore()

    @tool
    def weather(city: str) -> str:
        """Weather in a city."""
        assert store.finishes == 0  # mid-invocation: nothing written yet
        return f"Sunny in {city}"

    manager = EventStoreSessionManager("tools", store)
    model = ScriptedModel(
        [{"tool": ("weather", "call-1", {"city": "Oslo"})}, {"text": "It is sunny."}]
    )
    agent = Agent(model=model, tools=[weather], session_manager=manager, callback_handler=None)
    agent("Weather in Oslo?")
    assert store.finishes == 1
    (turn,) = asyncio.run(store.get_turns("tools"))
    messages = [e.fields["message"]["message"] for e in turn.events if e.type == STRANDS_MESSAGE]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert "toolUse" in messages[1]["content"][0]
    assert messages[2]["content"][0]["toolResult"]["content"][0]["text"] == "Sunny in Oslo"
    restored = Agent(
        model=ScriptedModel([]),
        tools=[weather],
        session_manager=EventStoreSessionManager("tools", store),
        callback_handler=None,
    )
    assert plain(restored.messages) == plain(agent.messages)


def test_redaction_before_the_turn_ends_edits_the_buffer() -> None:
    store = CountingStore()
    manager = EventStoreSessionManager("guarded", store)
    model = ScriptedModel([{"redact_user": "[REDACTED]", "text": "I can't help with that."}])
    agent = Agent(model=model, session_manager=manager, callback_handler=None)
    agent("my card number is 4111 1111 1111 1111")
    assert store.finishes == 1
    (turn,) = asyncio.run(store.get_turns("guarded"))
    raw = b"\n".join(e.to_json() for e in turn.events)
    assert b"4111" not in raw  # the unredacted input never reached storage
    assert not any(e.type == RETRACTION for e in turn.events)
    restored = Agent(
        model=ScriptedModel([]),
        session_manager=EventStoreSessionManager("guarded", store),
        callback_handler=None,
    )
    assert restored.messages[0]["content"] == [{"text": "[REDACTED]"}]
    assert plain(restored.messages) == plain(agent.messages)


def test_redaction_after_the_turn_ended_is_a_retraction() -> None:
    store = CountingStore()
    manager = EventStoreSessionManager("late", store)
    agent = Agent(
        model=ScriptedModel([{"text": "Noted."}]), session_manager=manager, callback_handler=None
    )
    agent("remember 1234")
    original = [
        e for e in asyncio.run(store.get_turns("late"))[0].events if e.type == STRANDS_MESSAGE
    ]
    assistant_event = original[-1]

    redacted = {"role": "assistant", "content": [{"text": "[removed]"}]}
    manager.redact_latest_message(redacted, agent)  # type: ignore[arg-type]
    assert manager.pending_records == 2  # retraction + replacement, written at the next flush
    assert manager.flush() == 2

    turns = asyncio.run(store.get_turns("late"))
    assert turns[0].events[-1] == assistant_event  # the original bytes stay
    retraction, replacement = turns[1].events
    assert retraction.type == RETRACTION
    assert retraction.fields["retracts"] == [str(assistant_event.event_id)]
    assert replacement.fields["replaces"] == str(assistant_event.event_id)
    restored = Agent(
        model=ScriptedModel([]),
        session_manager=EventStoreSessionManager("late", store),
        callback_handler=None,
    )
    assert [m["content"] for m in restored.messages] == [
        [{"text": "remember 1234"}],
        [{"text": "[removed]"}],
    ]


def test_a_failed_flush_keeps_the_buffer_and_raises_a_typed_error() -> None:
    store = CountingStore()
    manager = EventStoreSessionManager("flaky", store)
    agent = Agent(
        model=ScriptedModel([{"text": "one"}, {"text": "two"}]),
        session_manager=manager,
        callback_handler=None,
    )
    store.fail_finish = True
    with pytest.raises(StorageUnavailableError, match="injected outage"):
        agent("first")
    assert manager.pending_records > 0
    assert all(not t.finished for t in asyncio.run(store.get_turns("flaky")))
    store.fail_finish = False
    agent("second")  # the next invocation's flush carries both
    turns = [t for t in asyncio.run(store.get_turns("flaky")) if t.finished]
    assert len(turns) == 1
    texts = [
        e.fields["message"]["message"]["content"][0]["text"]
        for e in turns[0].events
        if e.type == STRANDS_MESSAGE
    ]
    assert texts == ["first", "one", "second", "two"]


def test_bytes_and_non_ascii_round_trip() -> None:
    store = CountingStore()
    manager = EventStoreSessionManager("media", store)
    Agent(model=ScriptedModel([]), session_manager=manager, callback_handler=None)
    image = bytes(range(256))
    message: Any = {
        "role": "user",
        "content": [
            {"text": "Was ist das? 🤔"},
            {"image": {"format": "png", "source": {"bytes": image}}},
        ],
    }
    manager.create_message("media", "default", SessionMessage.from_message(message, 0))
    manager.flush()
    (stored,) = manager.list_messages("media", "default")
    assert stored.message == message
    raw = asyncio.run(store.get_turns("media"))[0].events[-1].to_dict()
    encoded = raw["message"]["message"]["content"][1]["image"]["source"]["bytes"]
    assert base64.b64decode(encoded["data"]) == image  # strands' own bytes encoding

    fresh = EventStoreSessionManager("media", store)
    assert fresh.read_message("media", "default", 0).message == message  # type: ignore[union-attr]
    assert fresh.list_messages("media", "default", offset=1) == []


def test_repository_contract_errors() -> None:
    manager = EventStoreSessionManager("mine", CountingStore())
    with pytest.raises(InvalidInputError):
        manager.read_session("someone-else")
    with pytest.raises(InvalidInputError):
        manager.update_message("mine", "nobody", SessionMessage({"role": "user", "content": []}, 7))
    assert manager.read_agent("mine", "nobody") is None
    assert manager.read_multi_agent("mine", "swarm") is None


def test_multi_agent_state_is_buffered_and_restored() -> None:
    store = CountingStore()
    manager = EventStoreSessionManager("team", store)

    class Team:
        id = "swarm"

        def serialize_state(self) -> dict[str, Any]:
            return {"type": "swarm", "status": "completed", "node_history": ["a", "b"]}

    manager.create_multi_agent("team", Team())  # type: ignore[arg-type]
    manager.update_multi_agent("team", Team())  # type: ignore[arg-type]
    assert manager.flush() == 1
    fresh = EventStoreSessionManager("team", store)
    assert fresh.read_multi_agent("team", "swarm") == Team().serialize_state()


def test_wrong_record_types_are_typed_errors_and_write_nothing() -> None:
    store = CountingStore()
    manager = EventStoreSessionManager("typed", store)
    with pytest.raises(InvalidInputError):
        manager.create_message("typed", "default", {"role": "user"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        manager.create_agent("typed", "agent")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        manager.update_agent("typed", None)  # type: ignore[arg-type]
    assert manager.pending_records == 1  # only the session record strands created


def test_async_invocation_inside_the_callers_event_loop() -> None:
    """invoke_async runs the hooks on the caller's loop: the facade's own loop does the I/O."""
    store = CountingStore()
    manager = EventStoreSessionManager("async", store)
    agent = Agent(
        model=ScriptedModel([{"text": "a"}, {"text": "b"}]),
        session_manager=manager,
        callback_handler=None,
    )

    async def conversation() -> None:
        await agent.invoke_async("one")
        await agent.invoke_async("two")

    asyncio.run(conversation())
    assert store.finishes == 2
    manager.close()
    assert len(asyncio.run(store.get_turns("async"))) == 2


def test_two_processes_on_one_session_lose_no_message(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    """strands' own S3SessionManager lets two concurrent writers overwrite each other's
    message objects; here both invocations are stored and a restore sees all of them."""

    def process(reply: str) -> tuple[SyncEventStore, Agent]:
        facade = SyncEventStore(
            S3EventStore(
                bucket, "race", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
            )
        )
        manager = EventStoreSessionManager("shared", facade)
        return facade, Agent(
            model=ScriptedModel([{"text": reply}]), session_manager=manager, callback_handler=None
        )

    (first_store, first), (second_store, second) = process("A"), process("B")
    first("from one")  # both restored an empty session: both use message ids 0 and 1
    second("from two")
    restored = Agent(
        model=ScriptedModel([]),
        session_manager=EventStoreSessionManager("shared", first_store),
        callback_handler=None,
    )
    texts = [m["content"][0]["text"] for m in restored.messages]
    assert texts == ["from one", "A", "from two", "B"]
    first_store.close()
    second_store.close()
