"""Bytes against CPU: zstd level x dictionary, and what the manifest costs.

For every level and dictionary, the store's own codec (``TurnCodec``) encodes each turn of
the evaluation workload (the peer workload: 20 sessions x 10 turns x 20 events, seed 0)
and decodes it again with full verification, as ``get_turns`` does. Figures per turn:
stored body bytes, manifest (user metadata) bytes, finish CPU (``TurnCodec.encode``:
JSON-lines join, zstd, SHA-256, manifest) and read CPU (``TurnCodec.decode``: zstd,
SHA-256, envelope parsing). CPU is the minimum over repetitions of process time (on a
shared machine, contention only ever adds).

Dictionaries compared: none; the package's shipped one (``s3_eventstore/dictionaries``,
trained by ``benchmarks.default_dictionary`` on the envelope *shape* of another seed);
and, as a flattering upper bound, one trained on the generator's text as is (another
seed too, but the same small vocabulary and clock as the evaluation data).
The manifest rows compare today's manifest with a compact rendering of the same facts
(``compact_manifest``): a design study, not what the store writes.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

import orjson
import zstandard

from benchmarks.harness import Context, rounded
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns
from s3_eventstore.format.dictionary import TrainedDictionary
from s3_eventstore.format.turn import TurnCodec

if TYPE_CHECKING:
    from s3_eventstore.demo.workload import GeneratedTurn
    from s3_eventstore.format.manifest import TurnManifest
    from s3_eventstore.format.turn import EncodedTurn

NAME = "tradeoff"
WRITER = "0123456789abcdef0123456789abcdef"


def shipped_dictionaries() -> list[TrainedDictionary]:
    """Every dictionary shipped in the package."""
    from importlib import resources

    folder = resources.files("s3_eventstore.dictionaries")
    return [
        TrainedDictionary.from_bytes(entry.read_bytes(), expect_id=entry.name[: -len(".zdict")])
        for entry in folder.iterdir()
        if entry.name.endswith(".zdict")
    ]


def compact_manifest(manifest: TurnManifest) -> bytes:
    """The same facts in fewer bytes: one-letter keys, no codec (implied by the format),
    no stored_bytes (the object's Content-Length), SHA-256 in base64url, a 64-bit writer
    id, finished_at in epoch milliseconds. Timestamps stay as written."""
    sha = base64.urlsafe_b64encode(bytes.fromhex(manifest.sha256)).rstrip(b"=").decode()
    data: dict[str, Any] = {
        "v": 3,
        "t": manifest.thread_id,
        "n": manifest.turn,
        "e": manifest.events,
        "r": manifest.raw_bytes,
        "h": sha,
        "f": manifest.first_timestamp,
        "l": manifest.last_timestamp,
        "a": 1_764_000_000_000,
        "w": manifest.writer[:16],
    }
    if manifest.dictionary:
        data["d"] = manifest.dictionary
    return b"s3es" + orjson.dumps(data)


def _metadata_bytes(encoded: EncodedTurn) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in encoded.metadata.items())


def _measure(
    turns: list[GeneratedTurn], dictionary: TrainedDictionary | None, level: int, reps: int
) -> dict[str, float]:
    codec = TurnCodec(level, dictionary)
    finish: list[float] = []
    read: list[float] = []
    encoded: list[EncodedTurn] = []
    for _ in range(reps):
        started = time.process_time()
        encoded = [codec.encode(t.thread_id, t.turn, t.events, writer=WRITER) for t in turns]
        finish.append(time.process_time() - started)
        started = time.process_time()
        for t, e in zip(turns, encoded, strict=True):
            TurnCodec.decode(
                e.body,
                e.manifest,
                key="k",
                thread_id=t.thread_id,
                turn=t.turn,
                dictionary=dictionary,
            )
        read.append(time.process_time() - started)
    n = len(turns)
    body = sum(len(e.body) for e in encoded) / n
    manifest = sum(_metadata_bytes(e) for e in encoded) / n
    compact = sum(len(compact_manifest(e.manifest)) for e in encoded) / n
    return {
        "body_bytes_per_turn": rounded(body, 1),
        "manifest_bytes_per_turn": rounded(manifest, 1),
        "stored_bytes_per_turn": rounded(body + manifest, 1),
        "stored_bytes_per_turn_compact_manifest": rounded(body + compact, 1),
        "compact_manifest_bytes_per_turn": rounded(compact, 1),
        "finish_cpu_us_per_turn": rounded(min(finish) * 1e6 / n, 1),
        "read_cpu_us_per_turn": rounded(min(read) * 1e6 / n, 1),
    }


def _flattering_dictionary() -> TrainedDictionary:
    samples = [
        b"".join(e.to_json() + b"\n" for e in t.events)
        for t in generate_turns(WorkloadSpec(threads=200, seed=1001))
    ]
    return TrainedDictionary.from_bytes(
        zstandard.train_dictionary(16 * 1024, samples, level=3).as_bytes()
    )


async def run(ctx: Context) -> dict[str, Any]:
    quick = ctx.sizes.quick
    spec = WorkloadSpec(threads=4 if quick else 20, turns_per_thread=10, events_per_turn=20, seed=0)
    turns = list(generate_turns(spec))
    reps = 2 if quick else 7
    levels = (1, 3, 6) if quick else (1, 3, 6, 9, 12, 19)
    shipped = shipped_dictionaries()
    candidates: dict[str, TrainedDictionary | None] = {"none": None}
    for dictionary in shipped:
        candidates[f"shipped {dictionary.id[:8]} ({len(dictionary.data) >> 10} KiB)"] = dictionary
    candidates["generator-text 16 KiB (flattering)"] = _flattering_dictionary()
    raw = sum(sum(e.wire_size + 1 for e in t.events) for t in turns) / len(turns)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, dictionary in candidates.items():
        table[name] = {}
        for level in levels:
            figures = _measure(turns, dictionary, level, reps)
            figures["ratio_to_json"] = rounded(raw / figures["body_bytes_per_turn"])
            table[name][str(level)] = figures
    return {
        "turns": len(turns),
        "json_bytes_per_turn": rounded(raw, 1),
        "shipped_dictionaries": [d.id for d in shipped],
        "table": table,
    }


def rows(result: dict[str, Any]) -> list[list[str]]:
    """The trade-off table: header and one row per dictionary and level."""
    out = [
        [
            "dictionary",
            "level",
            "body B/turn",
            "manifest B",
            "stored B/turn",
            "with compact manifest",
            "finish CPU us/turn",
            "read CPU us/turn",
        ]
    ]
    for name, levels in result["table"].items():
        for level, f in levels.items():
            out.append(
                [
                    name,
                    level,
                    f"{f['body_bytes_per_turn']:.0f}",
                    f"{f['manifest_bytes_per_turn']:.0f}",
                    f"{f['stored_bytes_per_turn']:.0f}",
                    f"{f['stored_bytes_per_turn_compact_manifest']:.0f}",
                    f"{f['finish_cpu_us_per_turn']:.0f}",
                    f"{f['read_cpu_us_per_turn']:.0f}",
                ]
            )
    return out
