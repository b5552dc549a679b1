"""Read latency over the server: get_turns of a long thread at several concurrencies,
and event_count / get_events_since of its last turn.

The thread has ``read_turns`` turns (1000 in the full run). Concurrency levels are
measured round-robin, one ``get_turns`` of each level per round, so drifts of a noisy
machine spread over all of them. Each level uses its own store (its own client and
connection pool), opened before timing.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks.harness import Context, percentiles, process_cpu_seconds, rounded
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns

NAME = "read"


def _ms(values: list[float]) -> dict[str, float]:
    return {k: rounded(v) for k, v in percentiles([v * 1000 for v in values]).items()}


async def run(ctx: Context) -> dict[str, Any]:
    base = ctx.sizes.workload
    spec = WorkloadSpec(
        threads=1,
        turns_per_thread=ctx.sizes.read_turns,
        events_per_turn=base.events_per_turn,
        text_bytes=base.text_bytes,
        seed=base.seed + 3,
    )
    turns = list(generate_turns(spec))
    thread = turns[0].thread_id
    total_events = sum(len(t.events) for t in turns)
    last_offset = total_events - len(turns[-1].events)
    async with ctx.store(NAME) as writer:
        for generated in turns:
            for event in generated.events:
                await writer.append(thread, generated.turn, event)
            await writer.finish_turn(thread, generated.turn)

    levels = ctx.sizes.read_concurrency
    stores = {level: ctx.store(NAME, read_concurrency=level) for level in levels}
    seconds: dict[int, list[float]] = {level: [] for level in levels}
    client_cpu: dict[int, list[float]] = {level: [] for level in levels}
    server_cpu: dict[int, list[float]] = {level: [] for level in levels}
    pid = ctx.server_pid
    requests: dict[int, dict[str, int]] = {}
    try:
        for store in stores.values():
            await store.open()
        for _ in range(ctx.sizes.read_repetitions):
            for level, store in stores.items():
                store.requests.reset()
                server_before = process_cpu_seconds(pid) if pid else 0.0
                cpu_before = time.process_time()
                started = time.perf_counter()
                result = await store.get_turns(thread)
                seconds[level].append(time.perf_counter() - started)
                client_cpu[level].append(time.process_time() - cpu_before)
                if pid:
                    server_cpu[level].append(process_cpu_seconds(pid) - server_before)
                requests[level] = store.requests.snapshot()
                assert len(result) == len(turns)
    finally:
        for store in stores.values():
            await store.close()
    medians = {level: statistics.median(values) for level, values in seconds.items()}
    get_turns = {
        str(level): {
            "latency_ms": _ms(seconds[level]),
            "turns_per_second": rounded(len(turns) / medians[level], 1),
            "speedup_vs_1": rounded(medians[levels[0]] / medians[level], 2),
            "requests": requests[level],
            # Busy fractions of one core during the call: the server near 1.0 is the limit.
            "client_cpu_per_wall": rounded(statistics.median(client_cpu[level]) / medians[level]),
            "server_cpu_per_wall": (
                rounded(statistics.median(server_cpu[level]) / medians[level])
                if server_cpu[level]
                else None
            ),
        }
        for level in levels
    }

    # event_count on a fresh store: LIST + one HEAD per turn. Few repetitions (1000 HEADs).
    fresh_count: list[float] = []
    fresh_requests: dict[str, int] = {}
    for _ in range(max(2, ctx.sizes.read_repetitions // 2)):
        async with ctx.store(NAME) as fresh:
            fresh.requests.reset()
            started = time.perf_counter()
            assert await fresh.event_count(thread) == total_events
            fresh_count.append(time.perf_counter() - started)
            fresh_requests = fresh.requests.snapshot()

    warm_count: list[float] = []
    since_last: list[float] = []
    since_fresh: list[float] = []
    async with ctx.store(NAME) as warm:
        await warm.event_count(thread)  # fills the manifest cache
        for _ in range(ctx.sizes.point_repetitions):
            warm.requests.reset()
            started = time.perf_counter()
            await warm.event_count(thread)
            warm_count.append(time.perf_counter() - started)
        warm_requests = warm.requests.snapshot()
        for _ in range(ctx.sizes.point_repetitions):
            warm.requests.reset()
            started = time.perf_counter()
            events = await warm.get_events_since(thread, last_offset)
            since_last.append(time.perf_counter() - started)
            assert len(events) == len(turns[-1].events)
        since_requests = warm.requests.snapshot()
    for _ in range(max(2, ctx.sizes.read_repetitions // 2)):
        async with ctx.store(NAME) as fresh:
            fresh.requests.reset()
            started = time.perf_counter()
            await fresh.get_events_since(thread, last_offset)
            since_fresh.append(time.perf_counter() - started)
            since_fresh_requests = fresh.requests.snapshot()
    return {
        "thread_turns": len(turns),
        "events_per_turn": base.events_per_turn,
        "get_turns": get_turns,
        "best_speedup": rounded(max(medians[levels[0]] / m for m in medians.values()), 2),
        "event_count_fresh_store": {"latency_ms": _ms(fresh_count), "requests": fresh_requests},
        "event_count_warm_store": {"latency_ms": _ms(warm_count), "requests": warm_requests},
        "get_events_since_last_turn_warm": {
            "latency_ms": _ms(since_last),
            "requests": since_requests,
        },
        "get_events_since_last_turn_fresh": {
            "latency_ms": _ms(since_fresh),
            "requests": since_fresh_requests,
        },
    }
