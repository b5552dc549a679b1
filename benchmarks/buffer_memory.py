"""Does ``max_buffer_bytes`` bound what the buffers really hold? RSS growth vs the budget.

Each path runs in a fresh interpreter with a store that is never opened (``append``
needs no request): 300,000 events (30,000 with ``--quick``) in 300 open turns, built

* ``create``: ``AgentEventEnvelope.create(...)`` per event (the README's path), and
* ``from_json``: ``AgentEventEnvelope.from_json(line)`` of a fresh line per event (as
  read off a wire),

and appended. The figure is VmRSS growth over the whole run divided by what the store's
budget accounts (``buffered_bytes``): 1.0 means the budget is exactly what the process
holds; the issue found 31x (create) and 3.7x (from_json). A second run per path sets
``max_buffer_bytes`` to 32 MiB (4 MiB with ``--quick``) and appends until ``BufferLimitError``: RSS growth at that
point over the limit is what a user who sets the limit actually gets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from benchmarks.harness import Context, rounded

_CHILD = """
import asyncio, gc, json, sys

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

from s3_eventstore import AgentEventEnvelope, BufferLimitError, S3EventStore

WORDS = ("the refund policy allows returns within thirty days provided the item is unused "
         "weather forecast shows clear sky light wind transfer completed reference").split()

async def main(path, count, limit):
    store = S3EventStore("bench", "buffer-memory", endpoint_url="http://127.0.0.1:9",
                         max_buffer_bytes=limit or (1 << 40),
                         max_turn_buffer_bytes=1 << 40)  # never opened: no request is sent
    message_id = "25e1af62-6c96-470e-8204-0bc0bd64b4c5"
    gc.collect()
    base = rss()
    appended = refused = 0
    for i in range(count):
        delta = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(1 + i % 7))
        if path == "create":
            event = AgentEventEnvelope.create(
                "text_delta", {"message_id": message_id, "delta": delta}, sequence=i)
        else:
            line = ('{"event_id":"%08x-0000-4000-8000-%012x","sequence":%d,'
                    '"timestamp":"2025-06-01T12:00:00.539384757Z","type":"text_delta",'
                    '"message_id":"%s","delta":"%s"}' % (i, i, i, message_id, delta)).encode()
            event = AgentEventEnvelope.from_json(line)
        try:
            await store.append(f"thread-{i % 300:03d}", 1, event)
        except BufferLimitError:
            refused = 1
            break
        appended += 1
    del event
    gc.collect()
    grown = rss() - base
    print(json.dumps({"events": appended, "refused": refused, "rss_growth": grown,
                      "buffered": store.buffered_bytes,
                      "wire": sum(t.buffered_bytes for t in store.open_turns())}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""

MIB = 1 << 20


def _child(ctx: Context, path: str, count: int, limit: int) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, path, str(count), str(limit)],
        env=ctx.child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"buffer memory child failed: {result.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


async def run(ctx: Context) -> dict[str, Any]:
    count = 30_000 if ctx.sizes.quick else 300_000
    limit = (4 if ctx.sizes.quick else 32) * MIB
    result: dict[str, Any] = {"events": count, "limit_mib": limit // MIB}
    worst = 0.0
    for path in ("create", "from_json"):
        free = _child(ctx, path, count, 0)
        bounded = _child(ctx, path, 10 * count, limit)
        ratio = free["rss_growth"] / max(free["buffered"], 1)
        bounded_ratio = bounded["rss_growth"] / limit
        worst = max(worst, ratio, bounded_ratio)
        result[path] = {
            "rss_growth_mib": rounded(free["rss_growth"] / MIB, 1),
            "budget_mib": rounded(free["buffered"] / MIB, 1),
            "json_mib": rounded(free["wire"] / MIB, 1),
            "rss_growth_to_budget": rounded(ratio, 2),
            "limited": {
                "events_before_refusal": bounded["events"],
                "refused": bool(bounded["refused"]),
                "rss_growth_mib": rounded(bounded["rss_growth"] / MIB, 1),
                "rss_growth_to_limit": rounded(bounded_ratio, 2),
            },
        }
    result["worst_rss_growth_to_budget"] = rounded(worst, 2)
    return result
