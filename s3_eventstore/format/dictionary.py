"""Trained zstd dictionaries, the encoding side (docs/FORMAT.md section 9): train one
from samples, load one and check it against its content-hash id. Pure: no I/O (fetching
and storing dictionaries is :mod:`s3_eventstore.s3.dictionaries`).

A finished turn is a few KB of JSON lines whose keys and event shapes repeat from turn
to turn; zstd cannot exploit that repetition within one small frame, a dictionary
trained on earlier turns can. :func:`s3_eventstore.s3.dictionaries.train_dictionary` samples finished turns under a
store's prefix, trains a dictionary with ``zstandard.train_dictionary`` and stores it as
an immutable object named by its content hash, ``{prefix}dictionaries/{id}.zdict``
(``id`` = first 32 hex digits of its SHA-256), written with ``If-None-Match: *``.
A store created with ``dictionary_id=`` compresses turns with it and names it in each
manifest (format 2); readers fetch dictionaries by id and cache them forever (they are
immutable and content-addressed).

Dictionaries shipped in the package (``s3_eventstore/dictionaries/{id}.zdict``) need no
object in the bucket: :func:`shipped_dictionary` finds them by id, so objects written with
one stay readable by every later version of the library. :data:`AGENT_SDK_DICTIONARY_ID`
is trained on the agent-sdk envelope shape (``python -m benchmarks.default_dictionary``):
``S3EventStore(..., dictionary_id=AGENT_SDK_DICTIONARY_ID)``.

The trade-off, and why dictionaries are opt-in: an object compressed with a dictionary
cannot be read by plain ``zstd -dc`` or DuckDB without it (``zstd -dc -D file.zdict``
works). Use them for archives whose analytics go through this library, or that fetch
the ``.zdict`` and decompress with ``-D``.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Final

import zstandard

from s3_eventstore.errors import ConfigurationError, CorruptObjectError

if TYPE_CHECKING:
    from collections.abc import Sequence


__all__ = [
    "AGENT_SDK_DICTIONARY_ID",
    "DEFAULT_DICTIONARY_BYTES",
    "MIN_SAMPLES",
    "TrainedDictionary",
    "dictionary_id_of",
    "shipped_dictionary",
    "train",
]

DEFAULT_DICTIONARY_BYTES: Final = 32 * 1024
"""On the benchmark workload 16, 32, 64 and 110 KiB (zstd's default) all gave 25-26%
smaller turns on held-out threads; the smallest near the best is cheapest to fetch."""
MIN_SAMPLES: Final = 8
"""zstd's trainer needs a handful of samples to find anything."""


AGENT_SDK_DICTIONARY_ID: Final = "8ed912ddf31e03e4a7b020190de4fa6d"
"""The shipped 16 KiB dictionary for agent-sdk envelopes (key names, event types, id and
timestamp layouts; no user text): 17.6% smaller turn bodies on the benchmark workload."""


@functools.cache
def shipped_dictionary(dictionary_id: str) -> TrainedDictionary | None:
    """The dictionary of that id shipped in the package, ``None`` if none is.

    Raises:
        CorruptObjectError: the shipped file does not hash to its name (a broken install).
    """
    if len(dictionary_id) != 32 or not all(c in "0123456789abcdef" for c in dictionary_id):
        return None
    entry = resources.files("s3_eventstore.dictionaries").joinpath(f"{dictionary_id}.zdict")
    if not entry.is_file():
        return None
    key = f"package:s3_eventstore/dictionaries/{dictionary_id}.zdict"
    return TrainedDictionary.from_bytes(entry.read_bytes(), key=key, expect_id=dictionary_id)


def dictionary_id_of(data: bytes) -> str:
    """A dictionary's id: the first 32 hex digits of the SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class TrainedDictionary:
    """A zstd dictionary and its content-hash id."""

    id: str
    """First 32 hex digits of SHA-256 of :attr:`data`."""
    data: bytes = field(repr=False)
    """The dictionary as ``zstd --train`` would write it."""
    zstd_dict: zstandard.ZstdCompressionDict = field(repr=False, compare=False)
    """Ready for ``ZstdCompressor``/``ZstdDecompressor``."""

    @classmethod
    def from_bytes(
        cls, data: bytes, *, key: str = "<memory>", expect_id: str | None = None
    ) -> TrainedDictionary:
        """Load a dictionary, checking its bytes against the id it was fetched by.

        Raises:
            CorruptObjectError: the bytes do not hash to ``expect_id``, or are not a zstd
                dictionary.
        """
        dictionary_id = dictionary_id_of(data)
        if expect_id is not None and dictionary_id != expect_id:
            raise CorruptObjectError(
                f"dictionary bytes hash to {dictionary_id}, not {expect_id}", key=key
            )
        try:
            zstd_dict = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
            zstd_dict.dict_id()
        except zstandard.ZstdError as err:
            raise CorruptObjectError(f"not a zstd dictionary: {err}", key=key) from None
        return cls(dictionary_id, data, zstd_dict)


def train(
    samples: Sequence[bytes], *, size: int = DEFAULT_DICTIONARY_BYTES, level: int = 3
) -> TrainedDictionary:
    """Train a dictionary on sample payloads (one finished turn's JSON lines each).

    Raises:
        ConfigurationError: fewer than :data:`MIN_SAMPLES` samples, or zstd could not
            train on them.
    """
    if len(samples) < MIN_SAMPLES:
        raise ConfigurationError(
            f"only {len(samples)} finished turn(s) to train on; need at least {MIN_SAMPLES}"
        )
    try:
        trained = zstandard.train_dictionary(size, list(samples), level=level)
    except zstandard.ZstdError as err:
        raise ConfigurationError(f"zstd could not train a dictionary: {err}") from None
    return TrainedDictionary.from_bytes(trained.as_bytes())
