"""S3 requests per call, and finish_turn latency over the server.

Writes the whole workload (default 200 threads x 10 turns x 20 events) one turn after
another, timing every ``finish_turn``; then counts the requests of each read on one
thread, with a fresh store (empty manifest cache) and a warm one.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness import Context, percentiles, rounded
from s3_eventstore.demo.workload import generate_turns

NAME = "requests"


async def run(ctx: Context) -> dict[str, Any]:
    spec = ctx.sizes.workload
    turns = list(generate_turns(spec))
    latencies_ms: list[float] = []
    async with ctx.store(NAME) as store:
        store.requests.reset()
        started = time.perf_counter()
        for generated in turns:
            for event in generated.events:
                await store.append(generated.thread_id, generated.turn, event)
            began = time.perf_counter()
            await store.finish_turn(generated.thread_id, generated.turn)
            latencies_ms.append((time.perf_counter() - began) * 1000)
        write_seconds = time.perf_counter() - started
        write = store.requests.snapshot()
        listing = await store.objects.list_all(store.layout.threads_root)

        thread = turns[0].thread_id
        thread_events = sum(len(t.events) for t in turns if t.thread_id == thread)
        last_offset = thread_events - len(turns[spec.turns_per_thread - 1].events)
        reads: dict[str, dict[str, int]] = {}

        store.requests.reset()
        await store.get_turns(thread)
        reads["get_turns"] = store.requests.snapshot()
        async with ctx.store(NAME) as fresh:
            fresh.requests.reset()
            await fresh.event_count(thread)
            reads["event_count_fresh_store"] = fresh.requests.snapshot()
            fresh.requests.reset()
            await fresh.event_count(thread)
            reads["event_count_warm_store"] = fresh.requests.snapshot()
            fresh.requests.reset()
            await fresh.get_events_since(thread, thread_events // 2)
            reads["get_events_since_middle_warm"] = fresh.requests.snapshot()
            fresh.requests.reset()
            await fresh.get_events_since(thread, last_offset)
            reads["get_events_since_last_turn_warm"] = fresh.requests.snapshot()
        async with ctx.store(NAME) as cold:
            cold.requests.reset()
            await cold.get_events_since(thread, last_offset)
            reads["get_events_since_last_turn_fresh"] = cold.requests.snapshot()

    n_turns = len(turns)
    n_events = sum(len(t.events) for t in turns)
    stored = sum(obj.size for obj in listing)
    json_bytes = sum(e.wire_size + 1 for t in turns for e in t.events)
    only_puts = write == {"PutObject": n_turns}
    ctx.shared["workload_stored_bytes"] = stored
    ctx.shared["workload_json_bytes"] = json_bytes
    ctx.shared["workload_objects"] = len(listing)
    ctx.shared["workload_object_sizes"] = [obj.size for obj in listing]
    ctx.shared["workload_events"] = n_events
    ctx.shared["workload_turns"] = n_turns
    ctx.shared["write_requests"] = write
    ctx.shared["read_requests_get_turns"] = reads["get_turns"]
    ctx.shared["turns_per_thread"] = spec.turns_per_thread
    return {
        "workload": {
            "threads": spec.threads,
            "turns_per_thread": spec.turns_per_thread,
            "events_per_turn": spec.events_per_turn,
            "text_bytes": spec.text_bytes,
            "turns": n_turns,
            "events": n_events,
        },
        "write_requests": write,
        "write_requests_per_turn": {op: rounded(n / n_turns, 4) for op, n in write.items()},
        "write_only_one_put_per_turn": only_puts,
        "objects": len(listing),
        "stored_bytes": stored,
        "json_bytes": json_bytes,
        "write_seconds": rounded(write_seconds, 2),
        "finish_turn_latency_ms": {k: rounded(v) for k, v in percentiles(latencies_ms).items()},
        "read_thread_turns": spec.turns_per_thread,
        "read_requests": reads,
    }
