"""Races: writers in separate stores finishing one turn at once, and appends, finishes and
reads racing inside one store. Races are set up with events and held requests, not sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import (
    S3EventStore,
    StorageUnavailableError,
    TurnAlreadyFinishedError,
    TurnFinishedError,
)
from s3_eventstore.testing.conformance import make_event
from s3_eventstore.testing.faultproxy import FaultKind, FaultProxy, RequestInfo
from tests.conftest import all_keys
from tests.faults_fixtures import read_behind, running_proxy, store_via

if TYPE_CHECKING:
    from collections.abc import Iterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server


@pytest.fixture
def proxy(s3_server: EmbeddedS3Server) -> Iterator[FaultProxy]:
    with running_proxy(s3_server) as fault_proxy:
        yield fault_proxy


RACE_TRIALS = int(os.environ.get("S3ES_RACE_TRIALS", "50"))
"""Races of the cross-store test (CI runs fewer against SeaweedFS, where each is slower)."""
MAX_RACERS = 16


def _turn_put(info: RequestInfo) -> bool:
    return info.operation == "PutObject" and "/threads/" in info.target


async def _race(go: asyncio.Event, store: S3EventStore, thread: str, turn: int) -> None:
    await go.wait()
    await store.finish_turn(thread, turn)


@contextlib.contextmanager
def atomic_endpoint(s3_server: EmbeddedS3Server, atomic: bool) -> Iterator[str]:
    """An endpoint deciding concurrent ``If-None-Match: *`` writes of one key atomically:
    the server itself where it does (SeaweedFS, radosgw, AWS). moto checks the condition
    and stores the object in two unlocked steps, so two concurrent conditional PUTs can
    both succeed there: a proxy serialising conditional writes per key gives it S3's
    semantics."""
    if atomic:
        yield s3_server.endpoint_url
        return
    with FaultProxy(s3_server.endpoint_url, serialize_conditional_writes=True) as gateway:
        yield gateway.endpoint_url


@pytest.mark.slow  # many rounds of racing stores
async def test_cross_store_races_have_exactly_one_winner(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any, atomic_conditional_writes: bool
) -> None:
    """Up to 16 stores (own clients) finish one (thread, turn) with different content at
    once, 50 times: one object, the winner's; every loser gets its own events back."""
    rng = random.Random(4)
    with atomic_endpoint(s3_server, atomic_conditional_writes) as endpoint_url:
        async with contextlib.AsyncExitStack() as stack:
            stores = [
                await stack.enter_async_context(store_via(endpoint_url, s3_server, bucket))
                for _ in range(MAX_RACERS)
            ]
            for trial in range(RACE_TRIALS):
                racers = stores[: rng.randint(2, MAX_RACERS)]
                thread = f"race-{trial % 5}"
                written = {
                    index: [
                        make_event(n, racer=index, trial=trial) for n in range(rng.randint(0, 4))
                    ]
                    for index in range(len(racers))
                }
                for index, store in enumerate(racers):
                    for event in written[index]:
                        await store.append(thread, trial, event)
                go = asyncio.Event()
                tasks = [asyncio.create_task(_race(go, store, thread, trial)) for store in racers]
                await asyncio.sleep(0)  # every racer is now parked on `go`
                go.set()
                results = await asyncio.gather(*tasks, return_exceptions=True)
                winners = [i for i, result in enumerate(results) if result is None]
                assert len(winners) == 1, (trial, results)
                for index, result in enumerate(results):
                    if index == winners[0]:
                        continue
                    assert isinstance(result, TurnAlreadyFinishedError), result
                    assert result.unwritten_events == tuple(written[index])
                    assert (result.thread_id, result.turn) == (thread, trial)
                key = stores[0].layout.turn_key(thread, trial)
                assert read_behind(backdoor, bucket, key) == written[winners[0]]
                assert all(store.open_turns() == [] for store in racers)
    assert len(all_keys(backdoor, bucket)) == RACE_TRIALS


async def test_concurrent_appends_land_in_completion_order(
    s3_store: S3EventStore, backdoor: Any, bucket: str
) -> None:
    rng = random.Random(9)
    completed: list[Any] = []

    async def appender(n: int) -> None:
        for _ in range(rng.randint(0, 5)):
            await asyncio.sleep(0)  # interleave the tasks differently
        event = make_event(n)
        await s3_store.append("t", 0, event)
        completed.append(event)

    await asyncio.gather(*(appender(n) for n in range(200)))
    await s3_store.finish_turn("t", 0)
    (key,) = all_keys(backdoor, bucket)
    assert read_behind(backdoor, bucket, key) == completed


async def test_append_racing_a_successful_finish_is_refused_not_lost(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    async with store_via(proxy.endpoint_url, s3_server, bucket) as store:
        events = [make_event(n) for n in range(3)]
        for event in events:
            await store.append("t", 5, event)
        gate = proxy.hold_next(match=_turn_put)
        finishing = asyncio.create_task(store.finish_turn("t", 5))
        await gate.wait_arrived()  # the PUT is in flight, the turn is sealed
        late = make_event(99)
        appending = asyncio.create_task(store.append("t", 5, late))
        await asyncio.sleep(0)
        assert not appending.done()  # it waits to see how the finish ends
        gate.release()
        await finishing
        with pytest.raises(
            TurnFinishedError, match=r"^cannot append to finished turn 5 of thread 't'$"
        ):
            await appending
    (key,) = all_keys(backdoor, bucket)
    assert read_behind(backdoor, bucket, key) == events


async def test_append_racing_a_failed_finish_lands_in_the_buffer(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    async with store_via(proxy.endpoint_url, s3_server, bucket, max_attempts=1) as store:
        events = [make_event(n) for n in range(3)]
        for event in events:
            await store.append("t", 6, event)
        gate = proxy.hold_next(match=_turn_put)
        proxy.plan_next(FaultKind.RESET, count=4, match=_turn_put)  # and every retry fails
        finishing = asyncio.create_task(store.finish_turn("t", 6))
        await gate.wait_arrived()
        late = make_event(99)
        appending = asyncio.create_task(store.append("t", 6, late))
        await asyncio.sleep(0)
        assert not appending.done()
        gate.release(FaultKind.INTERNAL_ERROR)
        with pytest.raises(StorageUnavailableError):
            await finishing
        await appending
        proxy.clear_plans()
        (info,) = store.open_turns()
        assert info.events == 4
        await store.finish_turn("t", 6)
    (key,) = all_keys(backdoor, bucket)
    assert read_behind(backdoor, bucket, key) == [*events, late]


async def test_two_finishes_in_one_store_one_wins(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    async with store_via(proxy.endpoint_url, s3_server, bucket) as store:
        events = [make_event(n) for n in range(2)]
        for event in events:
            await store.append("t", 7, event)
        gate = proxy.hold_next(match=_turn_put)
        first = asyncio.create_task(store.finish_turn("t", 7))
        await gate.wait_arrived()
        second = asyncio.create_task(store.finish_turn("t", 7))
        await asyncio.sleep(0)
        assert not second.done()
        gate.release()
        await first
        with pytest.raises(TurnAlreadyFinishedError) as info:
            await second
        assert info.value.unwritten_events == ()
        # The loser writes too: what a store knows is re-checked by the conditional write.
        assert proxy.stats().requests == {"PutObject": 2, "GetObject": 1}
    (key,) = all_keys(backdoor, bucket)
    assert read_behind(backdoor, bucket, key) == events
