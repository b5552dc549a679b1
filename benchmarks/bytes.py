"""Stored bytes per event, the ratio to compact JSON, and the CPU cost of each zstd level.

The default level's figure is what the server holds (the LIST sizes of the workload the
``requests`` measurement wrote). The other levels encode the same turns with the store's
own codec (``TurnCodec(level)``, one object per turn), so the ratios are per turn object,
as stored; the compression time is for ``zstandard`` alone, per MB of JSON lines.
"""

from __future__ import annotations

import time
from typing import Any

import zstandard

from benchmarks.harness import Context, rounded
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns
from s3_eventstore.format.turn import TurnCodec

DEFAULT_LEVEL = 3


async def run(ctx: Context) -> dict[str, Any]:
    base = ctx.sizes.workload
    spec = WorkloadSpec(
        threads=max(1, ctx.sizes.level_turns // base.turns_per_thread),
        turns_per_thread=base.turns_per_thread,
        events_per_turn=base.events_per_turn,
        text_bytes=base.text_bytes,
        seed=base.seed,
    )
    turns = list(generate_turns(spec))
    payloads = [b"".join([e.to_json() + b"\n" for e in t.events]) for t in turns]
    json_bytes = sum(len(p) for p in payloads)
    events = sum(len(t.events) for t in turns)
    levels: dict[str, dict[str, float]] = {}
    for level in ctx.sizes.levels:
        compressor = zstandard.ZstdCompressor(
            level=level, write_checksum=True, write_content_size=True
        )
        started = time.process_time()
        stored = sum(len(compressor.compress(p)) for p in payloads)
        cpu = time.process_time() - started
        codec = TurnCodec(level)  # the store's codec gives the same bodies: check it
        sample = codec.encode(turns[0].thread_id, turns[0].turn, turns[0].events, writer="x")
        assert len(sample.body) == len(compressor.compress(payloads[0]))
        mb = json_bytes / 1e6
        levels[str(level)] = {
            "ratio": rounded(json_bytes / stored),
            "stored_bytes_per_event": rounded(stored / events, 1),
            "compress_cpu_ms_per_mb": rounded(cpu * 1000 / mb, 2),
            "compress_mb_per_cpu_second": rounded(mb / cpu, 1) if cpu else float("inf"),
        }
    whole = zstandard.ZstdCompressor(level=DEFAULT_LEVEL).compress(b"".join(payloads))
    result: dict[str, Any] = {
        "turns_encoded": len(turns),
        "json_bytes_per_event": rounded(json_bytes / events, 1),
        "levels": levels,
        "ratio_if_all_turns_were_one_object_level3": rounded(json_bytes / len(whole)),
    }
    stored_on_server = ctx.shared.get("workload_stored_bytes")
    if stored_on_server:
        on_server_events = ctx.shared["workload_events"]
        result["default_level"] = DEFAULT_LEVEL
        result["server_stored_bytes_per_event"] = rounded(stored_on_server / on_server_events, 1)
        result["server_json_bytes_per_event"] = rounded(
            ctx.shared["workload_json_bytes"] / on_server_events, 1
        )
        result["server_ratio"] = rounded(ctx.shared["workload_json_bytes"] / stored_on_server)
        result["server_stored_bytes_per_turn"] = rounded(
            stored_on_server / ctx.shared["workload_objects"], 1
        )
    return result
