"""Analytics at archive scale: the per-turn objects vs the Parquet tier, side by side.

Writes the workload (default 100,000 events: 500 threads x 10 turns x 20 events; quick:
1,000), then runs four queries through ``analytics.connect`` twice: before ``publish``
(every turn is read from its turn object through the library) and after it (the view
reads the committed Parquet files). Each query is one fresh connection plus the SQL,
as ``s3-eventstore query`` runs it. Requests and response bytes are counted by a
counting proxy (:class:`~s3_eventstore.testing.FaultProxy` with no faults) in front of
the server; wall time is measured without the proxy, median of the repetitions.
Also counts ``publish``'s own requests.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import TYPE_CHECKING, Any

from s3_eventstore import S3EventStore
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns

if TYPE_CHECKING:
    from benchmarks.harness import Context
    from s3_eventstore.ops.analytics import S3Access

NAME = "analytics"

QUERIES: dict[str, str] = {
    "count_by_type": "SELECT type, count(*) FROM events GROUP BY type",
    "tokens_per_thread": (
        "SELECT thread_id, sum(input_tokens + output_tokens) FROM events "
        "WHERE type = 'turn_complete' GROUP BY thread_id"
    ),
    "one_thread": (
        "SELECT envelope FROM events WHERE thread_id = '{thread}' ORDER BY turn, position"
    ),
    "cross_thread_join": """WITH per_turn AS (
        SELECT s.thread_id, s.turn, s.event_id AS start_id, c.event_id AS complete_id
        FROM events s JOIN events c USING (thread_id, turn)
        WHERE s.type = 'start' AND c.type = 'turn_complete')
      SELECT count(*) FROM per_turn a JOIN per_turn b
        ON a.turn = b.turn AND a.thread_id < b.thread_id""",
}
AGGREGATES = ("count_by_type", "tokens_per_thread")


def _spec(ctx: Context) -> WorkloadSpec:
    if ctx.sizes.quick:
        return WorkloadSpec(threads=10, turns_per_thread=3, events_per_turn=10, seed=12)
    threads = int(ctx.shared.get("analytics_threads", 500))
    return WorkloadSpec(threads=threads, turns_per_thread=10, events_per_turn=20, seed=12)


def _access(ctx: Context, endpoint_url: str) -> S3Access:
    from s3_eventstore.demo.embedded import CREDENTIALS
    from s3_eventstore.ops.analytics import resolve_access

    access = resolve_access(endpoint_url=endpoint_url)
    if ctx.embedded:
        from dataclasses import replace

        access = replace(
            access,
            key_id=CREDENTIALS["aws_access_key_id"],
            secret=CREDENTIALS["aws_secret_access_key"],
            session_token=None,
            region=CREDENTIALS["region_name"],
        )
    return access


def _connect(url: str, access: S3Access, published_only: bool) -> tuple[float, Any]:
    from s3_eventstore.ops import analytics

    started = time.perf_counter()
    con = analytics.connect(url, access=access, published_only=published_only)
    return time.perf_counter() - started, con


def _timed(con: Any, sql: str) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    rows = con.execute(sql).fetchall()
    return time.perf_counter() - started, rows


def _tier(
    ctx: Context, url: str, proxy: Any, thread: str, repetitions: int, published_only: bool
) -> dict[str, dict[str, Any]]:
    """Each query as ``query`` runs it: a fresh connection, then the SQL. The connection's
    cost (reading the log, the LIST and every pending turn) is measured once per pass and
    added to each query's own; requests and bytes likewise (connection + the query's own
    reads of Parquet column chunks, counted at the proxy)."""
    sqls = {name: template.format(thread=thread) for name, template in QUERIES.items()}
    proxy.reset_stats()
    _, con = _connect(url, _access(ctx, proxy.endpoint_url), published_only)
    connect_stats = proxy.stats()
    figures: dict[str, dict[str, Any]] = {}
    try:
        for name, sql in sqls.items():
            proxy.reset_stats()
            elapsed, rows = _timed(con, sql)
            stats = proxy.stats()
            figures[name] = {
                "get_requests": connect_stats.requests.get("GetObject", 0)
                + stats.requests.get("GetObject", 0),
                "requests": connect_stats.total_requests + stats.total_requests,
                "bytes_read": sum(connect_stats.response_bytes.values())
                + sum(stats.response_bytes.values()),
                "rows": len(rows),
                "answer": sorted(map(tuple, rows))
                if name != "one_thread"
                else [r[0] for r in rows],
                "_times": [elapsed],
            }
    finally:
        con.close()
    connect_times = []
    for _ in range(repetitions):
        connected, con = _connect(url, _access(ctx, ctx.endpoint_url), published_only)
        connect_times.append(connected)
        try:
            for name, sql in sqls.items():
                figures[name]["_times"].append(_timed(con, sql)[0])
        finally:
            con.close()
    connect_seconds = statistics.median(connect_times) if connect_times else None
    for name, figure in figures.items():
        times = figure.pop("_times")
        own = statistics.median(times[1:] or times)
        base = connect_seconds if connect_seconds is not None else 0.0
        figure["connect_seconds"] = round(base, 4)
        figure["query_seconds"] = round(own, 4)
        figure["seconds"] = round(base + own, 4)
        ctx.log(f"   {name}: {figure['seconds']} s, {figure['bytes_read']} B")
    return figures


async def _write(store: S3EventStore, spec: WorkloadSpec) -> tuple[int, int, str]:
    events = turns = 0
    first = ""
    pending: list[Any] = []

    async def finish(thread_id: str, turn: int, generated: Any) -> None:
        for event in generated.events:
            await store.append(thread_id, turn, event)
        await store.finish_turn(thread_id, turn)

    for generated in generate_turns(spec):
        first = first or generated.thread_id
        events += len(generated.events)
        turns += 1
        pending.append(finish(generated.thread_id, generated.turn, generated))
        if len(pending) >= 32:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    return events, turns, first


async def run(ctx: Context) -> dict[str, Any]:
    from s3_eventstore.ops.columnar.publish import publish
    from s3_eventstore.testing.faultproxy import FaultProxy

    spec = _spec(ctx)
    repetitions = 1  # the per-turn path reads every object at connect: one timed pass
    parquet_repetitions = 3
    async with ctx.store(NAME) as store:
        started = time.perf_counter()
        events, turns, thread = await _write(store, spec)
        ctx.log(f"   wrote {events} events in {turns} turns: {time.perf_counter() - started:.1f} s")
    url = f"s3://{ctx.bucket}/{ctx.prefix(NAME)}"
    with FaultProxy(ctx.endpoint_url) as proxy:
        before = await asyncio.to_thread(_tier, ctx, url, proxy, thread, repetitions, False)
        proxy.reset_stats()
        async with S3EventStore(
            ctx.bucket, ctx.prefix(NAME), endpoint_url=proxy.endpoint_url, session=ctx.session()
        ) as counted_store:
            started = time.perf_counter()
            report = await publish(counted_store)
            publish_seconds = time.perf_counter() - started
        publish_stats = proxy.stats()
        after = await asyncio.to_thread(_tier, ctx, url, proxy, thread, parquet_repetitions, True)
        both = await asyncio.to_thread(_tier, ctx, url, proxy, thread, parquet_repetitions, False)
    same = {
        name: before[name].pop("answer") == after[name].pop("answer") == both[name].pop("answer")
        for name in QUERIES
    }
    ratios_view = {
        name: {
            "speedup": round(before[name]["seconds"] / max(both[name]["seconds"], 1e-9), 1),
            "fewer_bytes": round(before[name]["bytes_read"] / max(both[name]["bytes_read"], 1), 1),
        }
        for name in QUERIES
    }
    ratios = {
        name: {
            "speedup": round(before[name]["seconds"] / max(after[name]["seconds"], 1e-9), 1),
            "fewer_bytes": round(before[name]["bytes_read"] / max(after[name]["bytes_read"], 1), 1),
            "fewer_gets": round(
                before[name]["get_requests"] / max(after[name]["get_requests"], 1), 1
            ),
        }
        for name in QUERIES
    }
    return {
        "events": events,
        "turns": turns,
        "threads": spec.threads,
        "per_turn_objects": before,
        "parquet": after,
        "parquet_plus_pending_view": both,
        "ratios": ratios,
        "ratios_view_after_publish": ratios_view,
        "same_answers": same,
        "publish": {
            "seconds": round(publish_seconds, 2),
            "requests": publish_stats.requests,
            "get_requests": publish_stats.requests.get("GetObject", 0),
            "put_requests": publish_stats.requests.get("PutObject", 0),
            "files": len(report.files),
            "bytes_written": report.bytes_written,
            "gets_per_turn_object": round(
                (publish_stats.requests.get("GetObject", 0)) / max(turns, 1), 3
            ),
            "puts_beyond_one_per_file": publish_stats.requests.get("PutObject", 0)
            - len(report.files),
        },
        "aggregate_goals": {
            "bytes_100x": all(ratios[n]["fewer_bytes"] >= 100 for n in AGGREGATES),
            "speed_50x": all(ratios[n]["speedup"] >= 50 for n in AGGREGATES),
        },
    }
