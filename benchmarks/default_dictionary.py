"""Train the zstd dictionary shipped in the package for the agent-sdk envelope shape.

``python -m benchmarks.default_dictionary`` writes ``s3_eventstore/dictionaries/{id}.zdict``
(``id`` = the first 32 hex digits of its SHA-256, as for every dictionary) and prints its
id; ``--check`` only verifies that training again gives the shipped bytes (training is
deterministic for a given ``zstandard`` version).

What it is trained on, and why: the *shape* of agent-sdk envelopes, not the benchmark's
text. The corpus is the project's own workload generator with a training seed
(:data:`TRAIN_SEED`, never the benchmarks' seed 0), plus every envelope of the shipped
agent-sdk vectors, with every free-text value (deltas, texts, messages, tool inputs and
results) replaced by random characters of the same length, and every timestamp moved to a
random instant of 2024-2030. What remains to learn is what every agent-sdk archive has in
common: key names and their order, event type names, the UUID and RFC 3339 layouts, the
usage block. A dictionary trained on the generator's text as is would also learn its
small vocabulary and its 2025-06-01 clock, and flatter the benchmark (it measures 30%
smaller turns on the benchmark workload where this one gives ~16-20%): see
``benchmarks/tradeoff.py``.
"""

from __future__ import annotations

import argparse
import random
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import zstandard

from s3_eventstore.demo.workload import WorkloadSpec, generate_turns

TRAIN_SEED = 1001
"""Seed of the training workload (the benchmarks use seed 0: never train on those)."""
TRAIN_THREADS = 200
"""200 threads x 10 turns = 2000 turn samples."""
DICTIONARY_BYTES = 16 * 1024
"""16 KiB: as good as 32 or 64 KiB on held-out turns (see the trade-off table), and cheaper
to load."""
LEVEL = 3
"""zstd level the dictionary's entropy tables are tuned for (the store's default)."""
FREE_TEXT_KEYS = frozenset({"delta", "text", "message", "description", "error_message"})
NESTED_FREE_KEYS = frozenset({"input", "result", "data", "reason", "questions", "content"})
"""Values whose strings are user data, at any depth (their keys are kept)."""
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'-()"
OUT_DIR = Path(__file__).resolve().parent.parent / "s3_eventstore" / "dictionaries"


def _scrub(value: Any, rng: random.Random) -> Any:
    if isinstance(value, str):
        return "".join(rng.choice(_ALPHABET) for _ in value)
    if isinstance(value, dict):
        return {k: _scrub(v, rng) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, rng) for v in value]
    return value


def _timestamp(original: str, rng: random.Random) -> str:
    """A random instant of 2024-2030 in the layout of ``original`` (fraction digits kept)."""
    fraction = original[19:-1] if original.endswith("Z") else ""
    digits = "".join(rng.choice("0123456789") for _ in fraction[1:])
    return (
        f"{rng.randint(2024, 2030):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
        + (f".{digits}" if fraction else "")
        + "Z"
    )


def shape_only(line: bytes, rng: random.Random) -> bytes:
    """One envelope's JSON line with its user data randomised, its shape kept."""
    data = orjson.loads(line)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in FREE_TEXT_KEYS or key in NESTED_FREE_KEYS:
            out[key] = _scrub(value, rng)
        elif key == "timestamp" and isinstance(value, str) and len(value) >= 20:
            out[key] = _timestamp(value, rng)
        else:
            out[key] = value
    return orjson.dumps(out)


def training_samples() -> list[bytes]:
    """One sample per generated turn (JSON lines), plus the shipped vectors in turns of 20."""
    rng = random.Random(TRAIN_SEED)
    samples = [
        b"".join(shape_only(e.to_json(), rng) + b"\n" for e in turn.events)
        for turn in generate_turns(WorkloadSpec(threads=TRAIN_THREADS, seed=TRAIN_SEED))
    ]
    vectors = resources.files("s3_eventstore.demo.workload_data").joinpath(
        "agent_sdk_envelopes.jsonl"
    )
    lines = [shape_only(line, rng) for line in vectors.read_bytes().splitlines() if line.strip()]
    samples += [b"".join(x + b"\n" for x in lines[i : i + 20]) for i in range(0, len(lines), 20)]
    return samples


def train(size: int = DICTIONARY_BYTES, level: int = LEVEL) -> bytes:
    """The dictionary's bytes (deterministic for a given zstandard version)."""
    return zstandard.train_dictionary(size, training_samples(), level=level).as_bytes()


def main(argv: list[str] | None = None) -> int:
    import hashlib

    parser = argparse.ArgumentParser(prog="python -m benchmarks.default_dictionary")
    parser.add_argument("--check", action="store_true", help="verify, do not write")
    args = parser.parse_args(argv)
    data = train()
    dictionary_id = hashlib.sha256(data).hexdigest()[:32]
    path = OUT_DIR / f"{dictionary_id}.zdict"
    if args.check:
        shipped = sorted(OUT_DIR.glob("*.zdict"))
        ok = path.exists() and path.read_bytes() == data
        print(f"trained {dictionary_id}; shipped: {[p.name for p in shipped]}; same: {ok}")
        return 0 if ok else 1
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    print(f"{dictionary_id} ({len(data)} bytes) -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
