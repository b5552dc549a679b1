"""The Parquet tier's writer: incremental, idempotent, concurrent, crash-safe, sized."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import AgentEventEnvelope, S3EventStore
from s3_eventstore.demo.workload import WorkloadSpec
from tests.archive_fixtures import PREFIX, archive, cli_env, invoke, write_archive
from tests.conftest import all_keys

pytest.importorskip("duckdb")
pq = pytest.importorskip("pyarrow.parquet")

from s3_eventstore.errors import ConfigurationError, IntegrityError
from s3_eventstore.ops import analytics  # after the skips
from s3_eventstore.ops.columnar.log import LogEntry, read_state
from s3_eventstore.ops.columnar.publish import collect_garbage, publish
from s3_eventstore.ops.columnar.schema import COLUMNS, arrow_schema

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server

__all__ = ["archive", "cli_env"]  # fixtures used by name

pytestmark = pytest.mark.usefixtures("cli_env")


class Crash(Exception):
    """Stands for the process dying at that step (nothing after it runs)."""


async def _expected(store: S3EventStore) -> Counter[tuple[str, int, str]]:
    """(thread, turn, envelope) of every archived event, from the Python API."""
    from s3_eventstore.ops.catalog import iter_threads

    rows: Counter[tuple[str, int, str]] = Counter()
    async for thread in iter_threads(store):
        for stored in await store.get_turns(thread):
            for event in stored.events:
                rows[(thread, stored.turn, event.to_json().decode())] += 1
    return rows


def _view(url: str, endpoint_url: str) -> Counter[tuple[str, int, str]]:
    con = analytics.connect(url, endpoint_url=endpoint_url)
    try:
        return Counter(con.execute("SELECT thread_id, turn, envelope FROM events").fetchall())
    finally:
        con.close()


async def _committed_rows(store: S3EventStore, backdoor: Any) -> Counter[tuple[str, int, str]]:
    """Rows of the committed files only, read behind the library's back."""
    import io

    state = await read_state(store)
    rows: Counter[tuple[str, int, str]] = Counter()
    for key in state.files:
        body = backdoor.get_object(Bucket=store.bucket, Key=key)["Body"].read()
        table = pq.read_table(io.BytesIO(body))
        assert table.schema.remove_metadata() == arrow_schema()
        for thread, turn, envelope in zip(
            table["thread_id"].to_pylist(),
            table["turn"].to_pylist(),
            table["envelope"].to_pylist(),
            strict=True,
        ):
            rows[(thread, int(turn), envelope)] += 1
    return rows


async def test_publish_then_query_is_exact_and_a_second_run_adds_nothing(
    s3_store: S3EventStore, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    spec = WorkloadSpec(threads=4, turns_per_thread=3, events_per_turn=7, seed=3)
    await write_archive(s3_store, spec)
    expected = await _expected(s3_store)
    first = await publish(s3_store)
    assert first.turns == sum(1 for _ in {(t, n) for t, n, _ in expected})
    assert first.events == sum(expected.values())
    assert await _committed_rows(s3_store, backdoor) == expected
    keys_before = set(all_keys(backdoor, bucket))
    second = await publish(s3_store)
    assert (second.turns, second.files, second.commits) == (0, [], [])
    assert set(all_keys(backdoor, bucket)) == keys_before
    url = f"s3://{bucket}/{PREFIX}"
    assert _view(url, s3_server.endpoint_url) == expected
    # Incremental: only the new turns are read and written.
    more = WorkloadSpec(threads=2, turns_per_thread=2, events_per_turn=4, seed=8)
    await write_archive(s3_store, more, special=False)
    s3_store.requests.reset()
    third = await publish(s3_store)
    assert third.turns == 4
    gets = s3_store.requests.snapshot().get("GetObject", 0)
    assert gets == 4 + 1  # one per new turn object, one per log entry (the 2nd run wrote none)
    assert s3_store.requests.snapshot().get("PutObject", 0) == len(third.files) + 1
    assert third.commits == [1]
    total = await _expected(s3_store)
    assert await _committed_rows(s3_store, backdoor) == total
    assert _view(url, s3_server.endpoint_url) == total
    # Everything stays under the store's prefix, in its own folder.
    assert all(key.startswith(f"{PREFIX}/") for key in all_keys(backdoor, bucket))
    assert all(
        key.startswith((f"{PREFIX}/threads/", f"{PREFIX}/published/"))
        for key in all_keys(backdoor, bucket)
    )


async def test_two_publishers_at_once_never_duplicate_a_turn(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    def open_store() -> S3EventStore:
        return S3EventStore(
            bucket, PREFIX, endpoint_url=s3_server.endpoint_url, session=s3_server.session()
        )

    published = 0
    for seed in range(3):  # each round: new turns, then three publishers at once
        async with open_store() as writer:
            spec = WorkloadSpec(threads=4, turns_per_thread=2, events_per_turn=5, seed=seed)
            await write_archive(writer, spec, special=False)
            expected = await _expected(writer)
        async with open_store() as a, open_store() as b, open_store() as c:
            reports = await asyncio.gather(publish(a), publish(b), publish(c))
        published += sum(r.turns for r in reports)
        assert published == len({(t, n) for t, n, _ in expected})
        async with open_store() as reader:
            assert await _committed_rows(reader, backdoor) == expected
            # The losers deleted their own files: nothing is left uncommitted.
            state = await read_state(reader)
            data = [k for k in all_keys(backdoor, bucket) if k.endswith(".parquet")]
            assert set(data) == set(state.files)
    assert _view(f"s3://{bucket}/{PREFIX}", s3_server.endpoint_url) == expected


@pytest.mark.parametrize(("step", "after"), [("uploaded", 1), ("uploaded", 2), ("committed", 1)])
async def test_a_publisher_killed_at_any_step_leaves_nothing_half_visible(
    s3_store: S3EventStore,
    s3_server: EmbeddedS3Server,
    bucket: str,
    backdoor: Any,
    step: str,
    after: int,
) -> None:
    # Timestamps on two days: two data files per commit.
    spec = WorkloadSpec(threads=3, turns_per_thread=3, events_per_turn=5, seed=6)
    await write_archive(s3_store, spec)
    old = AgentEventEnvelope.create("start", sequence=0, timestamp="2024-02-29T23:59:59.5Z")
    await s3_store.append("leap", 1, old)
    await s3_store.finish_turn("leap", 1)
    expected = await _expected(s3_store)
    seen: Counter[str] = Counter()

    def die(name: str) -> None:
        seen[name] += 1
        if name == step and seen[name] == after:
            raise Crash(name)

    with pytest.raises(Crash):
        await publish(s3_store, on_step=die)
    url = f"s3://{bucket}/{PREFIX}"
    assert _view(url, s3_server.endpoint_url) == expected  # exact at every crash point
    state = await read_state(s3_store)
    orphans = [k for k in all_keys(backdoor, bucket) if k.endswith(".parquet")]
    orphans = [k for k in orphans if k not in state.files]
    assert bool(orphans) == (step == "uploaded")
    rerun = await publish(s3_store)  # completes the job; young orphans are kept ...
    assert await _committed_rows(s3_store, backdoor) == expected
    assert rerun.garbage_deleted == []
    deleted = await collect_garbage(s3_store, 0)  # ... until they are old enough
    assert sorted(deleted) == sorted(orphans)
    assert _view(url, s3_server.endpoint_url) == expected
    assert await _committed_rows(s3_store, backdoor) == expected


async def test_files_are_partitioned_by_day_and_sized(
    s3_store: S3EventStore, backdoor: Any, bucket: str
) -> None:
    import random

    rng = random.Random(1)
    for turn in range(36):  # ~130 KB of zstd per turn, 18 turns a day
        text = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=200_000))
        event = AgentEventEnvelope.create(
            "text", {"text": text}, sequence=0, timestamp=f"2025-03-0{1 + turn % 2}T10:00:00Z"
        )
        await s3_store.append("sized", turn, event)
        await s3_store.finish_turn("sized", turn)
    report = await publish(s3_store, target_file_bytes=1 << 20)
    state = await read_state(s3_store)
    days = Counter(key.split("/day=")[1].split("/")[0] for key in state.files)
    assert set(days) == {"2025-03-01", "2025-03-02"}
    assert all(count >= 2 for count in days.values())  # 18 x ~130 KB per day > 1 MiB
    sizes = [f.size for f in state.files.values()]
    assert sum(sizes) == report.bytes_written
    assert max(sizes) < (1 << 20) + 800_000  # closed at the first row group past 1 MiB
    with pytest.raises(ConfigurationError):
        await publish(s3_store, target_file_bytes=1000)


async def test_each_column_and_its_encoding(s3_store: S3EventStore, backdoor: Any) -> None:
    import io

    events = [
        AgentEventEnvelope.create(
            "start", sequence=0, timestamp="2025-01-01T00:00:00.123456789+02:00"
        ),
        AgentEventEnvelope.create(
            "tool_call_start", {"id": "call-1", "name": "search", "input": {}}, sequence=1
        ),
        AgentEventEnvelope.create(
            "text", {"message_id": "m1", "text": "hi", "n": 2**70}, sequence=2
        ),
        AgentEventEnvelope.create("error", {"message": "boom", "recoverable": False}, sequence=3),
        AgentEventEnvelope.create(
            "turn_complete",
            {"usage": {"input_tokens": 5, "output_tokens": 2**64 - 1}},
            sequence=2**64 - 1,
        ),
    ]
    for event in events:
        await s3_store.append("cols", 2**64 - 1, event)
    await s3_store.finish_turn("cols", 2**64 - 1)
    await publish(s3_store)
    state = await read_state(s3_store)
    (key,) = state.files
    body = backdoor.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read()
    parquet = pq.ParquetFile(io.BytesIO(body))
    table = parquet.read()
    nanos = table["timestamp"].cast("int64").to_pylist()
    rows = table.drop_columns(["timestamp"]).to_pylist()
    assert [r["turn"] for r in rows] == [2**64 - 1] * 5
    assert table.schema.field("timestamp").type.tz == "UTC"
    assert nanos[0] == events[0].timestamp_ns == 1735682400123456789  # 22:00 UTC, every digit
    assert rows[0]["timestamp_text"] == "2025-01-01T00:00:00.123456789+02:00"
    assert (rows[1]["tool_name"], rows[1]["tool_call_id"]) == ("search", "call-1")
    assert rows[2]["message_id"] == "m1"
    assert rows[3]["error_message"] == "boom"
    assert (rows[4]["input_tokens"], rows[4]["output_tokens"]) == (5, None)  # > int64: NULL
    assert rows[4]["sequence"] == 2**64 - 1
    assert [r["envelope"].encode() for r in rows] == [e.to_json() for e in events]
    assert [r["position"] for r in rows] == [0, 1, 2, 3, 4]
    last_day = events[-1].datetime.astimezone(UTC).date().isoformat()
    assert key.split("/")[-2] == f"day={last_day}"  # the UTC date of the turn's last event
    column_meta = parquet.metadata.row_group(0)
    encodings = {
        column_meta.column(i).path_in_schema: column_meta.column(i) for i in range(len(COLUMNS))
    }
    assert encodings["type"].compression == "ZSTD"
    assert "RLE_DICTIONARY" in encodings["type"].encodings
    assert "RLE_DICTIONARY" not in encodings["envelope"].encodings


async def test_a_corrupt_log_entry_is_an_integrity_error(
    s3_store: S3EventStore, backdoor: Any, bucket: str
) -> None:
    await write_archive(s3_store, WorkloadSpec(threads=1, turns_per_thread=1), special=False)
    await publish(s3_store)
    state = await read_state(s3_store)
    key = f"{PREFIX}/published/_log/{1:020d}.json"
    backdoor.put_object(Bucket=bucket, Key=key, Body=b'{"kind": "s3es-publish"')
    with pytest.raises(IntegrityError):
        await publish(s3_store)
    # An entry that publishes an already published turn again.
    twice = LogEntry(1, state.entries[0].files, state.entries[0].turns, writer="x", created_at="")
    backdoor.put_object(Bucket=bucket, Key=key, Body=twice.render())
    with pytest.raises(IntegrityError, match="second time"):
        await read_state(s3_store)


async def test_readers_of_the_tier_read_entry_headers_alone(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    """A files-only reader (the view with ``published_only``) GETs the first 4 KiB of an
    entry, not its turn list, however many turns the entry publishes; format-1 entries (one
    JSON object, written before the header line existed) are still read both ways."""
    from s3_eventstore.ops.columnar.log import HEADER_READ_BYTES
    from s3_eventstore.testing.faultproxy import FaultProxy

    async with S3EventStore(
        bucket, PREFIX, endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as writer:
        spec = WorkloadSpec(threads=20, turns_per_thread=5, events_per_turn=2, seed=4)
        await write_archive(writer, spec, special=False)
        await publish(writer)
        full = await read_state(writer)
    key = f"{PREFIX}/published/_log/{0:020d}.json"
    size = backdoor.head_object(Bucket=bucket, Key=key)["ContentLength"]
    assert size > 2 * HEADER_READ_BYTES  # 100 turns of about 116 bytes each
    with FaultProxy(s3_server.endpoint_url) as proxy:
        async with S3EventStore(
            bucket, PREFIX, endpoint_url=proxy.endpoint_url, session=s3_server.session()
        ) as reader:
            proxy.reset_stats()
            headers = await read_state(reader, files_only=True)
            stats = proxy.stats()
    assert stats.requests == {"ListObjectsV2": 1, "GetObject": 1}
    assert stats.response_bytes["GetObject"] < HEADER_READ_BYTES + 2048  # + HTTP headers
    assert headers.files == full.files
    assert headers.turns == {}
    with pytest.raises(ValueError, match="files-only"):
        headers.overlaps({("t", 0)})
    # A format-1 entry: one JSON object with the turns inline.
    first = full.entries[0]
    assert first.turns is not None
    legacy = json.loads(first.render().split(b"\n")[0])
    legacy.update(
        format=1,
        turns=[[t.thread_id, t.turn, t.events, t.sha256, t.file] for t in first.turns],
        segments=list(first.segments),
    )
    backdoor.put_object(Bucket=bucket, Key=key, Body=json.dumps(legacy).encode())
    async with S3EventStore(
        bucket, PREFIX, endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as again:
        assert (await read_state(again)).turns == full.turns
        assert (await read_state(again, files_only=True)).files == full.files
        assert (await publish(again)).turns == 0
    # A format-2 entry cut after its header line is refused, not read as having no turns.
    backdoor.put_object(Bucket=bucket, Key=key, Body=first.render().split(b"\n")[0])
    async with S3EventStore(
        bucket, PREFIX, endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as cut:
        with pytest.raises(IntegrityError, match="no turns line"):
            await read_state(cut)


def test_publish_command(archive: Any) -> None:
    result = invoke(
        None, "publish", "--url", archive.url, "--json", endpoint_url=archive.endpoint_url
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["turns"] == sum(len(t) for t in archive.turns.values())
    again = invoke(None, "publish", "--url", archive.url, endpoint_url=archive.endpoint_url)
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("published 0 turn(s), 0 event(s) in 0 file(s)")
    query = invoke(
        None,
        "query",
        "--url",
        archive.url,
        "--format",
        "json",
        "SELECT count(*) AS n, count(DISTINCT (thread_id, turn)) AS turns FROM events",
        endpoint_url=archive.endpoint_url,
    )
    assert query.exit_code == 0, query.output
    assert json.loads(query.stdout) == {
        "n": sum(len(e) for t in archive.turns.values() for e in t.values()),
        "turns": report["turns"],
    }


@pytest.mark.parametrize("step", ["uploaded", "committed"])
def test_a_publisher_killed_by_sigkill_mid_way(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any, step: str
) -> None:
    """A real kill -9 (no exception handler, no finally) between two steps; then
    ``s3-eventstore query`` and ``s3-eventstore publish`` finish the story, on an archive
    with a thread compacted before the kill."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    async def write() -> Counter[tuple[str, int, str]]:
        async with S3EventStore(
            bucket, PREFIX, endpoint_url=s3_server.endpoint_url, session=s3_server.session()
        ) as store:
            written = await write_archive(
                store, WorkloadSpec(threads=3, turns_per_thread=2, seed=2)
            )
            await store.compact(next(iter(written)))  # stubs and a segment
            return await _expected(store)

    expected = asyncio.run(write())
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from s3_eventstore import S3EventStore
        from s3_eventstore.demo.embedded import EmbeddedS3Server
        from s3_eventstore.ops.columnar.publish import publish

        def die(name):
            if name == {step!r}:
                os.kill(os.getpid(), signal.SIGKILL)

        async def main():
            import aioboto3
            session = aioboto3.Session(aws_access_key_id="embedded",
                aws_secret_access_key="embedded-secret", region_name="us-east-1")
            async with S3EventStore({bucket!r}, {PREFIX!r},
                    endpoint_url={s3_server.endpoint_url!r}, session=session) as store:
                await publish(store, on_step=die)

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        timeout=300,
        check=False,
        env=os.environ,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    url = f"s3://{bucket}/{PREFIX}"
    assert _view(url, s3_server.endpoint_url) == expected
    assert _cli_rows(url, s3_server.endpoint_url) == expected
    assert _cli_rows(url, s3_server.endpoint_url, "--published-only") == (
        Counter() if step == "uploaded" else expected
    )
    published = invoke(None, "publish", "--url", url, "--json", endpoint_url=s3_server.endpoint_url)
    assert published.exit_code == 0, published.output
    turns = json.loads(published.stdout)["turns"]
    assert turns == (len({(t, n) for t, n, _ in expected}) if step == "uploaded" else 0)
    assert _cli_rows(url, s3_server.endpoint_url) == expected
    assert _cli_rows(url, s3_server.endpoint_url, "--published-only") == expected

    async def finish() -> tuple[Counter[tuple[str, int, str]], list[str]]:
        async with S3EventStore(
            bucket, PREFIX, endpoint_url=s3_server.endpoint_url, session=s3_server.session()
        ) as store:
            rows = await _committed_rows(store, backdoor)
            return rows, await collect_garbage(store, 0)

    rows, garbage = asyncio.run(finish())
    assert rows == expected
    assert bool(garbage) == (step == "uploaded")  # the killed run's file, never committed
    assert _view(url, s3_server.endpoint_url) == expected


def _cli_rows(url: str, endpoint_url: str, *options: str) -> Counter[tuple[str, int, str]]:
    """(thread, turn, envelope) of every row, as ``s3-eventstore query --json`` prints it."""
    sql = "SELECT thread_id, turn, envelope FROM events"
    result = invoke(None, "query", "--url", url, "--json", *options, sql, endpoint_url=endpoint_url)
    assert result.exit_code == 0, result.output
    rows = (json.loads(line) for line in result.stdout.splitlines())
    return Counter((row["thread_id"], row["turn"], row["envelope"]) for row in rows)
