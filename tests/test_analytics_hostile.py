"""Queries that cannot be fooled by the data, the prefix or the SQL (issue 12, part 4)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import AgentEventEnvelope, S3EventStore
from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.errors import InvalidEnvelopeError
from s3_eventstore.memory import InMemoryEventStore
from tests.archive_fixtures import cli_env, invoke

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

from s3_eventstore.ops import analytics  # after the skips
from s3_eventstore.ops.columnar.publish import publish

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server

__all__ = ["cli_env"]

pytestmark = pytest.mark.usefixtures("cli_env")

GLOB_PREFIXES = ("team [a]", "p*q", "runs?x=1", "a{b,c}", "x%41y", "d**/e", "q/day=2024-01-01")
"""Each is read exactly: never a sibling prefix that a glob or URL reading would match."""
SIBLINGS = {
    "team [a]": "team a",
    "p*q": "pXXq",
    "runs?x=1": "runs",
    "a{b,c}": "ab",
    "x%41y": "xAy",
    "d**/e": "dz/e",
    "q/day=2024-01-01": "q",
}


def _event(event_type: str, sequence: int = 0, **fields: Any) -> AgentEventEnvelope:
    return AgentEventEnvelope.create(event_type, fields, sequence=sequence)


async def _write(store: S3EventStore, thread: str, turns: int, marker: str) -> None:
    for turn in range(turns):
        await store.append(thread, turn, _event("start", text=marker))
        await store.append(thread, turn, _event("turn_complete", 1, usage={"input_tokens": 3}))
        await store.finish_turn(thread, turn)


def _store(server: EmbeddedS3Server, bucket: str, prefix: str) -> S3EventStore:
    return S3EventStore(bucket, prefix, endpoint_url=server.endpoint_url, session=server.session())


@pytest.mark.parametrize("prefix", GLOB_PREFIXES)
@pytest.mark.parametrize("published", [False, True])
def test_glob_and_url_characters_in_the_prefix(
    s3_server: EmbeddedS3Server, bucket: str, prefix: str, published: bool
) -> None:
    async def write() -> None:
        async with _store(s3_server, bucket, prefix) as mine:
            await _write(mine, "t", 2, "mine")
            if published:
                await publish(mine)
            await _write(mine, "u", 1, "mine")  # pending in both cases
        async with _store(s3_server, bucket, SIBLINGS[prefix]) as other:
            await _write(other, "t", 3, "other")
            await publish(other)

    asyncio.run(write())
    con = analytics.connect(f"s3://{bucket}/{prefix}", endpoint_url=s3_server.endpoint_url)
    try:
        rows = con.execute(
            "SELECT thread_id, count(*), count(DISTINCT turn), min(event->>'text') "
            "FROM events WHERE type = 'start' GROUP BY ALL ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("t", 2, 2, "mine"), ("u", 1, 1, "mine")]


def test_one_huge_event_does_not_break_the_rest(s3_server: EmbeddedS3Server, bucket: str) -> None:
    huge = "z" * (17 << 20)  # over DuckDB's 16 MiB line limit and its 2 MB default

    async def write() -> None:
        async with _store(s3_server, bucket, "big") as store:
            await _write(store, "small", 3, "ok")
            await store.append("large", 0, _event("tool_call_end", name="read", output=huge))
            await store.append("large", 0, _event("turn_complete", 1, usage={"input_tokens": 5}))
            await store.finish_turn("large", 0)
            await publish(store)
            await store.append("large", 1, _event("text", text=huge))
            await store.finish_turn("large", 1)  # pending, read through the library

    asyncio.run(write())
    sql = (
        "SELECT type, count(*) AS n, sum(input_tokens) AS tokens, max(length(envelope)) > 17e6 "
        "AS has_huge FROM events GROUP BY type ORDER BY type"
    )
    result = invoke(
        None,
        "query",
        "--url",
        f"s3://{bucket}/big",
        "--format",
        "csv",
        sql,
        endpoint_url=s3_server.endpoint_url,
    )
    assert result.exit_code == 0, result.output[:500]
    assert result.stdout.splitlines() == [
        "type,n,tokens,has_huge",
        "start,3,,False",
        "text,1,,True",
        "tool_call_end,1,,True",
        "turn_complete,4,14,False",
    ]
    assert len(result.stderr) < 1000


async def test_a_duplicated_key_is_refused_before_append(s3_store: S3EventStore) -> None:
    base = '{"event_id":"e023033d-364e-433f-b7c8-82f4202cc828","sequence":0,'
    lines = [
        base + '"timestamp":"2025-06-01T12:00:00Z","type":"start","type":"done"}',
        base + '"timestamp":"2025-06-01T12:00:00Z","type":"x","usage":{"a":1,"a":2}}',
        base + '"timestamp":"2025-06-01T12:00:00Z","type":"x","l":[{"k":1},{"k":2,"k":3}]}',
        base + '"timestamp":"2025-06-01T12:00:00Z","type":"x","\\u0074ype":"y"}',  # escaped
        base + '"timestamp" : "2025-06-01T12:00:00Z", "type":"x","sequence":1}',  # spaced
        (base + '"timestamp":"2025-06-01T12:00:00Z",\n"type":"x","type":"y"}'),  # multi-line
    ]
    for line in lines:
        with pytest.raises(InvalidEnvelopeError, match="twice"):
            AgentEventEnvelope.from_json(line)
        with pytest.raises(InvalidEnvelopeError, match="twice"):
            AgentEventEnvelope.from_json(line.encode())
    fine = [
        base + '"timestamp":"2025-06-01T12:00:00Z","type":"x","a":{"type":1},"b":{"type":2}}',
        base + '"timestamp": "2025-06-01T12:00:00Z", "type": "x", "n": 1.0e5}',  # not orjson's
        base + '"timestamp":"2025-06-01T12:00:00Z","type":"x","k":"\\u00e9","K":1}',
    ]
    for line in fine:
        envelope = AgentEventEnvelope.from_json(line)
        for store in (s3_store, InMemoryEventStore()):
            await store.append("dup", 0, envelope)
    await s3_store.finish_turn("dup", 0)
    (turn,) = await s3_store.get_turns("dup")
    assert [e.to_json().decode() for e in turn.events] == fine


def test_an_archived_duplicate_reads_the_same_in_library_and_view(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    """A line written before the check (or by another writer) is read one way everywhere."""
    from s3_eventstore.format.turn import TurnCodec

    line = (
        '{"event_id":"e023033d-364e-433f-b7c8-82f4202cc828","sequence":0,'
        '"timestamp":"2025-06-01T12:00:00Z","type":"start","type":"turn_complete",'
        '"usage":{"input_tokens":1,"input_tokens":7}}'
    )
    envelope = AgentEventEnvelope.from_json(line, unique_keys=False)  # as a legacy writer
    encoded = TurnCodec().encode("old", 0, [envelope], writer="legacy-writer")
    key = f"legacy/threads/shard={_shard('old')}/thread=old/{0:020d}.jsonl.zst"
    backdoor.put_object(Bucket=bucket, Key=key, Body=encoded.body, Metadata=encoded.metadata)

    async def library() -> tuple[str, Any]:
        async with _store(s3_server, bucket, "legacy") as store:
            (stored,) = await store.get_turns("old")
            return stored.events[0].type, stored.events[0].to_dict()["usage"]["input_tokens"]

    assert asyncio.run(library()) == ("turn_complete", 7)
    for step in ("pending", "published"):
        if step == "published":

            async def run_publish() -> None:
                async with _store(s3_server, bucket, "legacy") as store:
                    await publish(store)

            asyncio.run(run_publish())
        con = analytics.connect(f"s3://{bucket}/legacy", endpoint_url=s3_server.endpoint_url)
        try:
            assert con.execute("SELECT type, input_tokens FROM events").fetchall() == [
                ("turn_complete", 7)
            ]
        finally:
            con.close()


def _shard(thread_id: str) -> str:
    from s3_eventstore.format.keys import thread_shard

    return thread_shard(thread_id)


def test_select_star_needs_no_pytz(s3_server: EmbeddedS3Server, bucket: str) -> None:
    async def write() -> None:
        async with _store(s3_server, bucket, "tz") as store:
            await _write(store, "t", 2, "x")
            await publish(store)
            await _write(store, "u", 1, "y")

    asyncio.run(write())
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["pytz"] = None  # as if not installed
        from s3_eventstore.ops import analytics
        con = analytics.connect("s3://{bucket}/tz", endpoint_url={s3_server.endpoint_url!r})
        rows = con.execute("SELECT * FROM events").fetchall()
        print(len(rows), sorted({{type(v).__name__ for row in rows for v in row}}))
        """
    )
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "embedded",
        "AWS_SECRET_ACCESS_KEY": "embedded-secret",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("6 ")
    assert "datetime" in done.stdout


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY (SELECT 1) TO '{tmp}/x.csv'",
        "ATTACH '{tmp}/db.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "SELECT * FROM read_parquet('s3://{bucket}/tz/published/*/*.parquet')",
    ],
)
def test_query_touches_no_local_file_and_no_network(
    s3_server: EmbeddedS3Server, bucket: str, tmp_path: Any, sql: str
) -> None:
    result = invoke(
        None,
        "query",
        "--url",
        f"s3://{bucket}/locked",
        sql.format(tmp=tmp_path, bucket=bucket),
        endpoint_url=s3_server.endpoint_url,
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    assert list(tmp_path.iterdir()) == []
    assert "root:" not in result.output


def test_local_files_are_an_explicit_opt_in(
    s3_server: EmbeddedS3Server, bucket: str, tmp_path: Any
) -> None:
    target = tmp_path / "out.csv"
    result = invoke(
        None,
        "query",
        "--url",
        f"s3://{bucket}/opt-in",
        "--allow-local-files",
        f"COPY (SELECT 42 AS answer) TO '{target}'",
        endpoint_url=s3_server.endpoint_url,
    )
    assert result.exit_code == 0, result.output
    assert target.read_text().splitlines() == ["answer", "42"]


def test_no_secret_is_readable_from_sql(
    s3_server: EmbeddedS3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "embedded")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "embedded-secret")
    con = analytics.connect(f"s3://{bucket}/secrets", endpoint_url=s3_server.endpoint_url)
    try:
        try:
            secrets: object = con.execute("SELECT * FROM duckdb_secrets()").fetchall()
        except duckdb.PermissionException:  # the persistent secret folder is locked away
            secrets = []
        assert secrets == []
        settings = con.execute("SELECT name, value FROM duckdb_settings()").fetchall()
        assert not [s for s in settings if "embedded-secret" in str(s[1])]
        for sql in (
            "SELECT current_setting('s3_secret_access_key')",
            "SELECT getenv('AWS_SECRET_ACCESS_KEY')",
        ):
            try:
                found: object = con.execute(sql).fetchall()
            except duckdb.Error as err:  # refused: fine, if it does not quote the secret
                found = str(err)
            assert "embedded-secret" not in str(found)
    finally:
        con.close()


def test_a_failing_query_is_not_a_usage_error(s3_server: EmbeddedS3Server, bucket: str) -> None:
    for sql, code in (
        ("SELECT 1/0::INTEGER + CAST('x' AS INTEGER)", ExitCode.QUERY),
        ("SELECT error('boom')", ExitCode.QUERY),
        ("SELECT nothing FROM events", ExitCode.USAGE),
        ("SELEC 1", ExitCode.USAGE),
    ):
        result = invoke(
            None, "query", "--url", f"s3://{bucket}/codes", sql, endpoint_url=s3_server.endpoint_url
        )
        assert result.exit_code == code, (sql, result.output)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bkt/runs?x=1", ("bkt", "runs?x=1")),
        ("s3://bkt/team [a]/p*q", ("bkt", "team [a]/p*q")),
        ("s3://bkt/a#frag", ("bkt", "a#frag")),
        ("s3://bkt/50%25", ("bkt", "50%25")),  # literal: not percent-decoded
        ("s3://bkt", ("bkt", "")),
        ("s3://bkt/", ("bkt", "")),
    ],
)
def test_archive_urls_are_read_literally(url: str, expected: tuple[str, str]) -> None:
    assert analytics.parse_archive_url(url) == expected


@pytest.mark.parametrize("url", ["s3:///p", "http://bkt/p", "s3://b?x/p", "s3://", "bkt/p", ""])
def test_bad_archive_urls_are_usage_errors(url: str) -> None:
    from s3_eventstore.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        analytics.parse_archive_url(url)
