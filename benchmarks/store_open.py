"""What the N-th store costs: CPU of opening it and of its first PUT, default settings.

A program opens a store per session, per request or per worker. Two patterns, each in a
fresh child process (so the first store really is the process's first):

* ``alive``: stores opened one after another while the earlier ones stay open (a server
  holding a store per live session); all are closed at the end.
* ``sequential``: each store is opened, finishes one turn and is closed before the next
  (a store per request).

Per store: CPU (``time.process_time``) of ``S3EventStore(...)`` + ``open()``, and of its
first ``finish_turn`` (one 20-event turn: the first PUT, which also opens connections),
and of its second ``finish_turn`` (a PUT on a warm store: what any turn costs).
Reported: the first store, and the median of stores 2..N.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

from benchmarks.harness import Context, rounded

NAME = "store_open"

_CHILD = r"""
import asyncio, json, sys, time
from s3_eventstore import S3EventStore
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns

endpoint, bucket, prefix, pattern, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
turns = [g for g in generate_turns(WorkloadSpec(threads=n, turns_per_thread=2)) if g.turn == 1]
seconds = {g.thread_id: g for g in generate_turns(WorkloadSpec(threads=n, turns_per_thread=2)) if g.turn == 2}

async def main():
    opened, first_put, later_put = [], [], []
    alive = []
    for generated in turns:
        c0 = time.process_time()
        store = S3EventStore(bucket, prefix, endpoint_url=endpoint)
        await store.open()
        c1 = time.process_time()
        for event in generated.events:
            await store.append(generated.thread_id, generated.turn, event)
        c2 = time.process_time()
        await store.finish_turn(generated.thread_id, generated.turn)
        c3 = time.process_time()
        second = seconds[generated.thread_id]
        for event in second.events:
            await store.append(second.thread_id, second.turn, event)
        c4 = time.process_time()
        await store.finish_turn(second.thread_id, second.turn)
        later_put.append(time.process_time() - c4)
        opened.append(c1 - c0)
        first_put.append(c3 - c2)
        if pattern == "alive":
            alive.append(store)
        else:
            await store.close()
    for store in alive:
        await store.close()
    print(json.dumps({"open": opened, "first_put": first_put, "later_put": later_put}))

asyncio.run(main())
"""


def _child(ctx: Context, pattern: str, n: int) -> dict[str, list[float]]:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            ctx.endpoint_url,
            ctx.bucket,
            ctx.prefix(f"{NAME}-{pattern}"),
            pattern,
            str(n),
        ],
        env=ctx.child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"store_open child failed: {result.stderr[-2000:]}")
    data: dict[str, list[float]] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


async def run(ctx: Context) -> dict[str, Any]:
    n = 5 if ctx.sizes.quick else 20
    out: dict[str, Any] = {"stores": n}
    for pattern in ("alive", "sequential"):
        data = _child(ctx, pattern, n)
        out[pattern] = {
            "first_open_cpu_ms": rounded(data["open"][0] * 1000, 2),
            "first_put_cpu_ms": rounded(data["first_put"][0] * 1000, 2),
            "nth_open_cpu_ms": rounded(statistics.median(data["open"][1:]) * 1000, 2),
            "nth_first_put_cpu_ms": rounded(statistics.median(data["first_put"][1:]) * 1000, 2),
            "nth_second_put_cpu_ms": rounded(statistics.median(data["later_put"][1:]) * 1000, 2),
            "nth_open_plus_first_put_cpu_ms": rounded(
                statistics.median(
                    o + p for o, p in zip(data["open"][1:], data["first_put"][1:], strict=True)
                )
                * 1000,
                2,
            ),
        }
    return out
