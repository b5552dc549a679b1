"""Analytics at archive scale: the per-turn objects vs the Parquet tier, side by side.

Writes the workload (default 100,000 events: 500 threads x 10 turns x 20 events; quick:
300), then runs four queries through ``analytics.connect`` in three states: before
``publish`` (the view reads every turn object through the library), the Parquet tier
alone after it (``published_only``: the log's header lines, then each file's footer and
the column chunks a query needs, by ranged GETs), and the default view after it (the
Parquet tier plus the LIST that looks for unpublished turns). On the Parquet side every
query is a fresh connection plus the SQL, as ``s3-eventstore query`` runs it. Requests
and response bytes (headers included) are counted by a counting proxy
(:class:`~s3_eventstore.testing.faultproxy.FaultProxy` with no faults) in front of the
server, by operation; wall time is measured without the proxy, median of the
repetitions, with the load average before and after each pass. Also counts
``publish``'s own requests.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter
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


def _load() -> list[float]:
    """The 1-, 5- and 15-minute load averages (wall times depend on them; counts do not)."""
    return [round(x, 2) for x in os.getloadavg()]


def _figure(stats: list[Any], rows: list[Any], name: str) -> dict[str, Any]:
    """Requests and response bytes of one query (its connection's included)."""
    by_operation: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    for stat in stats:
        by_operation.update(stat.response_bytes)
        requests.update(stat.requests)
    return {
        "get_requests": requests.get("GetObject", 0),
        "requests": sum(requests.values()),
        "requests_by_operation": dict(sorted(requests.items())),
        "bytes_read": sum(by_operation.values()),
        "bytes_by_operation": dict(sorted(by_operation.items())),
        "rows": len(rows),
        "answer": sorted(map(tuple, rows)) if name != "one_thread" else [r[0] for r in rows],
    }


def _tier(
    ctx: Context,
    url: str,
    proxy: Any,
    thread: str,
    repetitions: int,
    published_only: bool,
    *,
    fresh: bool,
) -> dict[str, dict[str, Any]]:
    """Each query as ``query`` runs it: a connection, then the SQL. With ``fresh`` every
    query gets a connection of its own, counted and timed (nothing is cached between
    queries: each reads the log, the footers and its column chunks). Without it (the
    per-turn path, whose connection reads all 5,000 objects and costs minutes) one
    connection is made per pass and its cost added to each query's own; the queries then
    run over what it read. Requests and bytes come from one pass through the counting
    proxy, times from ``repetitions`` more passes without it (median)."""
    sqls = {name: template.format(thread=thread) for name, template in QUERIES.items()}
    load_before = _load()
    figures: dict[str, dict[str, Any]] = {}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sqls}
    counted = _access(ctx, proxy.endpoint_url)
    direct = _access(ctx, ctx.endpoint_url)
    if fresh:
        for name, sql in sqls.items():
            proxy.reset_stats()
            connected, con = _connect(url, counted, published_only)
            try:
                connect_stats = proxy.stats()
                proxy.reset_stats()
                elapsed, rows = _timed(con, sql)
                figures[name] = _figure([connect_stats, proxy.stats()], rows, name)
            finally:
                con.close()
            times[name].append((connected, elapsed))
        for _ in range(repetitions):
            for name, sql in sqls.items():
                connected, con = _connect(url, direct, published_only)
                try:
                    times[name].append((connected, _timed(con, sql)[0]))
                finally:
                    con.close()
    else:
        proxy.reset_stats()
        connected, con = _connect(url, counted, published_only)
        connect_stats = proxy.stats()
        try:
            for name, sql in sqls.items():
                proxy.reset_stats()
                elapsed, rows = _timed(con, sql)
                figures[name] = _figure([connect_stats, proxy.stats()], rows, name)
                times[name].append((connected, elapsed))
        finally:
            con.close()
        for _ in range(repetitions):
            connected, con = _connect(url, direct, published_only)
            try:
                for name, sql in sqls.items():
                    times[name].append((connected, _timed(con, sql)[0]))
            finally:
                con.close()
    load_after = _load()
    for name, figure in figures.items():
        measured = times[name][1:] or times[name]  # the counted pass went through the proxy
        connect_seconds = statistics.median(c for c, _ in measured)
        own = statistics.median(q for _, q in measured)
        figure["connect_seconds"] = round(connect_seconds, 4)
        figure["query_seconds"] = round(own, 4)
        figure["seconds"] = round(connect_seconds + own, 4)
        figure["loadavg_before_after"] = [load_before, load_after]
        ctx.log(
            f"   {name}: {figure['seconds']} s, {figure['requests']} requests, "
            f"{figure['bytes_read']} B (load {load_before[0]}-{load_after[0]})"
        )
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
        ctx.log(
            f"   wrote {events} events in {turns} turns: {time.perf_counter() - started:.1f} s "
            f"(load {_load()})"
        )
    url = f"s3://{ctx.bucket}/{ctx.prefix(NAME)}"
    with FaultProxy(ctx.endpoint_url) as proxy:
        before = await asyncio.to_thread(
            _tier, ctx, url, proxy, thread, repetitions, False, fresh=False
        )
        proxy.reset_stats()
        publish_load = _load()
        async with S3EventStore(
            ctx.bucket, ctx.prefix(NAME), endpoint_url=proxy.endpoint_url, session=ctx.session()
        ) as counted_store:
            started = time.perf_counter()
            report = await publish(counted_store)
            publish_seconds = time.perf_counter() - started
        publish_stats = proxy.stats()
        after = await asyncio.to_thread(
            _tier, ctx, url, proxy, thread, parquet_repetitions, True, fresh=True
        )
        both = await asyncio.to_thread(
            _tier, ctx, url, proxy, thread, parquet_repetitions, False, fresh=True
        )
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
            "loadavg_before_after": [publish_load, _load()],
            "requests": publish_stats.requests,
            "bytes_by_operation": publish_stats.response_bytes,
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
