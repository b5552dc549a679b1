"""Looking at an archive from outside: listings stream page by page, manifests by HEAD."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import AgentEventEnvelope, CorruptObjectError
from s3_eventstore.demo.workload import WorkloadSpec
from s3_eventstore.format.keys import KeyLayout
from s3_eventstore.format.stream import TurnStreamEncoder
from s3_eventstore.ops import catalog as archive
from tests.archive_fixtures import PREFIX, SPECIAL_THREADS, write_archive

if TYPE_CHECKING:
    from s3_eventstore import S3EventStore


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """LIST pages of 2 keys, so every listing here crosses page boundaries."""
    monkeypatch.setattr("s3_eventstore.s3.bucket.LIST_PAGE_LIMIT", 2)


async def _collect(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


@pytest.mark.usefixtures("small_pages")
async def test_threads_and_summaries_across_pages(s3_store: S3EventStore) -> None:
    written = await write_archive(s3_store, WorkloadSpec(threads=4, turns_per_thread=3, seed=1))
    threads = await _collect(archive.iter_threads(s3_store))
    assert sorted(threads) == sorted(written)
    assert len(threads) == len(set(threads))
    summaries = await _collect(archive.iter_thread_summaries(s3_store))
    assert {s.thread_id: (s.turns, s.first_turn, s.last_turn) for s in summaries} == {
        t: (len(turns), min(turns), max(turns)) for t, turns in written.items()
    }
    assert set(SPECIAL_THREADS) <= {s.thread_id for s in summaries}


async def test_empty_prefix(s3_store: S3EventStore) -> None:
    assert await _collect(archive.iter_threads(s3_store)) == []
    assert await _collect(archive.iter_thread_summaries(s3_store)) == []
    assert await archive.turn_infos(s3_store, "nope") == []
    assert await archive.read_turn(s3_store, "nope", 1) is None
    stats = await archive.archive_stats(s3_store)
    assert (stats.threads, stats.objects, stats.events, stats.ratio) == (0, 0, 0, None)


async def test_foreign_objects_are_counted_not_read(
    s3_store: S3EventStore, backdoor: Any, bucket: str
) -> None:
    await s3_store.append("t", 1, AgentEventEnvelope.create("start", {}, sequence=0))
    await s3_store.finish_turn("t", 1)
    folder = s3_store.layout.thread_folder("t")
    backdoor.put_object(Bucket=bucket, Key=folder + "notes.txt", Body=b"x")
    backdoor.put_object(Bucket=bucket, Key=f"{PREFIX}/threads/stray.txt", Body=b"x")
    [summary] = await _collect(archive.iter_thread_summaries(s3_store))
    assert (summary.turns, summary.other_objects) == (1, 1)
    stats = await archive.archive_stats(s3_store)
    assert (stats.objects, stats.other_objects, stats.events) == (1, 2, 1)
    assert [info.turn for info in await archive.turn_infos(s3_store, "t")] == [1]


async def test_turn_infos_of_a_streamed_object(
    s3_store: S3EventStore, backdoor: Any, bucket: str
) -> None:
    """A streamed turn keeps its manifest in a trailer: a ranged GET, never the body."""
    events = [AgentEventEnvelope.create("text_delta", {"i": i}, sequence=i) for i in range(50)]
    encoder = TurnStreamEncoder("s", 4, level=3, writer="w")
    body = b"".join(encoder.add(e) for e in events) + encoder.finish()
    key = KeyLayout.for_prefix(PREFIX).turn_key("s", 4)
    backdoor.put_object(Bucket=bucket, Key=key, Body=body, Metadata=encoder.header.to_metadata())
    [info] = await archive.turn_infos(s3_store, "s")
    assert info.manifest is not None
    assert (info.turn, info.manifest.events, info.manifest.stored_bytes) == (4, 50, len(body))
    assert await archive.read_turn(s3_store, "s", 4) == events


async def test_turn_infos_report_a_bad_manifest(
    s3_store: S3EventStore, backdoor: Any, bucket: str
) -> None:
    key = KeyLayout.for_prefix(PREFIX).turn_key("t", 2)
    backdoor.put_object(Bucket=bucket, Key=key, Body=b"x", Metadata={"s3es-manifest": "{"})
    [info] = await archive.turn_infos(s3_store, "t")
    assert info.manifest is None
    assert info.problem is not None
    assert info.problem.startswith(f"{key}: manifest is not JSON")
    assert info.to_dict()["events"] is None


async def test_iter_turn_events_is_bounded_and_ordered(s3_store: S3EventStore) -> None:
    s3_store.read_concurrency = 2
    expected = {}
    for turn in range(7):
        event = AgentEventEnvelope.create("x", {"turn": turn}, sequence=0)
        await s3_store.append("t", turn, event)
        await s3_store.finish_turn("t", turn)
        expected[turn] = [event]
    got = await _collect(archive.iter_turn_events(s3_store, "t"))
    assert got == sorted(expected.items())
    picked = await _collect(archive.iter_turn_events(s3_store, "t", [5, 1, 99]))
    assert [turn for turn, _ in picked] == [1, 5]


async def test_read_turn_verifies(s3_store: S3EventStore, backdoor: Any, bucket: str) -> None:
    await s3_store.append("t", 1, AgentEventEnvelope.create("start", {}, sequence=0))
    await s3_store.finish_turn("t", 1)
    key = s3_store.layout.turn_key("t", 1)
    metadata = backdoor.head_object(Bucket=bucket, Key=key)["Metadata"]
    backdoor.put_object(Bucket=bucket, Key=key, Body=b"garbage", Metadata=metadata)
    with pytest.raises(CorruptObjectError, match="body is 7 bytes"):
        await archive.read_turn(s3_store, "t", 1)
    report = await archive.verify_archive(s3_store)
    assert [p.key for p in report.problems] == [key]
    assert report.objects_checked == 1


async def test_stats_count_compacted_and_open_turns_as_readable(s3_store: S3EventStore) -> None:
    """Stubs (compacted turns) and persisted open turn objects are not unreadable
    manifests: stats agree with verify. Once said "unreadable 10 manifests" after a
    compaction that verify found clean."""
    for turn in range(1, 4):
        await s3_store.append("t", turn, AgentEventEnvelope.create("x", {"turn": turn}, sequence=0))
        await s3_store.finish_turn("t", turn)
    report = await s3_store.compact("t")
    assert report.turns_compacted == 3
    await s3_store.append("o", 1, AgentEventEnvelope.create("x", {}, sequence=0))
    await s3_store.append("o", 1, AgentEventEnvelope.create("x", {}, sequence=1))
    await s3_store.flush()  # persists open turn 1 of "o"
    stats = await archive.archive_stats(s3_store)
    assert stats.unreadable_manifests == 0
    assert (stats.turns, stats.open_turns, stats.events, stats.segments) == (3, 1, 5, 1)
    assert stats.to_dict()["open_turns"] == 1
    assert (await s3_store.verify()).problems == ()
