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
pytest.importorskip("pyarrow")

from s3_eventstore.ops import analytics  # after the skips: it needs duckdb
from s3_eventstore.ops.columnar.publish import publish
from s3_eventstore.ops.columnar.schema import COLUMNS

__all__ = ["cli_env"]

pytestmark = pytest.mark.usefixtures("cli_env")


class Written:
    """The archive written once for this module, and what the Python API reads back."""

    def __init__(self, url: str, endpoint_url: str, events: dict[str, list[Any]]) -> None:
        self.url = url
        self.endpoint_url = endpoint_url
        self.events = events  # thread -> [(turn, envelope)] from store.get_turns


Turns = list[tuple[str, int, tuple[AgentEventEnvelope, ...]]]
TIERS = ("pending", "published", "mixed")
"""Nothing published; everything published; half published, then more turns written, one
thread compacted after publishing and one before."""


def _turns_to_write() -> Turns:
    turns: Turns = []

    class Collect:
        async def append(self, thread: str, turn: int, event: AgentEventEnvelope) -> None:
            if not turns or turns[-1][:2] != (thread, turn):
                turns.append((thread, turn, ()))
            turns[-1] = (thread, turn, (*turns[-1][2], event))

        async def finish_turn(self, thread: str, turn: int) -> None:
            if not turns or turns[-1][:2] != (thread, turn):
                turns.append((thread, turn, ()))

    spec = WorkloadSpec(threads=5, turns_per_thread=3, events_per_turn=10, seed=5)
    asyncio.run(write_archive(Collect(), spec))  # type: ignore[arg-type]
    return turns


async def _write(store: S3EventStore, turns: Turns) -> None:
    for thread, turn, events in turns:
        for event in events:
            await store.append(thread, turn, event)
        await store.finish_turn(thread, turn)


@pytest.fixture(scope="module", params=TIERS)
def written(request: pytest.FixtureRequest, s3_server: EmbeddedS3Server, backdoor: Any) -> Written:
    tier = request.param
    bucket = f"analytics-{tier}"
    backdoor.create_bucket(Bucket=bucket)
    turns = _turns_to_write()

    async def write_and_read() -> dict[str, list[Any]]:
        async with S3EventStore(
            bucket, PREFIX, endpoint_url=s3_server.endpoint_url, session=s3_server.session()
        ) as store:
            threads = list(dict.fromkeys(thread for thread, _, _ in turns))
            if tier == "pending":
                await _write(store, turns)
            elif tier == "published":
                await _write(store, turns)
                await publish(store)
            else:
                half = len(turns) // 2
                await _write(store, turns[:half])
                await store.compact(threads[0])  # compacted, then published
                await publish(store)
                await _write(store, turns[half:])
                await store.compact(threads[1])  # published turns move into a segment
                await store.compact(threads[-1])  # unpublished turns in a segment
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
                    (turn.turn, position, event)
                    for turn in await store.get_turns(thread)
                    for position, event in enumerate(turn.events)
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
    return [(t, n, e) for t, rows in written.events.items() for n, _, e in rows]


def test_every_line_comes_back_exactly(connection: Any, written: Written) -> None:
    rows = connection.execute(
        """SELECT thread_id, turn, position, event_id, sequence, epoch_ns("timestamp"),
                  timestamp_text, type, envelope, finished FROM events"""
    ).fetchall()
    expected = [
        (
            t,
            n,
            p,
            e.to_dict()["event_id"],
            e.sequence,
            e.timestamp_ns,
            e.timestamp,
            e.type,
            e.to_json().decode(),
            True,
        )
        for t, per_thread in written.events.items()
        for n, p, e in per_thread
    ]
    assert sorted(rows) == sorted(expected)
    assert len(rows) == len({(r[0], r[1], r[2]) for r in rows})  # no row twice


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
        """SELECT thread_id, sum(input_tokens + output_tokens)
           FROM events WHERE type = 'turn_complete' AND input_tokens IS NOT NULL
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
        *(c.name for c in COLUMNS),
        "day",
        "event",
        "finished",
    ]


def test_the_json_column_agrees_with_the_typed_ones(connection: Any) -> None:
    mismatches = connection.execute(
        """SELECT count(*) FROM events
           WHERE event->>'type' IS DISTINCT FROM type
              OR (type = 'turn_complete'
                  AND (event->'usage'->>'input_tokens')::BIGINT IS DISTINCT FROM input_tokens)"""
    ).fetchone()
    assert mismatches == (0,)


def test_the_access_repr_hides_the_secret() -> None:
    access = analytics.S3Access(
        region="us-east-1", key_id="AKIA1", secret="very-secret", session_token="tok-secret"
    )
    assert "very-secret" not in repr(access)
    assert "tok-secret" not in repr(access)
    assert "AKIA1" in repr(access)


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
    assert bad.stderr.startswith("error: bad query: Parser Error: syntax error")
    missing = invoke(
        None,
        "query",
        "--url",
        "s3://no-such-bucket-q/p",
        "SELECT count(*) FROM events",
        endpoint_url=written.endpoint_url,
    )
    assert missing.exit_code == ExitCode.STORAGE, missing.output
    assert missing.stderr.startswith("error: storage error: ")
    running = invoke(
        None,
        "query",
        "--url",
        written.url,
        "SELECT CAST(type AS INTEGER) FROM events",
        endpoint_url=written.endpoint_url,
    )
    assert running.exit_code == ExitCode.QUERY, running.output
    assert running.stderr.startswith("error: query failed: Conversion Error")


def test_compacted_threads_have_turn_numbers(s3_server: EmbeddedS3Server, backdoor: Any) -> None:
    """Segments hold many turns: the view still gives every row its turn (from the index)."""
    bucket = "analytics-compacted"
    backdoor.create_bucket(Bucket=bucket)

    async def write_and_compact() -> dict[str, list[tuple[int, AgentEventEnvelope]]]:
        async with S3EventStore(
            bucket, PREFIX, endpoint_url=s3_server.endpoint_url, session=s3_server.session()
        ) as store:
            spec = WorkloadSpec(threads=3, turns_per_thread=4, events_per_turn=6, seed=9)
            threads = list(await write_archive(store, spec, special=False))
            await store.compact(threads[0])
            await publish(store)
            await store.compact(threads[1])
            return {
                thread: [(t.turn, e) for t in await store.get_turns(thread) for e in t.events]
                for thread in threads
            }

    expected = asyncio.run(write_and_compact())
    con = analytics.connect(f"s3://{bucket}/{PREFIX}", endpoint_url=s3_server.endpoint_url)
    try:
        rows = con.execute("SELECT thread_id, turn, envelope FROM events").fetchall()
    finally:
        con.close()
    assert sorted(rows) == sorted(
        (thread, turn, e.to_json().decode())
        for thread, events in expected.items()
        for turn, e in events
    )
