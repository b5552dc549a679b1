"""Compaction into segments: what lands in the bucket, what reads cost, and every crash
state in between. Objects are read and planted behind the store's back."""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import subprocess
from typing import TYPE_CHECKING, Any

import pytest
import zstandard

from s3_eventstore import (
    AgentEventEnvelope,
    ConflictingCopiesError,
    CorruptObjectError,
    S3EventStore,
    TurnAlreadyFinishedError,
    TurnFinishedError,
    UnsupportedFormatError,
)
from s3_eventstore.errors import ConfigurationError, StorageError
from s3_eventstore.format.keys import parse_segment_name, segment_name
from s3_eventstore.format.manifest import MANIFEST_METADATA_KEY
from s3_eventstore.format.segment import INDEX_MAGIC, SegmentIndex, SegmentManifest, build_segment
from s3_eventstore.format.stream import TurnStreamEncoder
from s3_eventstore.s3 import compaction
from s3_eventstore.testing.conformance import make_event
from tests.conftest import all_keys
from tests.test_s3_store import OperationLog, new_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server


class Killed(Exception):
    """The compaction process died here."""


@pytest.fixture
async def writer(s3_server: EmbeddedS3Server, bucket: str) -> AsyncIterator[S3EventStore]:
    async with new_store(s3_server, bucket, read_concurrency=32) as store:
        yield store


def cold(s3_server: EmbeddedS3Server, bucket: str) -> S3EventStore:
    """A store that has seen nothing: every cost is paid in full."""
    return new_store(s3_server, bucket)


async def fill(store: S3EventStore, thread_id: str, turns: list[int], events: int = 3) -> None:
    semaphore = asyncio.Semaphore(16)

    async def one(turn: int) -> None:
        async with semaphore:
            for sequence in range(events):
                await store.append(
                    thread_id, turn, make_event(sequence, delta=f"{turn}.{sequence}")
                )
            await store.finish_turn(thread_id, turn)

    await asyncio.gather(*(one(turn) for turn in turns))


def object_sizes(backdoor: Any, bucket: str) -> list[int]:
    """Sizes of the thread folder's objects in key order (stubs are 8 bytes)."""
    contents = backdoor.list_objects_v2(Bucket=bucket, Prefix="archive/v1/threads/")["Contents"]
    return [int(obj["Size"]) for obj in contents]


def thread_keys(backdoor: Any, bucket: str) -> list[str]:
    return [key.rsplit("/", 1)[1] for key in all_keys(backdoor, bucket, "archive/v1/threads/")]


# --- format ---------------------------------------------------------------------------


def test_segment_names_fit_the_layout_and_parse_back() -> None:
    name = segment_name(3, 2**64 - 1, 99_999_999)
    assert name == "seg-00000000000000000003-18446744073709551615-99999999.jsonl.zst"
    assert len(name) == 64
    assert parse_segment_name(name) is not None
    for bad in (
        "seg-00000000000000000003-00000000000000000002-1.jsonl.zst",  # first > last
        "seg-00000000000000000001-00000000000000000002-01.jsonl.zst",  # not canonical
        "seg-00000000000000000001-00000000000000000002-100000000.jsonl.zst",
        "seg-1-2-3.jsonl.zst",
    ):
        assert parse_segment_name(bad) is None, bad
    with pytest.raises(ValueError, match="at most 99999999 events"):
        segment_name(1, 2, 100_000_000)


async def test_compacted_thread_is_one_segment_plain_zstd_reads(
    writer: S3EventStore, backdoor: Any, bucket: str, tmp_path: Any
) -> None:
    await fill(writer, "t", list(range(1, 11)))
    expected = await writer.get_events("t")
    report = await writer.compact("t")
    assert (report.turns_compacted, report.stubs_written, report.turn_objects_left) == (
        10,
        10,
        (),
    )
    name = "seg-00000000000000000001-00000000000000000010-30.jsonl.zst"
    stubs = [f"{turn:020d}.jsonl.zst" for turn in range(1, 11)]
    assert thread_keys(backdoor, bucket) == [*stubs, name], "turn keys hold stubs now"
    assert report.segments_written == (writer.layout.thread_folder("t") + name,)
    response = backdoor.get_object(Bucket=bucket, Key=report.segments_written[0])
    body = response["Body"].read()
    manifest = json.loads(response["Metadata"][MANIFEST_METADATA_KEY])
    assert manifest["format"] == 3
    assert manifest["kind"] == "segment"
    assert (manifest["first_turn"], manifest["last_turn"], manifest["turns"]) == (1, 10, 10)
    assert manifest["stored_bytes"] == len(body) == report.bytes_written
    assert len(response["Metadata"][MANIFEST_METADATA_KEY]) < 2048
    # The index is a skippable frame at the end; plain decoders print the JSON lines.
    assert struct.unpack_from("<I", body, manifest["index_offset"])[0] == INDEX_MAGIC
    lines = b"".join(event.to_json() + b"\n" for event in expected)
    with zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True) as reader:
        assert reader.read() == lines
    path = tmp_path / name
    path.write_bytes(body)
    if shutil.which("zstd"):
        done = await asyncio.to_thread(
            subprocess.run, ["zstd", "-dc", str(path)], capture_output=True, check=True
        )
        assert done.stdout == lines
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(f"select count(*), min(sequence) from read_json('{path}')").fetchall()
    assert rows == [(30, 0)]


async def test_index_keeps_every_original_manifest(
    writer: S3EventStore, backdoor: Any, bucket: str
) -> None:
    await fill(writer, "t", [1, 2, 5])
    originals = {}
    for turn in (1, 2, 5):
        head = backdoor.head_object(Bucket=bucket, Key=writer.layout.turn_key("t", turn))
        originals[turn] = json.loads(head["Metadata"][MANIFEST_METADATA_KEY])
    [key] = (await writer.compact("t")).segments_written
    response = backdoor.get_object(Bucket=bucket, Key=key)
    body = response["Body"].read()
    manifest = SegmentManifest.from_metadata(response["Metadata"], key=key)
    index = SegmentIndex.parse(manifest, body[manifest.index_offset :], key=key)
    assert index.turns == (1, 2, 5)
    for entry in index.entries:
        original = originals[entry.turn]
        assert json.loads(entry.manifest.to_metadata()[MANIFEST_METADATA_KEY]) == original
        assert entry.length == original["stored_bytes"]


def test_segment_bytes_are_deterministic() -> None:
    from s3_eventstore.format.turn import TurnCodec

    codec = TurnCodec()
    turns = [codec.encode("t", n, [make_event(n)], writer="w") for n in (1, 2)]
    frames = [(turn.manifest, turn.body) for turn in turns]
    assert build_segment("t", frames) == build_segment("t", frames)
    with pytest.raises(ValueError, match="increasing order"):
        build_segment("t", frames[::-1])


# --- what reads cost ------------------------------------------------------------------


def plant_thousand_turns(writer: S3EventStore, backdoor: Any, bucket: str, *, legacy: bool) -> None:
    """A compacted 1000-turn thread planted behind the store's back (much faster than
    1000 PUTs and a compaction through the server): a legacy segment alone (format 2,
    written before stubs), or a segment and a stub per turn (format 3)."""
    from concurrent.futures import ThreadPoolExecutor

    from s3_eventstore.format.lifecycle import STUB_BODY, Stub
    from s3_eventstore.format.turn import TurnCodec

    codec = TurnCodec()
    turns_written = [
        codec.encode(
            "big", turn, [make_event(n, delta=f"{turn}.{n}") for n in range(2)], writer="w"
        )
        for turn in range(1000)
    ]
    body, manifest = build_segment(
        "big", [(t.manifest, t.body) for t in turns_written], format_version=2 if legacy else 3
    )
    key = writer.layout.segment_key("big", 0, 999, 2000)
    backdoor.put_object(Bucket=bucket, Key=key, Body=body, Metadata=manifest.to_metadata())
    if legacy:
        return
    name = key.rsplit("/", 1)[1]

    def stub(turn: Any) -> None:
        meta = Stub("big", turn.manifest.turn, name, len(body), 2, turn.manifest.sha256, "w")
        backdoor.put_object(
            Bucket=bucket,
            Key=writer.layout.turn_key("big", turn.manifest.turn),
            Body=STUB_BODY,
            Metadata=meta.to_metadata(),
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(stub, turns_written))


async def test_request_costs_of_a_compacted_1000_turn_thread(
    writer: S3EventStore, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    plant_thousand_turns(writer, backdoor, bucket, legacy=False)
    assert len(thread_keys(backdoor, bucket)) == 1001
    async with cold(s3_server, bucket) as reader:
        log = OperationLog(reader.client)
        turns = await reader.get_turns("big")
        assert [t.turn for t in turns] == list(range(1000))
        assert all(t.finished and len(t.events) == 2 for t in turns)
        assert log.take() == {"ListObjectsV2": 2, "GetObject": 1}, "readable in 3 requests"
    async with cold(s3_server, bucket) as reader:
        log = OperationLog(reader.client)
        assert await reader.event_count("big") == 2000
        # The count is in the segment's key; its index (one ranged GET of the tail, then
        # cached) checks that key, thread and listed size agree with the manifest.
        assert log.take() == {"ListObjectsV2": 2, "GetObject": 1}
        events = await reader.get_events_since("big", 1995)
        assert [e.to_dict()["delta"] for e in events] == [
            "997.1",
            "998.0",
            "998.1",
            "999.0",
            "999.1",
        ]
        assert log.take() == {"ListObjectsV2": 2, "GetObject": 1}, "the frames (index cached)"
        assert len(await reader.get_events_since("big", 10)) == 1990
        assert log.take() == {"ListObjectsV2": 2, "GetObject": 1}, "the index is cached"
    async with cold(s3_server, bucket) as reader:
        log = OperationLog(reader.client)
        turn = await reader.get_turn("big", 500)
        assert turn is not None
        assert [e.to_dict()["delta"] for e in turn.events] == ["500.0", "500.1"]
        assert log.take() == {"GetObject": 3}, "the stub, the index, the frame"
        assert await reader.get_turn("big", 7) is not None
        assert log.take() == {"GetObject": 2}, "the stub (the key decides), the frame"
        assert await reader.get_turn("big", 1000) is None
        assert log.take() == {"GetObject": 1, "ListObjectsV2": 1}


async def test_request_costs_of_a_legacy_compacted_thread(
    writer: S3EventStore, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    plant_thousand_turns(writer, backdoor, bucket, legacy=True)
    async with cold(s3_server, bucket) as reader:
        log = OperationLog(reader.client)
        turns = await reader.get_turns("big")
        assert [t.turn for t in turns] == list(range(1000))
        assert log.take() == {"ListObjectsV2": 1, "GetObject": 2}, "its index says legacy"
        assert await reader.event_count("big") == 2000
        assert log.take() == {"ListObjectsV2": 1}
    async with cold(s3_server, bucket) as reader:
        log = OperationLog(reader.client)
        turn = await reader.get_turn("big", 500)
        assert [e.to_dict()["delta"] for e in turn.events] == ["500.0", "500.1"]  # type: ignore[union-attr]
        assert log.take() == {"GetObject": 3, "ListObjectsV2": 1}, "404, LIST, index, frame"


async def test_segments_are_bounded_and_compaction_is_idempotent(
    writer: S3EventStore, backdoor: Any, bucket: str
) -> None:
    await fill(writer, "t", list(range(40)), events=20)
    expected = await writer.get_turns("t")
    report = await compaction.compact(writer, "t", max_segment_bytes=8 * 1024)
    sizes = [obj["Size"] for obj in backdoor.list_objects_v2(Bucket=bucket)["Contents"]]
    sizes = [size for size in sizes if size != 8]  # stubs
    assert len(sizes) == len(report.segments_written) > 1
    assert max(sizes) <= 8 * 1024
    assert await writer.get_turns("t") == expected
    again = await writer.compact("t")
    assert (again.segments_written, again.stubs_written) == ((), 0)


async def test_short_runs_and_large_turns_stay_turn_objects(
    writer: S3EventStore, backdoor: Any, bucket: str
) -> None:
    await fill(writer, "t", [1])
    assert (await writer.compact("t")).turn_objects_left == (1,)
    assert thread_keys(backdoor, bucket) == ["00000000000000000001.jsonl.zst"]
    with pytest.raises(ConfigurationError, match="min_turns must be a positive int"):
        await writer.compact("t", min_turns=0)


# --- crash states ---------------------------------------------------------------------


async def test_killed_after_segment_put_reads_each_turn_once_and_rerun_finishes(
    writer: S3EventStore,
    s3_server: EmbeddedS3Server,
    bucket: str,
    backdoor: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await fill(writer, "t", [1, 2, 3, 4])
    expected = await writer.get_turns("t")
    real_stub = compaction._stub

    async def die(store: S3EventStore, thread_id: str, targets: list[Any]) -> int:
        if targets:  # the first call stubs the leftovers of earlier runs: there are none
            raise Killed
        return 0

    monkeypatch.setattr(compaction, "_stub", die)
    with pytest.raises(Killed):
        await writer.compact("t")
    assert len(thread_keys(backdoor, bucket)) == 5, "four turns and their segment"
    async with cold(s3_server, bucket) as reader:
        log = OperationLog(reader.client)
        assert await reader.get_turns("t") == expected
        assert log.take() == {"ListObjectsV2": 1, "GetObject": 5}, "the index, the four keys"
        assert await reader.event_count("t") == 12
        assert log.take() == {"ListObjectsV2": 1}, "index and manifests are cached now"
        for offset in range(14):
            assert (
                await reader.get_events_since("t", offset)
                == (await writer.get_events("t"))[offset:]
            )
    monkeypatch.setattr(compaction, "_stub", real_stub)
    report = await writer.compact("t")
    assert (report.segments_written, report.stubs_written) == ((), 4)
    assert [key[:4] for key in thread_keys(backdoor, bucket)] == ["0000"] * 4 + ["seg-"]
    assert all(size == 8 for size in object_sizes(backdoor, bucket)[:4])


async def test_killed_mid_delete(
    writer: S3EventStore,
    s3_server: EmbeddedS3Server,
    bucket: str,
    backdoor: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await fill(writer, "t", list(range(6)))
    expected = await writer.get_turns("t")
    real_stub = compaction._stub

    async def die_halfway(store: S3EventStore, thread_id: str, targets: list[Any]) -> int:
        if not targets:
            return 0
        await real_stub(store, thread_id, targets[:3])
        raise Killed

    monkeypatch.setattr(compaction, "_stub", die_halfway)
    with pytest.raises(Killed):
        await writer.compact("t")
    assert len(thread_keys(backdoor, bucket)) == 7
    assert sorted(object_sizes(backdoor, bucket)[:6]).count(8) == 3, "three stubs"
    async with cold(s3_server, bucket) as reader:
        assert await reader.get_turns("t") == expected
        assert await reader.event_count("t") == 18
        assert (await reader.get_turn("t", 0)) == expected[0]
        assert (await reader.get_turn("t", 5)) == expected[5]
    monkeypatch.setattr(compaction, "_stub", real_stub)
    assert (await writer.compact("t")).stubs_written == 3
    assert object_sizes(backdoor, bucket)[:6] == [8] * 6


async def test_a_reader_whose_listed_turn_was_compacted_away_lists_again(
    writer: S3EventStore, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    await fill(writer, "t", [1, 2, 3])
    expected = await writer.get_turns("t")
    async with cold(s3_server, bucket) as reader:
        stale = await reader._list_thread("t")
        await writer.compact("t")
        calls = 0
        real = reader._list_thread

        async def list_thread(thread_id: str) -> Any:
            nonlocal calls
            calls += 1
            return stale if calls == 1 else await real(thread_id)

        reader._list_thread = list_thread  # type: ignore[method-assign]
        assert await reader.get_turns("t") == expected
        assert calls == 2
        calls = 0
        assert await reader.event_count("t") == 9
        assert calls == 2
        calls = 0
        assert await reader.get_events_since("t", 4) == (await writer.get_events("t"))[4:]
        assert calls == 2


async def test_a_rerun_recognises_its_own_segment_and_refuses_another(
    writer: S3EventStore, backdoor: Any, bucket: str
) -> None:
    from s3_eventstore.format.turn import TurnCodec

    codec = TurnCodec()
    frames = [
        (t.manifest, t.body)
        for t in (codec.encode("t", n, [make_event(n)], writer="w") for n in (1, 2))
    ]
    body, manifest = build_segment("t", frames)
    key = await compaction._put_segment(writer, "t", body, manifest)
    assert await compaction._put_segment(writer, "t", body, manifest) == key
    other = [(frames[0][0], frames[0][1]), (frames[1][0], frames[1][1])]
    other_codec = TurnCodec(level=19)
    recoded = [
        (t.manifest, t.body)
        for t in (other_codec.encode("t", n, [make_event(n)], writer="x") for n in (1, 2))
    ]
    assert other != recoded
    other_body, other_manifest = build_segment("t", recoded)
    assert other_manifest.events == manifest.events
    with pytest.raises(ConflictingCopiesError, match="exists with other content"):
        await compaction._put_segment(writer, "t", other_body, other_manifest)


# --- the late finish hazard -----------------------------------------------------------


async def test_a_turn_finished_again_after_compaction_is_refused_by_its_stub(
    writer: S3EventStore, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    await fill(writer, "t", [1, 2, 3])
    await writer.compact("t")
    expected = await writer.get_turns("t")
    keys = all_keys(backdoor, bucket)
    late_event = make_event(9)
    async with cold(s3_server, bucket) as late:  # never read the thread: it cannot know
        await late.append("t", 2, late_event)
        with pytest.raises(TurnAlreadyFinishedError, match="turn 2 is already finished") as info:
            await late.finish_turn("t", 2)
        assert info.value.unwritten_events == (late_event,)
    assert all_keys(backdoor, bucket) == keys, "nothing written"
    async with cold(s3_server, bucket) as reader:
        assert await reader.get_turns("t") == expected
        assert await reader.event_count("t") == 9
        assert (await writer.compact("t")).turns_compacted == 0


async def test_a_store_that_read_a_segment_refuses_its_turns_after_checking(
    writer: S3EventStore, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    await fill(writer, "t", [1, 2, 3])
    async with cold(s3_server, bucket) as other:
        await other.compact("t")
    async with cold(s3_server, bucket) as reader:
        await reader.get_turns("t")
        log = OperationLog(reader.client)
        with pytest.raises(TurnFinishedError):
            await reader.append("t", 2, make_event())
        assert log.take() == {"HeadObject": 1}, "what it knows is re-checked, not trusted"
        with pytest.raises(TurnAlreadyFinishedError, match="turn 2 is already finished"):
            await reader.finish_turn("t", 2)
        assert log.take() == {"PutObject": 1, "GetObject": 2}, "412, the stub, its frame"


async def test_a_gap_turn_finished_after_compaction_is_read_in_place(
    writer: S3EventStore, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    await fill(writer, "t", [1, 2, 4, 5])
    await writer.compact("t")
    await fill(writer, "t", [3])
    expected = [1, 2, 3, 4, 5]
    async with cold(s3_server, bucket) as reader:
        assert [t.turn for t in await reader.get_turns("t")] == expected
        log = OperationLog(reader.client)
        assert await reader.event_count("t") == 15
        assert log.take() == {"ListObjectsV2": 1}, "index and manifest known from get_turns"
        everything = await reader.get_events("t")
        assert [e.to_dict()["delta"][0] for e in everything] == [
            str(turn) for turn in expected for _ in range(3)
        ]
        for offset in range(16):
            assert await reader.get_events_since("t", offset) == everything[offset:]
    await compaction.compact(writer, "t", min_turns=1)
    async with cold(s3_server, bucket) as reader:
        assert await reader.get_events("t") == everything
        assert await reader.event_count("t") == 15
        for offset in range(16):
            assert await reader.get_events_since("t", offset) == everything[offset:]


async def test_open_turns_merge_with_segments(
    writer: S3EventStore,
) -> None:
    await fill(writer, "t", [1, 3])
    await writer.compact("t")
    event = make_event(7)
    await writer.append("t", 2, event)
    turns = await writer.get_turns("t")
    assert [(t.turn, t.finished) for t in turns] == [(1, True), (2, False), (3, True)]
    assert await writer.event_count("t") == 7
    assert (await writer.get_events_since("t", 3)) == [event, *turns[2].events]


# --- streamed turns, verification, corruption -----------------------------------------


async def test_a_streamed_turn_contributes_its_data_frame_only(
    writer: S3EventStore, backdoor: Any, bucket: str
) -> None:
    events = [make_event(n) for n in range(50)]
    encoder = TurnStreamEncoder("t", 2, level=3, writer="w")
    body = b"".join(encoder.add(event) for event in events) + encoder.finish()
    backdoor.put_object(
        Bucket=bucket,
        Key=writer.layout.turn_key("t", 2),
        Body=body,
        Metadata=encoder.header.to_metadata(),
    )
    await fill(writer, "t", [1])
    [key] = (await writer.compact("t")).segments_written
    segment = backdoor.get_object(Bucket=bucket, Key=key)["Body"].read()
    with zstandard.ZstdDecompressor().stream_reader(segment, read_across_frames=True) as reader:
        lines = reader.read().splitlines()
    assert lines[3:] == [event.to_json() for event in events]
    assert b"trailer" not in segment
    turn = await writer.get_turn("t", 2)
    assert turn is not None
    assert list(turn.events) == events


async def test_verify_checks_segments(writer: S3EventStore, backdoor: Any, bucket: str) -> None:
    await fill(writer, "t", [1, 2, 3])
    await fill(writer, "u", [1])
    [key] = (await writer.compact("t")).segments_written
    report = await writer.verify()
    assert (report.objects_checked, report.segments, report.ok, report.events) == (5, 1, 5, 12)
    assert report.clean
    assert report.foreign == ()
    response = backdoor.get_object(Bucket=bucket, Key=key)
    body = bytearray(response["Body"].read())
    body[20] ^= 0xFF  # inside turn 1's frame
    backdoor.put_object(Bucket=bucket, Key=key, Body=bytes(body), Metadata=response["Metadata"])
    report = await writer.verify("t")
    assert [(p.key, p.error) for p in report.problems] == [(key, "CorruptObjectError")]
    assert report.problems[0].message.startswith(f"{key}: turn 1: ")
    async with cold(writer_server(writer), bucket) as reader:
        with pytest.raises(CorruptObjectError, match="turn 1: "):
            await reader.get_turns("t")


def writer_server(store: S3EventStore) -> Any:
    class Server:
        endpoint_url = store._settings.endpoint_url

        @staticmethod
        def session() -> Any:
            return store._session

    return Server()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            {"index_sha256": "0" * 64},
            CorruptObjectError,
            "index SHA-256 does not match the segment manifest$",
        ),
        ({"events": 99}, CorruptObjectError, r"99 events\) disagrees with its key$"),
        (
            {"format": 4},
            UnsupportedFormatError,
            r"segment format 4 is not supported \(this library reads segment formats \[2, 3\]\)$",
        ),
        ({"kind": "turn"}, CorruptObjectError, "manifest is not a zstd segment's$"),
        ({"index_offset": 1}, CorruptObjectError, "segment manifest field has the wrong value$"),
    ],
)
async def test_bad_segment_manifests_are_typed(
    writer: S3EventStore,
    backdoor: Any,
    bucket: str,
    change: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    await fill(writer, "t", [1, 2])
    [key] = (await writer.compact("t")).segments_written
    response = backdoor.get_object(Bucket=bucket, Key=key)
    manifest = json.loads(response["Metadata"][MANIFEST_METADATA_KEY])
    manifest.update(change)
    backdoor.put_object(
        Bucket=bucket,
        Key=key,
        Body=response["Body"].read(),
        Metadata={MANIFEST_METADATA_KEY: json.dumps(manifest)},
    )
    async with cold(writer_server(writer), bucket) as reader:
        with pytest.raises(error, match=message) as info:
            await reader.get_turns("t")
        assert type(info.value) is error
        assert str(info.value).startswith(f"{key}: ")


async def test_a_corrupt_turn_object_is_not_compacted(
    writer: S3EventStore, backdoor: Any, bucket: str
) -> None:
    await fill(writer, "t", [1, 2])
    key = writer.layout.turn_key("t", 2)
    response = backdoor.get_object(Bucket=bucket, Key=key)
    backdoor.put_object(
        Bucket=bucket, Key=key, Body=response["Body"].read()[:-1], Metadata=response["Metadata"]
    )
    with pytest.raises(CorruptObjectError, match="body is"):
        await writer.compact("t")
    assert len(all_keys(backdoor, bucket)) == 2


async def test_compact_idle_and_many_threads(
    writer: S3EventStore, backdoor: Any, bucket: str
) -> None:
    await fill(writer, "a", [1, 2])
    await fill(writer, "b", [1, 2, 3])
    await fill(writer, "c", [1])
    assert await compaction.compact_idle(writer, 3600) == []
    reports = await compaction.compact_idle(writer, 3600, now=4e9)
    assert sorted((r.thread_id, r.turns_compacted) for r in reports) == [("a", 2), ("b", 3)]
    assert await compaction.idle_threads(writer, 0, now=4e9) == []
    assert [r.thread_id for r in await compaction.compact_threads(writer, ["c", "a"])] == ["c", "a"]


async def test_vanishing_objects_give_up_after_bounded_relists(
    writer: S3EventStore,
) -> None:
    await fill(writer, "t", [1])

    async def always_gone(*_: Any) -> None:
        return None

    writer._fetch = always_gone  # type: ignore[method-assign,assignment]
    with pytest.raises(StorageError, match="kept vanishing while they were read"):
        await writer.get_turns("t")


def test_envelopes_survive_a_segment_round_trip() -> None:
    from s3_eventstore.format.segment import frame_manifest
    from s3_eventstore.format.turn import TurnCodec

    codec = TurnCodec()
    encoded = [codec.encode("t", n, [make_event(n), make_event(n + 1)], writer="w") for n in (4, 9)]
    body, manifest = build_segment("t", [(e.manifest, e.body) for e in encoded])
    index = SegmentIndex.parse(manifest, body[manifest.index_offset :], key="k")
    for entry in index.entries:
        events = TurnCodec.decode(
            body[entry.offset : entry.end],
            frame_manifest(entry),
            key="k",
            thread_id="t",
            turn=entry.turn,
        )
        assert [type(e) for e in events] == [AgentEventEnvelope, AgentEventEnvelope]
