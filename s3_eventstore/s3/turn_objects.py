"""Reading one turn object: GET or HEAD it, verify it, decode it; the caches that spare
requests (manifests by ETag, dictionaries by id).

Every byte downloaded is checked against the object's manifest and its key
(:meth:`~s3_eventstore.format.turn.TurnCodec.decode`); a manifest is trusted from the
cache only for the very object version (ETag) it was read from.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from s3_eventstore.errors import (
    ConfigurationError,
    ConflictingCopiesError,
    CorruptObjectError,
    IntegrityError,
    StorageError,
)
from s3_eventstore.format.lifecycle import Stub, open_manifest
from s3_eventstore.format.manifest import TurnManifest, check_against_listing
from s3_eventstore.format.stream import TRAILER_BYTES, StreamHeader, is_streamed, read_manifest
from s3_eventstore.format.turn import TurnCodec
from s3_eventstore.s3.cache import ManifestCache
from s3_eventstore.s3.config import ENCODE_IN_THREAD_BYTES
from s3_eventstore.s3.dictionaries import fetch_dictionary

if TYPE_CHECKING:
    from s3_eventstore.envelope import AgentEventEnvelope

if TYPE_CHECKING:
    from collections.abc import Callable

    from s3_eventstore.format.dictionary import TrainedDictionary
    from s3_eventstore.format.keys import KeyLayout
    from s3_eventstore.s3.bucket import Bucket
    from s3_eventstore.s3.listing import ListedTurn
    from s3_eventstore.s3.objects import ObjectHead
    from s3_eventstore.s3.open_turns import OpenTurns

__all__ = ["FetchedKey", "FetchedTurn", "TurnObjects"]

FetchedTurn = tuple[bytes, str, TurnManifest, bool]
"""A turn object as GET returned it: body, ETag, manifest (not yet verified against the
body) and whether it is streamed (its body ends with the manifest trailer)."""


@dataclass(frozen=True, slots=True)
class FetchedKey:
    """What a GET of a turn key found (docs/FORMAT.md 11.2): an open or finished turn
    object, verified and decoded, or a stub (its events are in the segment it names)."""

    kind: Literal["open", "finished", "stub"]
    """The turn's state."""
    etag: str
    """The object's ETag."""
    events: tuple[AgentEventEnvelope, ...] = ()
    """The events (none for a stub)."""
    writer: str | None = None
    """The writer id of the write that made the object (a stub repeats the finish's)."""
    stub: Stub | None = None
    """What a stub says."""


class TurnObjects:
    """Fetches, verifies and decodes turn objects of one store; caches what they say.

    Args:
        bucket: The bucket seam.
        layout: The store's key layout.
        open_turns: Told about every turn found finished.
        manifest_cache_size: Manifests remembered.
    """

    def __init__(
        self, bucket: Bucket, layout: KeyLayout, open_turns: OpenTurns, manifest_cache_size: int
    ) -> None:
        self._bucket = bucket
        self._layout = layout
        self._open_turns = open_turns
        self.manifests = ManifestCache(manifest_cache_size)
        """Manifests of finished turn objects by key, valid for one ETag."""
        self.open_manifests = ManifestCache(manifest_cache_size)
        """Manifests of open turn objects by key, valid for one ETag (each write of an open
        object has its own)."""
        self._dictionaries: dict[str, TrainedDictionary] = {}
        self._dictionary_lock = asyncio.Lock()

    async def fetch(
        self, key: str, thread_id: str, turn: int
    ) -> tuple[AgentEventEnvelope, ...] | None:
        """GET and verify one turn object; ``None`` if it does not exist.

        Raises:
            IntegrityError: the object failed verification.
            StorageError: the GET failed.
        """
        found = await self.fetch_object(key)
        if found is None:
            return None
        body, etag, manifest, _ = found
        events = await self.decode(body, manifest, key, thread_id, turn)
        self.manifests.put(key, etag, manifest)
        self._open_turns.remember_finished(thread_id, turn)
        return tuple(events)

    async def fetch_key(self, key: str, thread_id: str, turn: int) -> FetchedKey | None:
        """GET a turn key: ``None`` when absent; else what is there, verified and decoded.

        Raises:
            IntegrityError: the object failed verification.
            StorageError: the GET failed.
        """
        found = await self._bucket.get(key)
        if found is None:
            return None
        stub = Stub.from_metadata(found.metadata, key=key)
        if stub is not None:
            stub.check_key(thread_id, turn, key=key)
            self._open_turns.remember_finished(thread_id, turn)
            return FetchedKey("stub", found.etag, writer=stub.writer, stub=stub)
        opened = open_manifest(found.metadata, key=key)
        if opened is not None:
            events = await self.decode(found.body, opened, key, thread_id, turn)
            self.open_manifests.put(key, found.etag, opened)
            return FetchedKey("open", found.etag, tuple(events), opened.writer)
        manifest = read_manifest(found.metadata, found.body, key=key)
        events = await self.decode(found.body, manifest, key, thread_id, turn)
        self.manifests.put(key, found.etag, manifest)
        self._open_turns.remember_finished(thread_id, turn)
        return FetchedKey("finished", found.etag, tuple(events), manifest.writer)

    async def object_manifest(self, item: ListedTurn) -> tuple[TurnManifest, bool] | None:
        """A listed turn object's manifest and whether it is open: cached for its ETag, or
        one HEAD (``None`` when it vanished since the LIST).

        Raises:
            IntegrityError: the manifest is missing or malformed.
            StorageError: the HEAD failed.
        """
        cached = self.manifests.get(item.key, item.etag)
        if cached is not None:
            return cached, False
        opened = self.open_manifests.get(item.key, item.etag)
        if opened is not None:
            return opened, True
        head = await self._bucket.head(item.key)
        if head is None or head.etag != item.etag:
            return None  # changed since the LIST (finished, compacted, cleared): list again
        opened = open_manifest(head.metadata, key=item.key)
        if opened is not None:
            self.open_manifests.put(item.key, head.etag, opened)
            return opened, True
        _, manifest = await self._manifest_from_head(item.key, head, strict=True)
        assert manifest is not None  # strict: a bad manifest raised
        return manifest, False

    async def fetch_object(self, key: str) -> FetchedTurn | None:
        """GET one turn object without verifying its body; ``None`` if it does not exist.

        Raises:
            IntegrityError: its manifest is missing or malformed.
            StorageError: the GET failed.
        """
        found = await self._bucket.get(key)
        if found is None:
            return None
        manifest = read_manifest(found.metadata, found.body, key=key)
        return found.body, found.etag, manifest, is_streamed(found.metadata)

    async def decode(
        self, body: bytes, manifest: TurnManifest, key: str, thread_id: str, turn: int
    ) -> list[AgentEventEnvelope]:
        """Verify and decode a body against its manifest and key (large ones on a thread).

        Raises:
            IntegrityError: the body does not match.
            StorageError: the dictionary it names could not be fetched.
        """
        dictionary = await self.dictionary(manifest.dictionary)
        decode: Callable[[], list[AgentEventEnvelope]] = lambda: TurnCodec.decode(
            body, manifest, key=key, thread_id=thread_id, turn=turn, dictionary=dictionary
        )
        if manifest.raw_bytes < ENCODE_IN_THREAD_BYTES:
            return decode()
        return await asyncio.to_thread(decode)

    async def dictionary(self, dictionary_id: str | None) -> TrainedDictionary | None:
        """The dictionary a manifest names, fetched once per store (content-addressed).

        Raises:
            CorruptObjectError: no such dictionary, or its bytes do not match its id.
            StorageError: the GET failed.
        """
        if dictionary_id is None:
            return None
        cached = self._dictionaries.get(dictionary_id)
        if cached is not None:
            return cached
        async with self._dictionary_lock:  # concurrent reads of one archive fetch it once
            cached = self._dictionaries.get(dictionary_id)
            if cached is not None:
                return cached
            try:
                cached = await fetch_dictionary(self._bucket, self._layout, dictionary_id)
            except ConfigurationError as err:  # a manifest naming a missing dictionary
                raise CorruptObjectError(
                    str(err), key=self._layout.dictionary_key(dictionary_id)
                ) from None
            self._dictionaries[dictionary_id] = cached
        return cached

    async def writing_dictionary(self, dictionary_id: str) -> TrainedDictionary:
        """The dictionary new turns are compressed with, fetched once.

        Raises:
            ConfigurationError: no such dictionary.
            CorruptObjectError: its bytes do not match its id.
            StorageError: the GET failed.
        """
        dictionary = self._dictionaries.get(dictionary_id)
        if dictionary is None:
            dictionary = await fetch_dictionary(self._bucket, self._layout, dictionary_id)
            self._dictionaries[dictionary.id] = dictionary
        return dictionary

    async def manifest_of(self, item: ListedTurn, thread_id: str) -> TurnManifest | None:
        """A listed turn object's manifest: cached for its ETag, or one HEAD (``None`` when
        it vanished since the LIST), checked against its key and the listed size
        (:func:`~s3_eventstore.format.manifest.check_against_listing`), so that counts
        read from manifests fail as the full read would.

        Raises:
            IntegrityError: the manifest is missing, malformed, or disagrees with its key
                or the listing.
            StorageError: the HEAD failed.
        """
        manifest = self.manifests.get(item.key, item.etag)
        if manifest is None:
            found = await self.head_manifest(item.key, strict=True)
            if found is None:
                return None
            manifest = found[1]
            assert manifest is not None  # strict: a bad manifest raised
        check_against_listing(
            manifest, key=item.key, thread_id=thread_id, turn=item.turn, size=item.size
        )
        return manifest

    async def head_manifest(
        self, key: str, *, strict: bool
    ) -> tuple[str, TurnManifest | None] | None:
        """HEAD one object: ``(etag, manifest)``, ``None`` if absent. A malformed manifest
        raises when ``strict``, else yields ``(etag, None)``. A streamed object's manifest
        costs a ranged GET of its trailer too.

        Raises:
            IntegrityError: ``strict`` and the manifest is missing or malformed.
            StorageError: a request failed.
        """
        head = await self._bucket.head(key)
        if head is None:
            return None
        return await self._manifest_from_head(key, head, strict=strict)

    async def _manifest_from_head(
        self, key: str, head: ObjectHead, *, strict: bool
    ) -> tuple[str, TurnManifest | None]:
        etag, metadata = head.etag, head.metadata
        try:
            header = StreamHeader.from_metadata(metadata, key=key)
            if header is None:
                manifest = TurnManifest.from_metadata(metadata, key=key)
            else:
                trailer = await self._trailer(key, etag, head.size)
                manifest = header.manifest_from_trailer(trailer, key=key)
        except IntegrityError:
            if strict:
                raise
            return etag, None
        self.manifests.put(key, etag, manifest)
        return etag, manifest

    async def _trailer(self, key: str, etag: str, size: int) -> bytes:
        """The last TRAILER_BYTES of a streamed object, of the version whose ETag is known."""
        found = await self._bucket.get(
            key, byte_range=(max(0, size - TRAILER_BYTES), size), if_match=etag
        )
        if found is None:
            raise StorageError(
                f"GetObject {key} failed: the object changed or vanished since its HEAD",
                operation="GetObject",
                code="NoSuchKey",
            )
        return found.body

    async def check_copy(self, item: ListedTurn, sha256: str, segment_key: str) -> None:
        """Check that a turn object held by a segment too is the same turn (by SHA-256).

        Raises:
            ConflictingCopiesError: the copies disagree.
            IntegrityError: the object's manifest is malformed.
            StorageError: the HEAD failed.
        """
        manifest = self.manifests.get(item.key, item.etag)
        if manifest is None:
            found = await self.head_manifest(item.key, strict=True)
            if found is None:
                return  # compaction deleted it since the LIST: the segment's copy remains
            manifest = found[1]
        assert manifest is not None  # strict: a bad manifest raised
        if manifest.sha256 != sha256:
            raise ConflictingCopiesError(
                f"turn {manifest.turn} has two copies that disagree: {item.key} (sha256 "
                f"{manifest.sha256}) and {segment_key} (sha256 {sha256}); a turn finished "
                f"again after it was compacted?",
                key=item.key,
                other_key=segment_key,
            )

    def forget(self, folder: str) -> None:
        """Forget the manifests under a thread folder (a cleared thread)."""
        self.manifests.discard_prefix(folder)
        self.open_manifests.discard_prefix(folder)
