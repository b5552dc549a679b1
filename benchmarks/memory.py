"""Peak memory (VmHWM) in a fresh process: many open turns, and one very large turn.

Each case runs in a new interpreter that reports ``/proc/self/status``: the baseline is
VmRSS once imports, the S3 client and the input material exist (the peak is reset there
through ``/proc/self/clear_refs`` where the kernel allows it), the figure is VmHWM at the
end minus that baseline.

The large turn streams to a multipart upload when the store has ``max_turn_buffer_bytes``
(the default store settings are used); with a store that has no such option it is
measured at a smaller size. It is also measured with streaming off (a threshold above
the turn's size) at the smaller size, to show what streaming saves.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from typing import Any

from benchmarks.harness import Context, rounded
from s3_eventstore import S3EventStore

_PRELUDE = """
import asyncio, gc, json, sys

def status():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
"""

_OPEN_TURNS = (
    _PRELUDE
    + """
from s3_eventstore import AgentEventEnvelope, S3EventStore
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns

async def main(count, events):
    pool = [[e.to_json().decode() for e in t.events]
            for t in generate_turns(WorkloadSpec(threads=50, turns_per_thread=10,
                                                 events_per_turn=events, seed=7))]
    store = S3EventStore("bench", "memory", endpoint_url="http://127.0.0.1:9")  # never opened
    gc.collect()
    reset = reset_peak()
    base = status()
    json_bytes = 0
    for i in range(count):
        thread = f"thread-{i:06d}"
        for line in pool[i % len(pool)]:
            event = AgentEventEnvelope.from_json(line)  # a fresh copy, as from the wire
            json_bytes += event.wire_size + 1
            await store.append(thread, 1, event)
    end = status()
    assert len(store.open_turns()) == count
    print(json.dumps({"base": base, "end": end, "peak_reset": reset, "json_bytes": json_bytes}))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""
)

_BIG_TURN = (
    _PRELUDE
    + """
import random, time
from s3_eventstore import AgentEventEnvelope, S3EventStore

WORDS = (b"the refund policy allows returns within thirty days provided the item is unused "
         b"weather forecast shows clear sky light wind transfer completed reference").split()

async def main(endpoint, bucket, size, threshold):
    rng = random.Random(5)
    pool = b" ".join(rng.choice(WORDS) for _ in range(1_400_000))[: 8 << 20]
    chunk = 64 * 1024
    options = {} if threshold == 0 else {"max_turn_buffer_bytes": threshold,
                                         "max_buffer_bytes": max(threshold * 2, 256 << 20)}
    async with S3EventStore(bucket, "memory-big", endpoint_url=endpoint,
                            check_endpoint=False, **options) as store:
        thread = f"big-{rng.getrandbits(64):016x}"
        gc.collect()
        reset = reset_peak()
        base = status()
        started = time.perf_counter()
        appended = 0
        seq = 0
        while appended < size:
            offset = rng.randrange(0, len(pool) - chunk)
            line = (b'{"event_id":"%s","sequence":%d,"timestamp":"2025-06-01T12:00:00.000000001Z",'
                    b'"type":"text_delta","message_id":"m1","delta":"%s"}'
                    % (b"%08x-0000-4000-8000-%012x" % (seq >> 48, seq), seq,
                       pool[offset : offset + chunk]))
            await store.append(thread, 1, AgentEventEnvelope.from_json(line))
            appended += len(line) + 1
            seq += 1
        appended_at = time.perf_counter()
        await store.finish_turn(thread, 1)
        finished_at = time.perf_counter()
        end = status()
        listed = await store.objects.list_all(store.layout.thread_folder(thread))
    print(json.dumps({"base": base, "end": end, "peak_reset": reset, "json_bytes": appended,
                      "events": seq, "stored_bytes": sum(o.size for o in listed),
                      "append_seconds": appended_at - started,
                      "finish_seconds": finished_at - appended_at}))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""
)

MIB = 1 << 20


def _child(ctx: Context, code: str, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=ctx.child_env(),
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"memory child failed: {result.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    above = data["end"]["VmHWM"] - data["base"]["VmRSS"]
    summary = {
        "baseline_rss_mib": rounded(data["base"]["VmRSS"] / MIB, 1),
        "peak_rss_mib": rounded(data["end"]["VmHWM"] / MIB, 1),
        "peak_above_baseline_mib": rounded(above / MIB, 1),
        "json_mib": rounded(data["json_bytes"] / MIB, 1),
        "peak_reset_at_baseline": data["peak_reset"],
    }
    for key in ("events", "stored_bytes", "append_seconds", "finish_seconds"):
        if key in data:
            summary[key] = rounded(data[key], 2)
    return summary


def streaming_supported() -> bool:
    """True when S3EventStore can stream a large turn (``max_turn_buffer_bytes``)."""
    return "max_turn_buffer_bytes" in inspect.signature(S3EventStore.__init__).parameters


async def run(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    events = sizes.workload.events_per_turn
    open_turns = _summary(_child(ctx, _OPEN_TURNS, str(sizes.open_turns), str(events)))
    total_events = sizes.open_turns * events
    open_turns["turns"] = sizes.open_turns
    open_turns["events_per_turn"] = events
    open_turns["bytes_per_event_above_baseline"] = rounded(
        open_turns["peak_above_baseline_mib"] * MIB / total_events, 1
    )
    await ctx.reset()
    streaming = streaming_supported()
    size = sizes.big_turn_bytes if streaming else sizes.big_turn_fallback_bytes
    big = _summary(_child(ctx, _BIG_TURN, ctx.endpoint_url, ctx.bucket, str(size), "0"))
    big.update(turn_bytes=size, streaming=streaming)
    await ctx.reset()
    result: dict[str, Any] = {"open_turns": open_turns, "big_turn": big}
    if streaming:
        small = sizes.big_turn_fallback_bytes
        off = _summary(
            _child(ctx, _BIG_TURN, ctx.endpoint_url, ctx.bucket, str(small), str(2 * small))
        )
        off.update(turn_bytes=small, streaming=False)
        result["big_turn_streaming_off"] = off
        await ctx.reset()
    return result
