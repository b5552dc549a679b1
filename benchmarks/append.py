"""Appends per second into open turns: S3EventStore against InMemoryEventStore.

``append`` on the S3 store makes no request (the store is never opened here). Both
stores get the same pre-built envelopes; runs alternate (S3, memory, memory, S3, ...)
so drifts of a noisy machine hit both alike, and the figure is the median of the
per-pair ratios. Timed in process CPU time.
"""

from __future__ import annotations

import gc
import statistics
import time
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Context, rounded
from s3_eventstore import InMemoryEventStore, S3EventStore
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns

if TYPE_CHECKING:
    from s3_eventstore.demo.workload import GeneratedTurn
    from s3_eventstore.store import EventStore


async def _timed_appends(store: EventStore, turns: list[GeneratedTurn]) -> float:
    """CPU seconds to append every event of ``turns`` (turns left open).

    CPU time rather than wall time: on a shared machine, waiting for a core is not the
    cost of an append (nothing else runs in this process while it is timed).
    """
    append = store.append
    gc.collect()
    started = time.process_time()
    for generated in turns:
        thread_id, turn = generated.thread_id, generated.turn
        for event in generated.events:
            await append(thread_id, turn, event)
    return time.process_time() - started


async def run(ctx: Context) -> dict[str, Any]:
    base = ctx.sizes.workload
    spec = WorkloadSpec(
        threads=max(1, ctx.sizes.append_turns // base.turns_per_thread),
        turns_per_thread=base.turns_per_thread,
        events_per_turn=base.events_per_turn,
        text_bytes=base.text_bytes,
        seed=base.seed + 1,
    )
    turns = list(generate_turns(spec))
    appends = sum(len(t.events) for t in turns)

    def s3_store() -> S3EventStore:
        return S3EventStore(
            ctx.bucket, ctx.prefix("append"), endpoint_url=ctx.endpoint_url, check_endpoint=False
        )

    # Warm-up: first calls pay for imports and caches.
    await _timed_appends(s3_store(), turns[:5])
    await _timed_appends(InMemoryEventStore(), turns[:5])
    s3_rates: list[float] = []
    memory_rates: list[float] = []
    ratios: list[float] = []
    for repetition in range(ctx.sizes.append_repetitions):
        order = ("s3", "memory") if repetition % 2 == 0 else ("memory", "s3")
        seconds: dict[str, float] = {}
        for which in order:
            store: EventStore = s3_store() if which == "s3" else InMemoryEventStore()
            seconds[which] = await _timed_appends(store, turns)
            del store
        s3_rates.append(appends / seconds["s3"])
        memory_rates.append(appends / seconds["memory"])
        ratios.append(seconds["memory"] / seconds["s3"])
    return {
        "appends_per_run": appends,
        "repetitions": ctx.sizes.append_repetitions,
        "s3_appends_per_second": rounded(statistics.median(s3_rates), 0),
        "memory_appends_per_second": rounded(statistics.median(memory_rates), 0),
        "s3_append_us": rounded(1e6 / statistics.median(s3_rates), 3),
        "memory_append_us": rounded(1e6 / statistics.median(memory_rates), 3),
        "ratio_s3_to_memory": rounded(statistics.median(ratios)),
        "ratio_min": rounded(min(ratios)),
        "ratio_max": rounded(max(ratios)),
    }
