"""S3EventStore behaviour that the contract alone does not pin: what is really in the bucket,
and what each operation costs in requests. Objects are read behind the store's back."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
import zstandard

from s3_eventstore import (
    AgentEventEnvelope,
    BucketNotFoundError,
    ConfigurationError,
    S3EventStore,
    StorageUnavailableError,
    TurnAlreadyFinishedError,
)
from s3_eventstore.format.manifest import MANIFEST_METADATA_KEY
from s3_eventstore.testing.conformance import make_event
from tests.conftest import all_keys

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server
    from s3_eventstore.testing.vectors import AgentSdkVectors


class OperationLog:
    """Counts HTTP requests by operation with a botocore hook of the test's own."""

    def __init__(self, client: Any) -> None:
        self.counts: Counter[str] = Counter()
        client.meta.events.register("before-send.s3", self._on_send, unique_id="test-oplog")

    def _on_send(self, event_name: str = "", **_: Any) -> None:
        self.counts[event_name.rsplit(".", 1)[-1]] += 1

    def take(self) -> dict[str, int]:
        counts = dict(self.counts)
        self.counts.clear()
        return counts


def new_store(server: EmbeddedS3Server, bucket: str, **options: Any) -> S3EventStore:
    return S3EventStore(
        bucket,
        "archive/v1",
        endpoint_url=server.endpoint_url,
        session=server.session(),
        **options,
    )


def read_object(backdoor: Any, bucket: str, key: str) -> tuple[bytes, dict[str, Any]]:
    response = backdoor.get_object(Bucket=bucket, Key=key)
    body = response["Body"].read()
    payload = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True).read()
    return payload, json.loads(response["Metadata"][MANIFEST_METADATA_KEY])


@pytest.fixture
def vectors() -> AgentSdkVectors:
    from s3_eventstore.testing import load_agent_sdk_vectors

    return load_agent_sdk_vectors()


async def test_one_object_per_finished_turn_holding_the_exact_lines(
    s3_store: S3EventStore, backdoor: Any, bucket: str, vectors: AgentSdkVectors
) -> None:
    written: dict[tuple[str, int], list[bytes]] = {}
    finished: set[tuple[str, int]] = set()
    for step in vectors.replay():
        await s3_store.append(step.thread_id, step.turn, step.envelope)
        written.setdefault((step.thread_id, step.turn), []).append(step.envelope.to_json())
        if step.finish_turn_after:
            await s3_store.finish_turn(step.thread_id, step.turn)
            finished.add((step.thread_id, step.turn))
    keys = all_keys(backdoor, bucket)
    assert sorted(keys) == sorted(s3_store.layout.turn_key(t, n) for t, n in finished)
    assert len(finished) < len(written), "the vectors leave some turns open"
    for thread_id, turn in finished:
        key = s3_store.layout.turn_key(thread_id, turn)
        assert key.startswith("archive/v1/threads/shard=")
        assert key.endswith(f"/{turn:020d}.jsonl.zst")
        payload, manifest = read_object(backdoor, bucket, key)
        lines = written[(thread_id, turn)]
        assert payload == b"".join(line + b"\n" for line in lines)
        assert manifest["thread_id"] == thread_id
        assert manifest["turn"] == turn
        assert manifest["events"] == len(lines)
        assert manifest["raw_bytes"] == len(payload)
        assert manifest["format"] == 1
        assert manifest["codec"] == "zstd"
        assert manifest["first_timestamp"] == json.loads(lines[0])["timestamp"]
        assert manifest["last_timestamp"] == json.loads(lines[-1])["timestamp"]


async def test_request_costs(s3_server: EmbeddedS3Server, bucket: str) -> None:
    async with new_store(s3_server, bucket) as writer:
        log = OperationLog(writer.client)
        for turn in range(1, 6):
            for sequence in range(10):
                await writer.append("t", turn, make_event(sequence))
            assert log.take() == {}, "append must not make requests"
            await writer.finish_turn("t", turn)
            assert log.take() == {"PutObject": 1}, "finish_turn is exactly one PUT"
        await writer.append("t", 6, make_event())  # open turn
        assert log.take() == {}

        assert await writer.event_count("t") == 51
        assert log.take() == {"ListObjectsV2": 1}, "the writer knows its manifests"
        await writer.discard_turn("t", 6)  # else close() persists it (tests/test_lifecycle.py)

    async with new_store(s3_server, bucket) as reader:
        log = OperationLog(reader.client)
        assert await reader.event_count("t") == 50
        assert log.take() == {"ListObjectsV2": 1, "HeadObject": 5}, "no event body downloaded"
        assert await reader.event_count("t") == 50
        assert log.take() == {"ListObjectsV2": 1}, "manifests are cached"

        events = await reader.get_events_since("t", 45)
        assert [e.sequence for e in events] == [5, 6, 7, 8, 9]
        assert log.take() == {"ListObjectsV2": 1, "GetObject": 1}, "only the last turn is fetched"
        assert await reader.get_events_since("t", 50) == []
        assert log.take() == {"ListObjectsV2": 1}

        turns = await reader.get_turns("t")
        assert [t.turn for t in turns] == [1, 2, 3, 4, 5]
        assert log.take() == {"ListObjectsV2": 1, "GetObject": 5}

        assert (await reader.get_turn("t", 3)) is not None
        assert log.take() == {"GetObject": 1}

        await reader.clear("t")
        assert log.take() == {"ListObjectsV2": 1, "DeleteObjects": 1}


async def test_another_store_sees_finished_turns_not_open_ones(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    first, second = make_event(0), make_event(1)
    async with new_store(s3_server, bucket) as one, new_store(s3_server, bucket) as two:
        await one.append("t", 1, first)
        await one.finish_turn("t", 1)
        await one.append("t", 2, second)
        turns = await two.get_turns("t")
        assert [(t.turn, t.events, t.finished) for t in turns] == [(1, (first,), True)]
        assert await two.get_turn("t", 2) is None
        assert [(t.turn, t.finished) for t in await one.get_turns("t")] == [(1, True), (2, False)]


async def test_loser_of_a_cross_store_race_gets_its_events_back(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    winner_event, loser_events = make_event(0), [make_event(1), make_event(2)]
    async with new_store(s3_server, bucket) as winner, new_store(s3_server, bucket) as loser:
        await winner.append("t", 1, winner_event)
        for event in loser_events:
            await loser.append("t", 1, event)  # no request: the loser cannot know yet
        await winner.finish_turn("t", 1)
        with pytest.raises(TurnAlreadyFinishedError, match="turn 1 is already finished") as info:
            await loser.finish_turn("t", 1)
        assert list(info.value.unwritten_events) == loser_events
        assert loser.open_turns() == []
        turn = await loser.get_turn("t", 1)
        assert turn is not None
        assert turn.events == (winner_event,)
    assert len(all_keys(backdoor, bucket)) == 1


@pytest.mark.slow  # 2,500 objects: over a minute on a busy 2-core machine
async def test_pagination_and_batched_delete_past_1000_objects(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    async with new_store(s3_server, bucket, read_concurrency=32) as store:
        semaphore = asyncio.Semaphore(16)

        async def finish(turn: int) -> None:
            async with semaphore:
                await store.finish_turn("big", turn)

        await asyncio.gather(*(finish(turn) for turn in range(1003)))
        log = OperationLog(store.client)
        assert await store.event_count("big") == 0
        assert log.take() == {"ListObjectsV2": 2}
        turns = await store.get_turns("big")
        assert [t.turn for t in turns] == list(range(1003))
        log.take()
        await store.clear("big")
        assert log.take() == {"ListObjectsV2": 2, "DeleteObjects": 2}
    assert all_keys(backdoor, bucket) == []


async def test_nothing_is_written_outside_the_prefix(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    backdoor.put_object(Bucket=bucket, Key="archive/v1-sibling/keep", Body=b"x")
    backdoor.put_object(Bucket=bucket, Key="elsewhere", Body=b"x")
    async with new_store(s3_server, bucket) as store:
        for thread_id in ("../../elsewhere", "a/../../b", "/", "archive/v1-sibling"):
            await store.append(thread_id, 1, make_event())
            await store.finish_turn(thread_id, 1)
            await store.clear(thread_id)
    assert sorted(all_keys(backdoor, bucket)) == ["archive/v1-sibling/keep", "elsewhere"]


def test_from_url_and_configuration_errors() -> None:
    store = S3EventStore.from_url("s3://my-bucket/some/prefix")
    assert (store.bucket, store.layout.prefix) == ("my-bucket", "some/prefix/")
    assert S3EventStore.from_url("s3://my-bucket").layout.prefix == ""
    for url in ("http://b/p", "s3:///p", "s3://b/p?x=1"):
        with pytest.raises(ConfigurationError, match="s3://bucket/prefix"):
            S3EventStore.from_url(url)
    for prefix in ("/abs", "a//b", "a/../b", "./a", "a\nb"):
        with pytest.raises(ConfigurationError):
            S3EventStore("bucket", prefix)
    for bucket in ("", "a", "has/slash", 7):
        with pytest.raises(ConfigurationError, match="bucket"):
            S3EventStore(bucket)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="zstd level"):
        S3EventStore("bucket", compression_level=0)


async def test_missing_bucket_and_unreachable_endpoint_are_typed(
    s3_server: EmbeddedS3Server,
) -> None:
    async with new_store(s3_server, "no-such-bucket-here") as store:
        await store.append("t", 1, make_event())
        with pytest.raises(BucketNotFoundError) as info:
            await store.finish_turn("t", 1)
        assert info.value.__cause__ is not None
        assert [i.turn for i in store.open_turns()] == [1], "a failed finish keeps the turn open"
        await store.discard_turn("t", 1)  # else leaving the block tries to persist it
    async with S3EventStore(
        "bucket",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        session=s3_server.session(),
        max_attempts=2,
        connect_timeout=0.5,
    ) as store:
        with pytest.raises(StorageUnavailableError):
            await store.get_turns("t")


async def test_open_turns_and_discard(s3_store: S3EventStore) -> None:
    events = [make_event(i) for i in range(3)]
    for event in events:
        await s3_store.append("t", 1, event)
    await s3_store.append("u", 7, make_event())
    infos = {(i.thread_id, i.turn): i for i in s3_store.open_turns()}
    assert set(infos) == {("t", 1), ("u", 7)}
    assert infos[("t", 1)].events == 3
    assert infos[("t", 1)].buffered_bytes == sum(e.wire_size + 1 for e in events)
    assert infos[("t", 1)].idle_seconds >= 0
    assert await s3_store.discard_turn("t", 1) == tuple(events)
    assert await s3_store.discard_turn("t", 1) == ()
    assert await s3_store.get_turn("t", 1) is None
    assert [(i.thread_id, i.turn) for i in s3_store.open_turns()] == [("u", 7)]


async def test_borrowed_client_is_not_closed(s3_server: EmbeddedS3Server, bucket: str) -> None:
    session = s3_server.session()
    async with session.client("s3", endpoint_url=s3_server.endpoint_url) as client:
        async with (
            S3EventStore(bucket, "p", client=client) as store,
            S3EventStore(bucket, "q", client=client) as other,
        ):
            await store.finish_turn("t", 1)
            await other.finish_turn("t", 1)
            await other.finish_turn("t", 2)
        assert (await client.head_bucket(Bucket=bucket))["ResponseMetadata"][
            "HTTPStatusCode"
        ] == 200
        # Each store counts its own requests, not the client's other users' (through the
        # call, as for a shared client: a hook per store, never removed from a long-lived
        # client, made every request call all of them; the lifecycle model's CPU per
        # schedule grew by half over 200 schedules).
        assert store.requests.snapshot() == {"PutObject": 1}
        assert other.requests.snapshot() == {"PutObject": 2}


def test_envelope_objects_are_plain_zstd_json_lines(tmp_path: Any) -> None:
    from s3_eventstore.format.turn import TurnCodec

    events = [AgentEventEnvelope.from_dict(make_event(i).to_dict()) for i in range(3)]
    encoded = TurnCodec().encode("t", 1, events, writer="w")
    with zstandard.ZstdDecompressor().stream_reader(encoded.body) as reader:
        assert reader.read().splitlines() == [e.to_json() for e in events]
