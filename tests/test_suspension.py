"""The turn-key write protocol (FORMAT.md 11.4) against an in-memory key: merges, lost
responses (rule L), own finishes (rule O), refusals, clears. No server needed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from s3_eventstore.errors import (
    PreconditionFailedError,
    StorageError,
    StorageUnavailableError,
    TurnAlreadyFinishedError,
)
from s3_eventstore.s3.suspension import KeyState, Persistence, WriteMode, unlanded, write_turn
from s3_eventstore.testing.conformance import make_event

if TYPE_CHECKING:
    from collections.abc import Sequence

    from s3_eventstore.envelope import AgentEventEnvelope

_etags = itertools.count()


@dataclass
class FakeKey:
    """One S3 key with atomic conditional PUTs; ``lose_next`` applies a PUT and then
    reports a network failure (the response was lost); ``fail_next`` fails before it."""

    state: KeyState = field(default_factory=lambda: KeyState("absent"))
    lose_next: int = 0
    fail_next: int = 0
    puts: int = 0
    reads: int = 0

    async def put(
        self,
        events: Sequence[AgentEventEnvelope],
        writer: str,
        if_match: str | None,
        mode: WriteMode,
    ) -> str:
        self.puts += 1
        if self.fail_next:
            self.fail_next -= 1
            raise StorageUnavailableError("reset", operation="PutObject")
        if if_match is None and self.state.kind != "absent":
            raise PreconditionFailedError("412", operation="PutObject")
        if if_match is not None and self.state.kind == "absent":
            raise StorageError("404", operation="PutObject", code="NoSuchKey")
        if if_match is not None and self.state.etag != if_match:
            raise PreconditionFailedError("412", operation="PutObject")
        etag = f"e{next(_etags)}"
        self.state = KeyState(mode, tuple(events), etag, writer)
        if self.lose_next:
            self.lose_next -= 1
            raise StorageUnavailableError("response lost", operation="PutObject")
        return etag

    async def read(self) -> KeyState:
        self.reads += 1
        return self.state


class Writer:
    """One store's view of one open turn."""

    def __init__(self, key: FakeKey) -> None:
        self.key = key
        self.persistence = Persistence()
        self.buffer: list[AgentEventEnvelope] = []

    def append(self, *events: AgentEventEnvelope) -> None:
        self.buffer.extend(events)

    def _drop(self, count: int) -> None:
        del self.buffer[:count]

    async def write(self, mode: WriteMode) -> None:
        async def put(
            events: Sequence[AgentEventEnvelope], writer: str, if_match: str | None
        ) -> str:
            return await self.key.put(events, writer, if_match, mode)

        result = await write_turn(
            self.persistence,
            mode,
            pending=lambda: self.buffer,
            drop=self._drop,
            put=put,
            read_key=self.key.read,
            thread_id="t",
            turn=1,
            key="k",
        )
        self._drop(result.written)


E = [make_event(n) for n in range(10)]


async def test_nobody_suspends_one_put() -> None:
    key = FakeKey()
    writer = Writer(key)
    writer.append(*E[:3])
    await writer.write("finished")
    assert (key.state.kind, key.state.events, key.puts, key.reads) == (
        "finished",
        tuple(E[:3]),
        1,
        0,
    )


async def test_flushes_then_a_resumer_merges_and_finishes() -> None:
    key = FakeKey()
    first = Writer(key)
    first.append(E[0], E[1])
    await first.write("open")
    first.append(E[2])
    await first.write("open")
    assert (key.state.kind, key.state.events, key.puts) == ("open", tuple(E[:3]), 2)
    second = Writer(key)
    second.append(E[3])
    await second.write("finished")
    assert (key.state.kind, key.state.events) == ("finished", tuple(E[:4]))
    assert (key.puts, key.reads) == (4, 1), "the resumer: 412, GET, PUT"


async def test_a_stale_writer_is_refused_with_its_unwritten_events() -> None:
    key = FakeKey()
    stale, finisher = Writer(key), Writer(key)
    stale.append(E[0])
    await stale.write("open")
    finisher.append(E[1])
    await finisher.write("finished")
    stale.append(E[2])
    for mode in ("open", "finished"):
        with pytest.raises(TurnAlreadyFinishedError) as info:
            await stale.write(mode)  # type: ignore[arg-type]
        assert info.value.unwritten_events == (E[2],)
    assert key.state.events == (E[0], E[1])


@pytest.mark.parametrize("mode", ["open", "finished"])
async def test_a_lost_response_is_recognised_and_nothing_is_written_twice(mode: WriteMode) -> None:
    key = FakeKey()
    writer = Writer(key)
    writer.append(E[0])
    await writer.write("open")
    writer.append(E[1], E[2])
    key.lose_next = 1
    with pytest.raises(StorageUnavailableError):
        await writer.write(mode)
    assert writer.persistence.uncertain
    if mode == "open":
        writer.append(E[3])
    await writer.write(mode)
    expected = (E[0], E[1], E[2]) + ((E[3],) if mode == "open" else ())
    assert key.state.events == expected
    assert writer.buffer == []


async def test_a_lost_flush_under_another_writer_s_merge_is_still_recognised() -> None:
    key = FakeKey()
    mine, other = Writer(key), Writer(key)
    mine.append(E[0])
    key.lose_next = 1
    with pytest.raises(StorageUnavailableError):
        await mine.write("open")  # landed, unheard
    other.append(E[1])
    await other.write("open")  # merges on top of it
    await mine.write("finished")
    assert key.state.events == (E[0], E[1])


async def test_a_write_that_never_left_is_simply_written_again() -> None:
    key = FakeKey()
    writer = Writer(key)
    writer.append(E[0])
    key.fail_next = 1
    with pytest.raises(StorageUnavailableError):
        await writer.write("finished")
    await writer.write("finished")
    assert key.state.events == (E[0],)


async def test_a_cleared_key_starts_over() -> None:
    key = FakeKey()
    writer = Writer(key)
    writer.append(E[0])
    await writer.write("open")
    key.state = KeyState("absent")  # another store cleared the thread
    writer.append(E[1])
    await writer.write("open")
    assert key.state.events == (E[1],)


async def test_own_finish_after_a_timeout_succeeds_once_and_later_appends_are_unwritten() -> None:
    key = FakeKey()
    writer = Writer(key)
    writer.append(E[0])
    key.lose_next = 1
    with pytest.raises(StorageUnavailableError):
        await writer.write("finished")
    await writer.write("finished")  # rule O
    assert writer.persistence.own_finished
    assert key.state.events == (E[0],)


async def test_a_stub_of_this_store_s_finish_counts_as_its_own() -> None:
    key = FakeKey()
    writer = Writer(key)
    writer.append(E[0])
    key.lose_next = 1
    with pytest.raises(StorageUnavailableError):
        await writer.write("finished")
    state = key.state
    key.state = KeyState("stub", state.events, "stub-etag", state.writer)  # compacted
    await writer.write("finished")
    other = Writer(key)
    with pytest.raises(TurnAlreadyFinishedError):
        await other.write("finished")


def test_unlanded_needs_the_base_and_an_attempt() -> None:
    persistence = Persistence(base=(E[0],))
    assert unlanded((E[0], E[1]), persistence, [E[1]]) == 0, "no attempt was made"
