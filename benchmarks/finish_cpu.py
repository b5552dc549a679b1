"""CPU time of finish_turn apart from the network, against the bare minimum for the turn.

The store borrows a stub client whose ``put_object`` returns at once, so the whole
``finish_turn`` is timed (validation, sealing, encoding, manifest, the call through the
store's deadline wrapper) with ``time.process_time``. The bare minimum for the same turn
in the same run: ``orjson.dumps(envelope.to_dict())`` per event joined with newlines,
plus one ``zstandard`` compression at the same level. Runs alternate; medians of the
per-pair ratios.
"""

from __future__ import annotations

import gc
import statistics
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import orjson
import zstandard

from benchmarks.harness import Context, rounded
from s3_eventstore import S3EventStore
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns

if TYPE_CHECKING:
    from s3_eventstore.demo.workload import GeneratedTurn

LEVEL = 3


class StubClient:
    """Just enough of an aiobotocore S3 client for ``finish_turn``: PUTs succeed at once."""

    def __init__(self) -> None:
        self.meta = SimpleNamespace(events=SimpleNamespace(register=self._register))
        self.puts = 0

    @staticmethod
    def _register(*_args: Any, **_kwargs: Any) -> None:
        return None

    async def put_object(self, **_kwargs: Any) -> dict[str, str]:
        self.puts += 1
        return {"ETag": '"x"'}


async def _store_cpu(turns: list[GeneratedTurn]) -> float:
    """CPU seconds of ``finish_turn`` alone (appends are outside the timed span)."""
    client = StubClient()
    store = S3EventStore(
        "bench", "finish-cpu", client=client, compression_level=LEVEL, check_endpoint=False
    )
    for generated in turns:
        for event in generated.events:
            await store.append(generated.thread_id, generated.turn, event)
    gc.collect()
    cpu = 0.0
    for generated in turns:
        started = time.process_time()
        await store.finish_turn(generated.thread_id, generated.turn)
        cpu += time.process_time() - started
    assert client.puts == len(turns)
    return cpu


def _bare_cpu(turns: list[GeneratedTurn]) -> float:
    compressor = zstandard.ZstdCompressor(level=LEVEL)
    gc.collect()
    cpu = 0.0
    for generated in turns:
        started = time.process_time()
        payload = b"\n".join([orjson.dumps(e.to_dict()) for e in generated.events])
        compressor.compress(payload)
        cpu += time.process_time() - started
    return cpu


async def run(ctx: Context) -> dict[str, Any]:
    base = ctx.sizes.workload
    spec = WorkloadSpec(
        threads=max(1, ctx.sizes.finish_cpu_turns // base.turns_per_thread),
        turns_per_thread=base.turns_per_thread,
        events_per_turn=base.events_per_turn,
        text_bytes=base.text_bytes,
        seed=base.seed + 2,
    )
    turns = list(generate_turns(spec))
    await _store_cpu(turns[:10])  # warm-up
    _bare_cpu(turns[:10])
    store_cpu: list[float] = []
    bare_cpu: list[float] = []
    for repetition in range(ctx.sizes.finish_cpu_repetitions):
        if repetition % 2 == 0:
            store_cpu.append(await _store_cpu(turns))
            bare_cpu.append(_bare_cpu(turns))
        else:
            bare_cpu.append(_bare_cpu(turns))
            store_cpu.append(await _store_cpu(turns))
    ratios = [s / b for s, b in zip(store_cpu, bare_cpu, strict=True)]
    n = len(turns)
    return {
        "turns": n,
        "events_per_turn": base.events_per_turn,
        "level": LEVEL,
        "repetitions": ctx.sizes.finish_cpu_repetitions,
        "store_cpu_us_per_turn": rounded(statistics.median(store_cpu) * 1e6 / n, 1),
        "bare_minimum_cpu_us_per_turn": rounded(statistics.median(bare_cpu) * 1e6 / n, 1),
        "ratio_store_to_bare": rounded(statistics.median(ratios)),
        "ratio_min": rounded(min(ratios)),
        "ratio_max": rounded(max(ratios)),
    }
