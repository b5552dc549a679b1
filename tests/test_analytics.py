"""DuckDB over the archive in place must agree with the Python API on the same data."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import AgentEventEnvelope, S3EventStore
from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.demo.workload import WorkloadSpec
from s3_eventstore.testing import load_agent_sdk_vectors
from tests.archive_fixtures import PREFIX, SPECIAL_THREADS, cli_env, invoke, write_archive

if TYPE_CHECKING:
    from collections.abc import Iterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("duckdb_extension_httpfs")

from s3_eventstore.ops import analytics  # after the skips: it needs duckdb

__all__ = ["cli_env"]

pytestmark = pytest.mark.usefixtures("cli_env")


class Written:
    """The archive written once for this module, and what the Python API reads back."""

    def __init__(self, url: str, endpoint_url: str, events: dict[str, list[Any]]) -> None:
        self.url = url
        self.endpoint_url = endpoint_url
        self.events = events  # thread -> [(turn, envelope)] from store.get_turns


@pytest.fixture(scope="module")
def written(s3_server: EmbeddedS3Server, backdoor: Any) -> Written:
    bucket = "analytics-archive"
    backdoor.create_bucket(Bucket=bucket)

    async def write_and_read() -> dict[str, list[Any]]:
        async with S3EventStore(
            bucket, PREFIX, endpoint_url=s3_server.endpoint_url, session=s3_server.session()
        ) as store:
            spec = WorkloadSpec(threads=5, turns_per_thread=3, events_per_turn=10, seed=5)
            threads = list(await write_archive(store, spec))
            for step in load_agent_sdk_vectors().replay():  # the agent-sdk vectors as well
                thread = f"vectors-{step.thread_id}"
                await store.append(thread, step.turn, step.envelope)
                if step.finish_turn_after:
                    await store.finish_turn(thread, step.turn)
                if thread not in threads:
                    threads.append(thread)
            for info in store.open_turns():
                await store.discard_turn(info.thread_id, info.turn)
            read: dict[str, list[Any]] = {}
            for thread in threads:
                read[thread] = [
                    (turn.turn, event)
                    for turn in await store.get_turns(thread)
                    for event in turn.events
                ]
            return read

    events = asyncio.run(write_and_read())
    return Written(f"s3://{bucket}/{PREFIX}", s3_server.endpoint_url, events)


@pytest.fixture
def connection(written: Written, cli_env: None) -> Iterator[Any]:
    con = analytics.connect(written.url, endpoint_url=written.endpoint_url)
    yield con
    con.close()


def _all(written: Written) -> list[tuple[str, int, AgentEventEnvelope]]:
    return [(t, n, e) for t, rows in written.events.items() for n, e in rows]


def test_every_line_comes_back_exactly(connection: Any, written: Written) -> None:
    rows = connection.execute(
        "SELECT thread_id, turn, event_id, sequence, timestamp, type, line FROM events"
    ).fetchall()
    expected = [
        (t, n, str(e.event_id), e.sequence, e.timestamp, e.type, e.to_json().decode())
        for t, n, e in _all(written)
    ]
    assert sorted(rows) == sorted(expected)


def test_special_thread_ids_are_decoded(connection: Any) -> None:
    found = {
        row[0] for row in connection.execute("SELECT DISTINCT thread_id FROM events").fetchall()
    }
    assert set(SPECIAL_THREADS) <= found


def test_counts_per_event_type(connection: Any, written: Written) -> None:
    rows = connection.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall()
    assert dict(rows) == Counter(e.type for _, _, e in _all(written))


def test_tokens_per_thread(connection: Any, written: Written) -> None:
    rows = connection.execute(
        """SELECT thread_id,
                  sum((event->'usage'->>'input_tokens')::BIGINT
                      + (event->'usage'->>'output_tokens')::BIGINT)
           FROM events WHERE type = 'turn_complete' AND (event->'usage') IS NOT NULL
           GROUP BY thread_id"""
    ).fetchall()
    expected: Counter[str] = Counter()
    for thread, _, event in _all(written):
        usage = event.fields.get("usage")
        if event.type == "turn_complete" and usage is not None:
            expected[thread] += usage["input_tokens"] + usage["output_tokens"]
    assert dict(rows) == dict(expected)
    assert len(expected) >= 5


def test_a_join_across_threads(connection: Any, written: Written) -> None:
    # Turn by turn: the start event and the turn_complete event of the same (thread, turn),
    # then threads that share a turn number joined with each other.
    rows = connection.execute(
        """WITH per_turn AS (
               SELECT s.thread_id, s.turn, s.event_id AS start_id, c.event_id AS complete_id
               FROM events s JOIN events c USING (thread_id, turn)
               WHERE s.type = 'start' AND c.type = 'turn_complete')
           SELECT a.thread_id, b.thread_id, a.turn, a.start_id, b.complete_id
           FROM per_turn a JOIN per_turn b ON a.turn = b.turn AND a.thread_id < b.thread_id"""
    ).fetchall()
    per_turn: dict[tuple[str, int], dict[str, str]] = {}
    for thread, turn, event in _all(written):
        if event.type in ("start", "turn_complete"):
            per_turn.setdefault((thread, turn), {})[event.type] = str(event.event_id)
    complete = {k: v for k, v in per_turn.items() if len(v) == 2}
    expected = [
        (a, b, turn, complete[(a, turn)]["start"], complete[(b, turn)]["turn_complete"])
        for (a, turn) in complete
        for (b, turn_b) in complete
        if turn == turn_b and a < b
    ]
    assert sorted(rows) == sorted(expected)
    assert expected


def test_an_empty_archive_is_an_empty_view(written: Written, cli_env: None) -> None:
    con = analytics.connect(written.url + "-nothing-here", endpoint_url=written.endpoint_url)
    assert con.execute("SELECT count(*) FROM events").fetchone() == (0,)
    assert [c[0] for c in con.execute("SELECT * FROM events").description] == [
        "thread_id",
        "turn",
        "event_id",
        "sequence",
        "timestamp",
        "time",
        "type",
        "event",
        "line",
        "key",
    ]


def test_the_extension_comes_from_the_wheel() -> None:
    path = analytics.httpfs_extension_path()
    assert path.name == "httpfs.duckdb_extension"
    assert f"v{duckdb.__version__}" in str(path)


def test_secret_sql_quotes_values() -> None:
    access = analytics.S3Access(
        region="us-east-1",
        key_id="k'1",
        secret="s",
        endpoint="127.0.0.1:9",
        use_ssl=False,
        url_style="path",
    )
    sql = analytics._secret_sql(access, "b")
    assert "KEY_ID 'k''1'" in sql
    assert "USE_SSL false" in sql
    assert "ENDPOINT '127.0.0.1:9'" in sql


def test_query_command(written: Written) -> None:
    result = invoke(
        None,
        "query",
        "--url",
        written.url,
        "--format",
        "json",
        "SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY type",
        endpoint_url=written.endpoint_url,
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["type"]: r["n"] for r in rows} == Counter(e.type for _, _, e in _all(written))
    table = invoke(
        None,
        "query",
        "--url",
        written.url,
        "SELECT 1 AS one",
        endpoint_url=written.endpoint_url,
    )
    assert table.stdout == "one\n---\n1\n(1 row)\n"
    csv = invoke(
        None,
        "query",
        "--url",
        written.url,
        "--format",
        "csv",
        "SELECT 'a,b' AS x, NULL AS y",
        endpoint_url=written.endpoint_url,
    )
    assert csv.stdout == 'x,y\n"a,b",\n'


def test_query_errors(written: Written) -> None:
    bad = invoke(
        None, "query", "--url", written.url, "SELEC nothing", endpoint_url=written.endpoint_url
    )
    assert bad.exit_code == ExitCode.USAGE
    assert bad.stderr.startswith("error: query failed: Parser Error: syntax error")
    missing = invoke(
        None,
        "query",
        "--url",
        "s3://no-such-bucket-q/p",
        "SELECT count(*) FROM events",
        endpoint_url=written.endpoint_url,
    )
    assert missing.exit_code == ExitCode.STORAGE, missing.output
    assert missing.stderr.startswith("error: storage error: HTTP Error: ")
    assert "NoSuchBucket" in missing.stderr


def test_compacted_threads_stay_queryable(s3_server: EmbeddedS3Server, backdoor: Any) -> None:
    """Segments are JSON lines too: the view keeps their rows (turn is NULL there)."""
    bucket = "analytics-compacted"
    backdoor.create_bucket(Bucket=bucket)

    async def write_and_compact() -> dict[str, list[AgentEventEnvelope]]:
        async with S3EventStore(
            bucket, PREFIX, endpoint_url=s3_server.endpoint_url, session=s3_server.session()
        ) as store:
            spec = WorkloadSpec(threads=3, turns_per_thread=4, events_per_turn=6, seed=9)
            threads = list(await write_archive(store, spec, special=False))
            await store.compact(threads[0])
            await store.compact(threads[1])
            return {thread: await store.get_events(thread) for thread in threads}

    expected = asyncio.run(write_and_compact())
    con = analytics.connect(f"s3://{bucket}/{PREFIX}", endpoint_url=s3_server.endpoint_url)
    try:
        rows = con.execute(
            "SELECT thread_id, count(*), count(turn) FROM events GROUP BY thread_id"
        ).fetchall()
        lines = con.execute("SELECT thread_id, line FROM events").fetchall()
    finally:
        con.close()
    counts = {thread: (total, with_turn) for thread, total, with_turn in rows}
    threads = list(expected)
    assert counts[threads[0]] == (len(expected[threads[0]]), 0)  # compacted: no turn column
    assert counts[threads[2]] == (len(expected[threads[2]]), len(expected[threads[2]]))
    for thread, events in expected.items():
        assert sorted(line for t, line in lines if t == thread) == sorted(
            e.to_json().decode() for e in events
        )
