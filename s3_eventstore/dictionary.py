"""Trained zstd dictionaries: smaller turn objects for archives read through this library.

A finished turn is a few KB of JSON lines whose keys and event shapes repeat from turn
to turn; zstd cannot exploit that repetition within one small frame, a dictionary
trained on earlier turns can. :func:`train_dictionary` samples finished turns under a
store's prefix, trains a dictionary with ``zstandard.train_dictionary`` and stores it as
an immutable object named by its content hash, ``{prefix}dictionaries/{id}.zdict``
(``id`` = first 32 hex digits of its SHA-256), written with ``If-None-Match: *``.
A store created with ``dictionary_id=`` compresses turns with it and names it in each
manifest (format 2); readers fetch dictionaries by id and cache them forever (they are
immutable and content-addressed).

The trade-off, and why dictionaries are opt-in: an object compressed with a dictionary
cannot be read by plain ``zstd -dc`` or DuckDB without it (``zstd -dc -D file.zdict``
works). Use them for archives whose analytics go through this library, or that fetch
the ``.zdict`` and decompress with ``-D``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import zstandard

from s3_eventstore.errors import ConfigurationError, CorruptObjectError, StorageError
from s3_eventstore.s3.errors import is_precondition_failed, translate

if TYPE_CHECKING:
    from collections.abc import Sequence

    from s3_eventstore.s3.store import S3EventStore

__all__ = [
    "DEFAULT_DICTIONARY_BYTES",
    "TrainedDictionary",
    "dictionary_id_of",
    "fetch_dictionary",
    "train_dictionary",
]

logger = logging.getLogger("s3_eventstore")

DEFAULT_DICTIONARY_BYTES: Final = 32 * 1024
"""On the benchmark workload 16, 32, 64 and 110 KiB (zstd's default) all gave 25-26%
smaller turns on held-out threads; the smallest near the best is cheapest to fetch."""
DEFAULT_SAMPLE_THREADS: Final = 200
"""Threads sampled when none are named."""
_MIN_SAMPLES: Final = 8
"""zstd's trainer needs a handful of samples to find anything."""


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


async def fetch_dictionary(store: S3EventStore, dictionary_id: str) -> TrainedDictionary:
    """GET a dictionary by id and verify it. One GetObject (callers cache the result).

    Raises:
        ConfigurationError: ``dictionary_id`` is malformed, or no such dictionary exists.
        CorruptObjectError: its bytes do not match its id.
        StorageError: the GET failed.
    """
    key = store.layout.dictionary_key(dictionary_id)
    found = await store._get_object(key)
    if found is None:
        raise ConfigurationError(f"dictionary {dictionary_id} does not exist ({key})")
    return TrainedDictionary.from_bytes(found[1], key=key, expect_id=dictionary_id)


async def train_dictionary(
    store: S3EventStore,
    *,
    sample_threads: Sequence[str] | None = None,
    max_threads: int = DEFAULT_SAMPLE_THREADS,
    size: int = DEFAULT_DICTIONARY_BYTES,
    level: int = 3,
) -> str:
    """Train a dictionary on finished turns of the store and store it; returns its id.

    Every finished turn of the sampled threads (compacted or not) is one sample. Train on
    some threads and measure on others: a dictionary judged on its own training data
    flatters itself. Costs the reads of ``get_turns`` for each sampled thread, one LIST
    page per 1000 keys to find threads when none are named, and one conditional
    PutObject (a dictionary that already exists is recognised, not rewritten).

    Args:
        store: The store whose turns are sampled and where the dictionary is written.
        sample_threads: Threads to sample; ``None`` samples the first ``max_threads``
            threads found under the prefix.
        max_threads: Bound on the threads sampled when ``sample_threads`` is ``None``.
        size: Dictionary size in bytes.
        level: zstd level the dictionary is tuned for (use the store's).

    Raises:
        ConfigurationError: too few finished turns to train on.
        StorageError: a request failed.
        IntegrityError: a sampled turn failed verification.
    """
    threads = (
        list(sample_threads)
        if sample_threads is not None
        else await _some_threads(store, max_threads)
    )
    samples: list[bytes | bytearray | memoryview] = []
    for thread_id in threads:
        samples.extend(
            b"".join(event.to_json() + b"\n" for event in turn.events)
            for turn in await store.get_turns(thread_id)
            if turn.finished and turn.events
        )
    if len(samples) < _MIN_SAMPLES:
        raise ConfigurationError(
            f"only {len(samples)} finished turn(s) to train on; need at least {_MIN_SAMPLES}"
        )
    try:
        trained = zstandard.train_dictionary(size, samples, level=level)
    except zstandard.ZstdError as err:
        raise ConfigurationError(f"zstd could not train a dictionary: {err}") from None
    data = trained.as_bytes()
    dictionary = TrainedDictionary.from_bytes(data)
    await _put_dictionary(store, dictionary)
    return dictionary.id


async def _put_dictionary(store: S3EventStore, dictionary: TrainedDictionary) -> None:
    key = store.layout.dictionary_key(dictionary.id)
    client = await store._get_client()
    try:
        await client.put_object(
            Bucket=store.bucket,
            Key=key,
            Body=dictionary.data,
            IfNoneMatch="*",
            ChecksumAlgorithm="SHA256",
            ContentType="application/octet-stream",
        )
    except Exception as err:
        if not is_precondition_failed(err):
            raise translate(err, operation="PutObject", key=key) from err
        existing = await fetch_dictionary(store, dictionary.id)  # content-addressed: same id
        if existing.data != dictionary.data:  # same hash prefix, other bytes: never in practice
            raise StorageError(
                f"{key} exists with other content", operation="PutObject", code="Conflict"
            ) from None
        logger.info("dictionary %s exists already", dictionary.id)


async def _some_threads(store: S3EventStore, limit: int) -> list[str]:
    """The first ``limit`` thread ids under the prefix, from a delimited LIST of the shards."""
    client = await store._get_client()
    threads: list[str] = []
    token: str | None = None
    root = store.layout.threads_root
    while len(threads) < limit:
        params: dict[str, Any] = {"Bucket": store.bucket, "Prefix": root, "MaxKeys": 1000}
        if token:
            params["ContinuationToken"] = token
        try:
            page = await client.list_objects_v2(**params)
        except Exception as err:
            raise translate(err, operation="ListObjectsV2", key=root) from err
        for obj in page.get("Contents", []):
            folder = str(obj["Key"]).rsplit("/", 1)[0] + "/"
            thread_id = store.layout.thread_of_folder(folder)
            if thread_id is not None and thread_id not in threads:
                threads.append(thread_id)
                if len(threads) >= limit:
                    break
        if not page.get("IsTruncated"):
            break
        token = page.get("NextContinuationToken")
    return threads
