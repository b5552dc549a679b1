"""Turns across processes: what suspension, resumption and the barrier cost, in requests,
objects and bytes, against a local S3 server (docs/FORMAT.md section 11).

    python -m benchmarks.lifecycle [--turns 1000] [--json-out PATH]

Measures, on fresh stores (nothing cached) unless said otherwise, and prints as JSON:

* requests per operation: ``append``; ``finish_turn`` when nobody suspends; ``flush`` per
  open turn; finishing a turn this store persisted; resuming a turn another store persisted
  (first write: 412, GET, PUT); a late ``finish_turn`` of a compacted turn (refused); an
  ``append`` to a turn this store knows is finished (re-checked with one HEAD);
* automatic persistence: PUTs and uploaded bytes of a 200-event turn with
  ``persist_every_events`` 1, 10 and 50;
* the barrier after compaction, on a compacted ``--turns``-turn thread: objects and bytes
  stored (segment, stubs), LIST pages, and the requests of ``get_turns``, ``event_count``,
  ``get_events_since`` (last 20 events) and ``get_turn`` (cold and warm); and what
  compaction itself sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import boto3

from s3_eventstore import S3EventStore
from s3_eventstore.demo.embedded import CREDENTIALS, EmbeddedS3Server
from s3_eventstore.testing.conformance import make_event

BUCKET = "lifecycle-bench"


def store(server: EmbeddedS3Server, prefix: str, **options: Any) -> S3EventStore:
    return S3EventStore(
        BUCKET,
        prefix,
        endpoint_url=server.endpoint_url,
        session=server.session(),
        read_concurrency=32,
        **options,
    )


def taken(target: S3EventStore) -> dict[str, int]:
    snapshot = target.requests.snapshot()
    target.requests.reset()
    return snapshot


async def per_operation(server: EmbeddedS3Server) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with store(server, "ops") as writer:
        await writer.open()
        taken(writer)
        for sequence in range(100):
            await writer.append("t", 1, make_event(sequence))
        out["append (100 events)"] = taken(writer)
        await writer.finish_turn("t", 1)
        out["finish_turn, nobody suspends"] = taken(writer)
        for turn in (2, 3, 4):
            await writer.append("t", turn, make_event(turn))
        await writer.flush()
        out["flush, 3 open turns"] = taken(writer)
        await writer.flush()
        out["flush, nothing pending"] = taken(writer)
        await writer.append("t", 2, make_event(9))
        await writer.finish_turn("t", 2)
        out["finish_turn of a turn this store persisted"] = taken(writer)
        await writer.close(flush=False)
    async with store(server, "ops") as resumer:
        await resumer.open()
        taken(resumer)
        await resumer.append("t", 3, make_event(1))
        await resumer.finish_turn("t", 3)
        out["finish_turn of a turn another store persisted"] = taken(resumer)
    async with store(server, "ops") as compactor:
        for turn in (5, 6):
            await compactor.append("t", turn, make_event(turn))
            await compactor.finish_turn("t", turn)
        await compactor.compact("t")
    async with store(server, "ops") as late:
        await late.open()
        taken(late)
        await late.append("t", 5, make_event(5))
        try:
            await late.finish_turn("t", 5)
        except Exception as err:  # noqa: BLE001 - reported, not judged
            out["late finish_turn of a compacted turn: raises"] = type(err).__name__
        out["late finish_turn of a compacted turn"] = taken(late)
        try:
            await late.append("t", 5, make_event(6))
        except Exception as err:  # noqa: BLE001
            out["append to a turn known finished: raises"] = type(err).__name__
        out["append to a turn known finished"] = taken(late)
    return out


async def auto_persist(server: EmbeddedS3Server) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for every in (1, 10, 50):
        async with store(server, f"auto-{every}", persist_every_events=every) as writer:
            await writer.open()
            taken(writer)
            uploaded = 0
            put = writer.objects.put

            async def counting_put(key: str, body: bytes, put: Any = put, **options: Any) -> str:
                nonlocal uploaded
                uploaded += len(body)
                return await put(key, body, **options)

            writer.objects.put = counting_put  # type: ignore[method-assign]
            for sequence in range(200):
                await writer.append("t", 1, make_event(sequence, delta="x" * 200))
            appends = taken(writer)
            await writer.finish_turn("t", 1)
            out[f"persist_every_events={every}"] = {
                "appends_200_events": appends,
                "finish_turn": taken(writer),
                "uploaded_bytes": uploaded,
            }
    return out


async def compacted_thread(server: EmbeddedS3Server, turns: int) -> dict[str, Any]:
    prefix = "compacted"
    async with store(server, prefix) as writer:
        semaphore = asyncio.Semaphore(16)

        async def one(turn: int) -> None:
            async with semaphore:
                for sequence in range(2):
                    await writer.append("big", turn, make_event(sequence, delta=f"{turn}"))
                await writer.finish_turn("big", turn)

        await asyncio.gather(*(one(turn) for turn in range(1, turns + 1)))
    async with store(server, prefix) as compactor:
        await compactor.open()
        taken(compactor)
        report = await compactor.compact("big")
        compaction = taken(compactor)
        folder = compactor.layout.thread_folder("big")
        pages = [page async for page in compactor.list_pages(folder)]
        objects = [obj for page in pages for obj in page.get("Contents", [])]
    sizes = sorted(int(obj["Size"]) for obj in objects)
    out: dict[str, Any] = {
        "turns": turns,
        "compaction": {"report": report.to_dict(), "requests": compaction},
        "objects": len(objects),
        "stubs": sum(1 for size in sizes if size == 8),
        "stored_bytes": sum(sizes),
        "list_pages": len(pages),
        "reads": {},
    }
    reads: dict[str, Any] = out["reads"]
    for name in ("get_turns", "event_count", "get_events_since_last_20", "get_turn"):
        async with store(server, prefix) as reader:
            await reader.open()
            taken(reader)
            if name == "get_turns":
                assert len(await reader.get_turns("big")) == turns
            elif name == "event_count":
                assert await reader.event_count("big") == 2 * turns
            elif name == "get_events_since_last_20":
                assert len(await reader.get_events_since("big", 2 * turns - 20)) == 20
            else:
                assert await reader.get_turn("big", turns // 2) is not None
                reads["get_turn (cold)"] = taken(reader)
                assert await reader.get_turn("big", turns // 2 + 1) is not None
                name = "get_turn (index cached)"
            reads[name] = taken(reader)
    return out


async def main(turns: int) -> dict[str, Any]:
    with EmbeddedS3Server() as server:
        boto3.client("s3", endpoint_url=server.endpoint_url, **CREDENTIALS).create_bucket(
            Bucket=BUCKET
        )
        return {
            "per_operation": await per_operation(server),
            "auto_persist": await auto_persist(server),
            "compacted_thread": await compacted_thread(server, turns),
        }


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lifecycle", description=__doc__)
    parser.add_argument("--turns", type=int, default=1000, help="turns of the compacted thread")
    parser.add_argument("--json-out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    result = asyncio.run(main(args.turns))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")


if __name__ == "__main__":
    cli()
