"""Archive economics: compaction into segments and trained dictionaries, side by side with
the per-turn layout, in one run against a local S3 server.

    python -m benchmarks.compaction [--quick]

Measures, and prints as JSON:

* requests to read and count a 1000-turn thread (default workload turns), uncompacted
  and compacted, with a fresh store each time (nothing cached);
* objects per thread after compaction, for that thread and for a thread of ~40 MiB of
  compressed data (segments are bounded by 16 MiB);
* the estimated monthly cost, per million turns, of keeping the default workload's turns
  for a year in DEEP_ARCHIVE as turn objects and as segments (s3_eventstore.ops.costs prices:
  $0.00099/GB-month, 40 KiB per object of which 8 KiB at STANDARD's $0.023, transition
  $0.05 per 1000 objects; compaction's own GETs and PUTs included);
* the median finished turn of the default workload compressed with a dictionary trained
  on other threads (held out), against level-3 zstd without one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from typing import Any

import zstandard

from s3_eventstore import S3EventStore
from s3_eventstore.demo.embedded import EmbeddedS3Server
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns
from s3_eventstore.format.dictionary import TrainedDictionary
from s3_eventstore.format.segment import DEFAULT_MAX_SEGMENT_BYTES, build_segment
from s3_eventstore.format.turn import TurnCodec
from s3_eventstore.ops.costs import GET_PER_1000, PUT_PER_1000, SizeTally, estimate_costs
from s3_eventstore.s3.compaction import compact

BUCKET = "compaction-bench"
MIB = 1 << 20


def store(server: EmbeddedS3Server, prefix: str) -> S3EventStore:
    return S3EventStore(
        BUCKET,
        prefix,
        endpoint_url=server.endpoint_url,
        session=server.session(),
        read_concurrency=32,
        check_endpoint=False,  # the figures stand for AWS, where the probe never runs
    )


async def write_thread(target: S3EventStore, turns: list[Any]) -> None:
    semaphore = asyncio.Semaphore(16)

    async def one(turn: Any) -> None:
        async with semaphore:
            for event in turn.events:
                await target.append(turn.thread_id, turn.turn, event)
            await target.finish_turn(turn.thread_id, turn.turn)

    await asyncio.gather(*(one(turn) for turn in turns))


async def read_costs(
    server: EmbeddedS3Server, prefix: str, thread: str, middle: int
) -> dict[str, Any]:
    """Requests of each read on a fresh store (nothing cached)."""
    costs: dict[str, Any] = {}
    for name in ("get_turns", "event_count", "get_events_since_last_turn", "get_turn"):
        async with store(server, prefix) as reader:
            reader.requests.reset()
            if name == "get_turns":
                costs["turns"] = len(await reader.get_turns(thread))
            elif name == "event_count":
                costs["events"] = await reader.event_count(thread)
            elif name == "get_turn":
                assert await reader.get_turn(thread, middle) is not None
                costs[name] = reader.requests.snapshot()
                reader.requests.reset()
                assert await reader.get_turn(thread, middle + 1) is not None
                costs["get_turn_again"] = reader.requests.snapshot()
                continue
            else:
                await reader.event_count(thread)
                reader.requests.reset()
                await reader.get_events_since(thread, costs["events"] - 20)
            costs[name] = reader.requests.snapshot()
    return costs


async def thousand_turn_thread(server: EmbeddedS3Server, turns_per_thread: int) -> dict[str, Any]:
    spec = WorkloadSpec(threads=1, turns_per_thread=turns_per_thread, seed=11)
    turns = list(generate_turns(spec))
    thread = turns[0].thread_id
    async with store(server, "bench/uncompacted") as writer:
        await write_thread(writer, turns)
    async with store(server, "bench/compacted") as writer:
        await write_thread(writer, turns)
    async with store(server, "bench/compacted") as compactor:
        compactor.requests.reset()
        report = await compact(compactor, thread)
        compaction_requests = compactor.requests.snapshot()
    result: dict[str, Any] = {"turns": len(turns), "thread": thread}
    for layout in ("uncompacted", "compacted"):
        async with store(server, f"bench/{layout}") as lister:
            objects = await lister.objects.list_all(lister.layout.thread_folder(thread))
        result[layout] = {
            "objects": len(objects),
            "stored_bytes": sum(obj.size for obj in objects),
            "reads": await read_costs(server, f"bench/{layout}", thread, len(turns) // 2),
        }
    result["compaction"] = {"report": report.to_dict(), "requests": compaction_requests}
    return result


async def large_thread(server: EmbeddedS3Server, megabytes: int) -> dict[str, Any]:
    """A thread of ~``megabytes`` MiB compressed: random text does not compress away."""
    from s3_eventstore.testing.conformance import make_event

    rng = os.urandom
    thread, per_turn = "large-thread", 256 * 1024
    async with store(server, "bench/large") as writer:
        for turn in range(megabytes * MIB // per_turn):
            for sequence in range(4):
                delta = rng(per_turn // 8).hex()  # hex of random bytes: ~2x compressible
                await writer.append(thread, turn, make_event(sequence, delta=delta))
            await writer.finish_turn(thread, turn)
        folder = writer.layout.thread_folder(thread)
        before = await writer.objects.list_all(folder)
        report = await compact(writer, thread)
        after = await writer.objects.list_all(folder)
    stored = sum(obj.size for obj in after)
    return {
        "turn_objects_before": len(before),
        "compressed_mib": round(stored / MIB, 2),
        "objects_after": len(after),
        "bound_objects": -(-stored // DEFAULT_MAX_SEGMENT_BYTES),
        "largest_segment_mib": round(max(obj.size for obj in after) / MIB, 3),
        "segments_written": len(report.segments_written),
    }


def deep_archive_costs(spec: WorkloadSpec) -> dict[str, Any]:
    """Monthly DEEP_ARCHIVE cost per million turns, turn objects against segments.

    The workload's own turn objects and segments (one per thread, built exactly as
    compaction builds them) are measured, then scaled to one million turns.
    """
    codec = TurnCodec()
    per_turn, per_segment = SizeTally(), SizeTally()
    thread_frames: dict[str, list[Any]] = {}
    for turn in generate_turns(spec):
        encoded = codec.encode(turn.thread_id, turn.turn, turn.events, writer="w" * 32)
        per_turn.add(len(encoded.body))
        thread_frames.setdefault(turn.thread_id, []).append((encoded.manifest, encoded.body))
    for thread_id, frames in thread_frames.items():
        per_segment.add(len(build_segment(thread_id, frames)[0]))
    turns = per_turn.objects
    scale = 1_000_000 / turns
    out: dict[str, Any] = {
        "turns_measured": turns,
        "turns_per_segment": turns / per_segment.objects,
        "prices": "DEEP_ARCHIVE $0.00099/GB-month + 40 KiB/object (8 KiB at STANDARD "
        "$0.023, 32 KiB at DEEP_ARCHIVE); transition $0.05/1000 objects; GET $0.0004/1000, "
        "PUT $0.005/1000",
    }
    for name, tally, one_off in (
        ("turn_objects", per_turn, 0.0),
        # compaction reads every turn once and writes every segment once
        (
            "segments",
            per_segment,
            turns / 1000 * GET_PER_1000 + per_segment.objects / 1000 * PUT_PER_1000,
        ),
    ):
        deep = next(c for c in estimate_costs(tally).classes if c.storage_class == "DEEP_ARCHIVE")
        monthly = deep.storage_usd_month * scale
        transition = deep.transition_usd * scale
        out[name] = {
            "objects_per_million_turns": round(tally.objects * scale),
            "mean_object_bytes": round(tally.bytes / tally.objects),
            "storage_usd_month": round(monthly, 4),
            "transition_usd_once": round(transition, 4),
            "compaction_requests_usd_once": round(one_off * scale, 4),
            "usd_month_over_first_year": round(monthly + (transition + one_off * scale) / 12, 4),
        }
    out["ratio_storage"] = round(
        out["turn_objects"]["storage_usd_month"] / out["segments"]["storage_usd_month"], 2
    )
    out["ratio_first_year"] = round(
        out["turn_objects"]["usd_month_over_first_year"]
        / out["segments"]["usd_month_over_first_year"],
        2,
    )
    return out


def dictionary_gain(spec: WorkloadSpec, *, size: int = 32 * 1024) -> dict[str, Any]:
    """Median compressed turn with a dictionary trained on 3/4 of the threads, measured on
    the other 1/4 (held out), against plain level-3 zstd."""
    turns = list(generate_turns(spec))
    threads = list(dict.fromkeys(turn.thread_id for turn in turns))
    trained_on = set(threads[: len(threads) * 3 // 4])
    samples = [
        b"".join(event.to_json() + b"\n" for event in turn.events)
        for turn in turns
        if turn.thread_id in trained_on
    ]
    dictionary = TrainedDictionary.from_bytes(
        zstandard.train_dictionary(size, samples, level=3).as_bytes()
    )
    plain, with_dictionary = TurnCodec(), TurnCodec(dictionary=dictionary)
    held_out = [turn for turn in turns if turn.thread_id not in trained_on]
    before = [len(plain.encode(t.thread_id, t.turn, t.events, writer="w").body) for t in held_out]
    after = [
        len(with_dictionary.encode(t.thread_id, t.turn, t.events, writer="w").body)
        for t in held_out
    ]
    return {
        "dictionary_bytes": len(dictionary.data),
        "trained_on_turns": len(samples),
        "held_out_turns": len(held_out),
        "median_plain_bytes": statistics.median(before),
        "median_dictionary_bytes": statistics.median(after),
        "median_saving": round(1 - statistics.median(after) / statistics.median(before), 4),
        "total_saving": round(1 - sum(after) / sum(before), 4),
    }


async def main(quick: bool) -> dict[str, Any]:
    spec = WorkloadSpec()
    with EmbeddedS3Server() as server:
        async with store(server, "bench") as admin:
            client = await admin.objects.bounded_client()
            await client.create_bucket(Bucket=BUCKET)
        return {
            "thread_1000_turns": await thousand_turn_thread(server, 100 if quick else 1000),
            "large_thread": await large_thread(server, 8 if quick else 40),
            "deep_archive_per_million_turns": deep_archive_costs(spec),
            "deep_archive_per_million_turns_1000_turn_threads": deep_archive_costs(
                WorkloadSpec(threads=1 if quick else 4, turns_per_thread=1000)
            ),
            "dictionary": dictionary_gain(spec),
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(main(arguments.quick)), indent=2))
