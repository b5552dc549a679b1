"""The Parquet tier against the turn lifecycle (FORMAT.md section 11): open (persisted,
unfinished) turns are in the ``events`` view with ``finished = false`` and are never
published; a turn finished after a publish is published by the next one; compaction stubs
(8-byte objects at turn keys) stand for their turns, before and after publishing.
Checked through the library and through ``s3-eventstore publish`` / ``query``."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import AgentEventEnvelope, S3EventStore
from tests.archive_fixtures import PREFIX, cli_env, invoke
from tests.conftest import all_keys

pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

from s3_eventstore.ops import analytics  # after the skips
from s3_eventstore.ops.columnar.log import read_state
from s3_eventstore.ops.columnar.publish import publish

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server

__all__ = ["cli_env"]  # fixture used by name

pytestmark = pytest.mark.usefixtures("cli_env")

Row = tuple[str, int, str, bool]
"""(thread_id, turn, envelope, finished)"""


def _event(kind: str, text: str, sequence: int) -> AgentEventEnvelope:
    return AgentEventEnvelope.create(kind, {"text": text}, sequence=sequence)


async def _append_turn(
    store: S3EventStore, thread: str, turn: int, events: int, *, finish: bool = True
) -> None:
    for number in range(events):
        await store.append(thread, turn, _event("text", f"{thread}/{turn}/{number}", number))
    if finish:
        await store.finish_turn(thread, turn)


async def _api_rows(store: S3EventStore, threads: list[str]) -> Counter[Row]:
    """Every persisted event as the Python API reads it (open turns included)."""
    rows: Counter[Row] = Counter()
    for thread in threads:
        for stored in await store.get_turns(thread):
            for event in stored.events:
                rows[(thread, stored.turn, event.to_json().decode(), stored.finished)] += 1
    return rows


def _view_rows(url: str, endpoint_url: str, *, published_only: bool = False) -> Counter[Row]:
    con = analytics.connect(url, endpoint_url=endpoint_url, published_only=published_only)
    try:
        sql = "SELECT thread_id, turn, envelope, finished FROM events"
        return Counter(con.execute(sql).fetchall())
    finally:
        con.close()


async def _cli_query(url: str, endpoint_url: str, sql: str) -> list[dict[str, Any]]:
    """``s3-eventstore query --json`` (in a thread: the command runs its own event loop)."""
    result = await asyncio.to_thread(
        invoke, None, "query", "--url", url, "--json", sql, endpoint_url=endpoint_url
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


async def _cli_publish(url: str, endpoint_url: str) -> dict[str, Any]:
    """``s3-eventstore publish --json``."""
    result = await asyncio.to_thread(
        invoke, None, "publish", "--url", url, "--json", endpoint_url=endpoint_url
    )
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _finished(rows: Counter[Row]) -> Counter[Row]:
    return Counter({row: n for row, n in rows.items() if row[3]})


async def test_open_turns_are_visible_unfinished_and_published_once_finished(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    url = f"s3://{bucket}/{PREFIX}"
    endpoint = s3_server.endpoint_url

    def open_store() -> S3EventStore:
        return S3EventStore(bucket, PREFIX, endpoint_url=endpoint, session=s3_server.session())

    threads = ["plain", "compacted-open", "published-then-compacted"]
    async with open_store() as agent:
        # plain: two finished turns and an open one (one GET each: the get_turn path)
        await _append_turn(agent, "plain", 0, 3)
        await _append_turn(agent, "plain", 1, 2)
        await _append_turn(agent, "plain", 2, 3, finish=False)
        # compacted-open: finished turns compacted into a segment (stubs at their keys)
        # before any publish, then an open turn (the whole-thread path, get_turns)
        for turn in range(3):
            await _append_turn(agent, "compacted-open", turn, 2)
        await agent.compact("compacted-open")
        await _append_turn(agent, "compacted-open", 3, 4, finish=False)
        # published-then-compacted: published first, compacted after (stubs of published turns)
        for turn in range(2):
            await _append_turn(agent, "published-then-compacted", turn, 2)
        await agent.flush()  # the open turns are persisted: objects with finished=false
        stubs = [
            k
            for k in all_keys(backdoor, bucket, f"{PREFIX}/threads/")
            if "compacted-open" in k
            and backdoor.head_object(Bucket=bucket, Key=k)["ContentLength"] == 8
        ]
        assert len(stubs) == 3  # compaction left a stub at each compacted turn key
        persisted = await _api_rows(agent, threads)
        open_rows = {row for row in persisted if not row[3]}
        assert {(t, n) for t, n, _, _ in open_rows} == {("plain", 2), ("compacted-open", 3)}
        assert sum(persisted[row] for row in open_rows) == 7

        # The view before any publish: everything, the open turns unfinished.
        assert _view_rows(url, endpoint) == persisted

        first = await _cli_publish(url, endpoint)
        assert first["turns"] == 2 + 3 + 2  # finished turns only
        assert first["open_turns"] == 2
        async with open_store() as reader:
            state = await read_state(reader)
        assert ("plain", 2) not in state.turns
        assert ("compacted-open", 3) not in state.turns
        assert _view_rows(url, endpoint) == persisted  # open turns now the pending half
        assert _view_rows(url, endpoint, published_only=True) == _finished(persisted)

        await agent.compact("published-then-compacted")  # stubs of published turns
        async with open_store() as again:
            again.requests.reset()
            second = await publish(again)
            # Nothing new: stubs of published turns and the recorded segment cost nothing;
            # each open turn costs its GET, the log its entry.
            assert (second.turns, second.files, second.open_turns) == (0, [], 2)
            assert again.requests.snapshot().get("GetObject", 0) == 2 + 1
        assert _view_rows(url, endpoint) == persisted
        text = await asyncio.to_thread(invoke, None, "publish", "--url", url, endpoint_url=endpoint)
        assert text.exit_code == 0, text.output
        assert text.stdout.startswith("published 0 turn(s)")
        assert text.stdout.rstrip().endswith("; 2 open turn(s) left for later")
        assert await _cli_query(
            url,
            endpoint,
            "SELECT thread_id, turn, count(*) AS n FROM events WHERE NOT finished "
            "GROUP BY ALL ORDER BY thread_id",
        ) == [
            {"thread_id": "compacted-open", "turn": 3, "n": 4},
            {"thread_id": "plain", "turn": 2, "n": 3},
        ]

        # The agent resumes and finishes both turns: the next publish takes exactly them.
        await agent.append("plain", 2, _event("turn_complete", "done", 3))
        await agent.finish_turn("plain", 2)
        await agent.finish_turn("compacted-open", 3)
        finished = await _api_rows(agent, threads)
    assert all(row[3] for row in finished)
    assert sum(finished.values()) == sum(persisted.values()) + 1
    third = await _cli_publish(url, endpoint)
    assert (third["turns"], third["open_turns"]) == (2, 0)
    assert third["events"] == 4 + 4
    assert _view_rows(url, endpoint, published_only=True) == finished
    assert _view_rows(url, endpoint) == finished
    fourth = await _cli_publish(url, endpoint)
    assert (fourth["turns"], fourth["files"]) == (0, [])
    assert await _cli_query(
        url, endpoint, "SELECT count(*) AS n, bool_and(finished) AS f FROM events"
    ) == [{"n": sum(finished.values()), "f": True}]
