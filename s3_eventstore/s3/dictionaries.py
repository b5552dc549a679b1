"""Dictionaries in the bucket: fetch one by id, train one on a store's turns and store it.

The bytes side (training, loading, the content-hash id) is
:mod:`s3_eventstore.format.dictionary`; this module adds the requests:
``{prefix}dictionaries/{id}.zdict``, written once with ``If-None-Match: *``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, Protocol

from s3_eventstore.errors import ConfigurationError, PreconditionFailedError, StorageError
from s3_eventstore.format.dictionary import (
    DEFAULT_DICTIONARY_BYTES,
    TrainedDictionary,
    shipped_dictionary,
    train,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from s3_eventstore.envelope import StoredTurnEvents
    from s3_eventstore.format.keys import KeyLayout
    from s3_eventstore.s3.bucket import Bucket

__all__ = ["DEFAULT_SAMPLE_THREADS", "DictionaryStore", "fetch_dictionary", "train_dictionary"]

logger = logging.getLogger("s3_eventstore")

DEFAULT_SAMPLE_THREADS: Final = 200
"""Threads sampled when none are named."""


class DictionaryStore(Protocol):
    """What training needs of a store (``S3EventStore`` has it): its turns, its bucket and
    its key layout. A protocol, so this module, which the read path imports to fetch
    dictionaries, does not import the store."""

    @property
    def layout(self) -> KeyLayout:
        """The store's key layout."""
        ...

    @property
    def objects(self) -> Bucket:
        """The bucket seam."""
        ...

    async def get_turns(self, thread_id: str) -> list[StoredTurnEvents]:
        """Every turn of a thread."""
        ...


async def fetch_dictionary(
    bucket: Bucket, layout: KeyLayout, dictionary_id: str
) -> TrainedDictionary:
    """A dictionary by id, verified: shipped in the package (no request), else one
    GetObject of ``{prefix}dictionaries/{id}.zdict`` (callers cache the result).

    Raises:
        ConfigurationError: ``dictionary_id`` is malformed, or no such dictionary exists.
        CorruptObjectError: its bytes do not match its id.
        StorageError: the GET failed.
    """
    key = layout.dictionary_key(dictionary_id)
    shipped = shipped_dictionary(dictionary_id)
    if shipped is not None:
        return shipped
    found = await bucket.get(key)
    if found is None:
        raise ConfigurationError(f"dictionary {dictionary_id} does not exist ({key})")
    return TrainedDictionary.from_bytes(found.body, key=key, expect_id=dictionary_id)


async def train_dictionary(
    store: DictionaryStore,
    *,
    sample_threads: Sequence[str] | None = None,
    max_threads: int = DEFAULT_SAMPLE_THREADS,
    size: int = DEFAULT_DICTIONARY_BYTES,
    level: int = 3,
    progress: Callable[[str, int], None] | None = None,
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
        progress: Called with each sampled thread and its number of samples, once its
            turns are read (training itself follows the last one).

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
    samples: list[bytes] = []
    for thread_id in threads:
        before = len(samples)
        samples.extend(
            b"".join(event.to_json() + b"\n" for event in turn.events)
            for turn in await store.get_turns(thread_id)
            if turn.finished and turn.events
        )
        if progress is not None:
            progress(thread_id, len(samples) - before)
    dictionary = train(samples, size=size, level=level)
    await _put_dictionary(store, dictionary)
    return dictionary.id


async def _put_dictionary(store: DictionaryStore, dictionary: TrainedDictionary) -> None:
    key = store.layout.dictionary_key(dictionary.id)
    try:
        await store.objects.put(
            key, dictionary.data, mode="create", content_type="application/octet-stream"
        )
    except PreconditionFailedError:
        # content-addressed: same id
        existing = await fetch_dictionary(store.objects, store.layout, dictionary.id)
        if existing.data != dictionary.data:  # same hash prefix, other bytes: never in practice
            raise StorageError(
                f"{key} exists with other content", operation="PutObject", code="Conflict"
            ) from None
        logger.info("dictionary %s exists already", dictionary.id)


async def _some_threads(store: DictionaryStore, limit: int) -> list[str]:
    """The first ``limit`` thread ids under the prefix, from a delimited LIST of the shards."""
    threads: list[str] = []
    if limit <= 0:
        return threads
    async for page in store.objects.list_objects(store.layout.threads_root):
        for obj in page:
            thread_id = store.layout.thread_of_folder(obj.key.rsplit("/", 1)[0] + "/")
            if thread_id is not None and thread_id not in threads:
                threads.append(thread_id)
                if len(threads) >= limit:
                    return threads
    return threads
