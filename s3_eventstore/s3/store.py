"""S3EventStore: the EventStore contract on one immutable zstd object per finished turn.

Write path: ``append`` buffers in memory (no request); ``finish_turn`` encodes the
turn and PUTs it once with ``If-None-Match: *``, so exactly one writer can ever
finish a turn. Read path: LIST the thread's folder, then GET (or HEAD, when only
manifests are needed) in turn order with bounded concurrency, verifying every
object against its manifest. Turns open in this store are merged into reads.
Compacted turns (segments, :mod:`s3_eventstore.format.segment`) are read transparently:
a whole segment with one GET, one turn of it with one ranged GET once its index is
known; turns held twice during a compaction are read once, their copies compared.

Bounded memory: a turn whose buffer reaches ``max_turn_buffer_bytes`` is streamed to
S3 as a multipart upload while appends continue (:mod:`s3_eventstore.s3.multipart`),
and ``append`` refuses, with ``BufferLimitError``, to take the store's buffered bytes
over ``max_buffer_bytes``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar
from urllib.parse import urlparse

from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents
from s3_eventstore.errors import (
    ConfigurationError,
    ConflictingCopiesError,
    CorruptObjectError,
    IntegrityError,
    PreconditionFailedError,
    StorageError,
    TurnAlreadyFinishedError,
    TurnFinishedError,
    TurnStreamingError,
)
from s3_eventstore.format.keys import SEGMENT_PREFIX, SegmentName
from s3_eventstore.format.manifest import TurnManifest
from s3_eventstore.format.segment import (
    DEFAULT_MAX_SEGMENT_BYTES,
    SegmentEntry,
    SegmentIndex,
    SegmentManifest,
    frame_manifest,
)
from s3_eventstore.format.stream import (
    TRAILER_BYTES,
    StreamHeader,
    TurnStreamEncoder,
    is_streamed,
    read_manifest,
)
from s3_eventstore.format.turn import EncodedTurn, TurnCodec
from s3_eventstore.identifiers import check_thread_id, check_turn
from s3_eventstore.memory import check_envelope
from s3_eventstore.s3.bucket import Bucket, ListedObject
from s3_eventstore.s3.buffers import BufferBudget, OpenTurn, OpenTurnInfo
from s3_eventstore.s3.cache import ManifestCache, SegmentIndexCache
from s3_eventstore.s3.config import (
    DEFAULT_MAX_BUFFER_BYTES,
    DEFAULT_MAX_TURN_BUFFER_BYTES,
    DEFAULT_PART_BYTES,
    StoreConfig,
)
from s3_eventstore.s3.metrics import RequestCounter
from s3_eventstore.s3.multipart import StreamedTurn
from s3_eventstore.s3.probe import EndpointProbe
from s3_eventstore.store import EventStore, check_offset

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

    from s3_eventstore.format.dictionary import TrainedDictionary
    from s3_eventstore.s3.compaction import CompactionReport
    from s3_eventstore.s3.probe import ProbeResult
    from s3_eventstore.s3.purge import PurgeReport
    from s3_eventstore.s3.verify import VerifyReport

__all__ = ["S3EventStore"]

logger = logging.getLogger("s3_eventstore")

ENCODE_IN_THREAD_BYTES: Final = 1 << 20
"""Turns larger than this are compressed on a worker thread to keep the event loop live."""
_RELIST_ATTEMPTS: Final = 5
"""Reads list a thread again at most this many times when listed objects keep vanishing."""
_INDEX_TAIL_BYTES: Final = 256 * 1024
"""A segment's index is read with one ranged GET of this many bytes from its end (the
response's metadata says where the index starts; a larger index needs a second GET)."""
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Listed:
    """One turn object as the LIST returned it."""

    turn: int
    key: str
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class _ListedSegment:
    """One segment as the LIST returned it; its name gives turn range and event count."""

    key: str
    etag: str
    size: int
    name: SegmentName

    @property
    def first(self) -> int:
        return self.name.first_turn

    @property
    def last(self) -> int:
        return self.name.last_turn

    @property
    def events(self) -> int:
        return self.name.events

    def covers(self, turn: int) -> bool:
        """True when ``turn`` lies in the segment's turn range (held or not)."""
        return self.first <= turn <= self.last


@dataclass(frozen=True, slots=True)
class _InSegment:
    """One turn inside a segment whose index is known."""

    segment: _ListedSegment
    index: SegmentIndex
    entry: SegmentEntry


_Source = _Listed | OpenTurn | _InSegment | _ListedSegment
"""Where a turn's (or, for a whole segment, several turns') events are."""


class _Relist(Exception):
    """An object listed a moment ago is gone (compacted or cleared): list the thread again."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _covered(segments: Sequence[_ListedSegment], turn: int) -> bool:
    return any(segment.covers(turn) for segment in segments)


def _tangled(segments: Sequence[_ListedSegment], loose_turns: Iterable[int]) -> set[str]:
    """Keys of the segments whose turn range holds another object's turn or overlaps another
    segment: their index is needed to place each turn; the others count from their key."""
    tangled: set[str] = set()
    for turn in loose_turns:
        tangled.update(segment.key for segment in segments if segment.covers(turn))
    by_first = sorted(segments, key=lambda segment: (segment.first, segment.last))
    for before, after in itertools.pairwise(by_first):
        if after.first <= before.last:
            tangled.update((before.key, after.key))
    return tangled


def _claim(claims: dict[int, tuple[str, str]], turn: int, sha256: str, key: str) -> bool:
    """Record that ``key`` holds ``turn``; False if another copy was recorded first (and
    agrees). Raises ConflictingCopiesError if the copies disagree."""
    claimed = claims.get(turn)
    if claimed is None:
        claims[turn] = (sha256, key)
        return True
    if claimed[0] != sha256:
        raise ConflictingCopiesError(
            f"turn {turn} has two copies that disagree: {claimed[1]} (sha256 {claimed[0]}) "
            f"and {key} (sha256 {sha256})",
            key=claimed[1],
            other_key=key,
        )
    return False


class S3EventStore(EventStore):
    """EventStore archived in S3 (or any S3-compatible store), one object per finished turn.

    Use it as an async context manager (``async with S3EventStore(...) as store``), or
    call :meth:`close` when done; the client is opened on first use. Given an existing
    aiobotocore S3 ``client``, the store borrows it and never closes it.

    Args:
        bucket: Bucket name.
        prefix: Key prefix the store owns; it never writes outside it.
        endpoint_url: S3-compatible endpoint (MinIO, R2, Ceph, a local server); ``None`` for AWS.
        region_name: AWS region; ``None`` uses the standard chain (``AWS_REGION``, profile).
        profile_name: Named AWS profile; ``None`` uses ``AWS_PROFILE`` or the default chain.
        client: An open aiobotocore S3 client to borrow instead of creating one.
        session: An ``aioboto3.Session`` to create the client from (credentials, profile).
        compression_level: zstd level for turn objects (1..22; 3 is fast and compact).
        read_concurrency: Maximum GET/HEAD requests in flight for one read.
        manifest_cache_size: Manifests remembered (they make ``event_count`` LIST-only).
        max_attempts: Attempts per request; botocore retries throttling, 5xx and network
            faults with exponential backoff and jitter.
        retry_mode: botocore retry mode, ``"standard"`` or ``"adaptive"``.
        connect_timeout: Seconds to connect.
        read_timeout: Seconds to wait for a response.
        addressing_style: ``"path"`` or ``"virtual"``; ``None`` lets botocore decide.
        max_turn_buffer_bytes: JSON-line bytes one turn buffers in memory; a turn reaching
            it is streamed to S3 (multipart upload) while appends continue.
        max_buffer_bytes: Bytes all open turns may hold in memory together; an ``append``
            that would exceed it raises ``BufferLimitError`` and records nothing.
        multipart_part_bytes: Compressed bytes per part of a streamed turn (>= 5 MiB).
        max_parts_in_flight: Parts of one streamed turn cut but not yet uploaded before
            ``append`` waits for the upload (back-pressure).
        check_endpoint: Probe once, before the first write, that the endpoint honours
            ``If-None-Match: *`` (two conditional PUTs and a DELETE under
            ``{prefix}_doctor/``). ``None`` (default) probes endpoints that are neither
            AWS nor loopback (test and development servers); ``True`` always; ``False``
            never.
        allow_unsafe_endpoint: Write even when the probe finds that the endpoint ignores
            ``If-None-Match`` (a warning is logged): two writers of one turn can then
            silently overwrite each other.
        operation_timeout: Seconds one S3 call may take in total, retries and backoff
            included (botocore only bounds each attempt); ``None`` for no bound. On expiry
            the call raises :class:`StorageUnavailableError`.
        dictionary_id: Compress finished turns with this trained zstd dictionary (see
            :mod:`s3_eventstore.s3.dictionaries`; fetched on the first ``finish_turn``). Such
            objects need the dictionary to decompress (``zstd -D``); streamed turns are
            written without it. Reading never needs this: manifests name their dictionary.

    Raises:
        ConfigurationError: bucket, prefix, limits or dictionary id are unusable.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        profile_name: str | None = None,
        client: Any = None,
        session: Any = None,
        compression_level: int = 3,
        read_concurrency: int = 16,
        manifest_cache_size: int = 10_000,
        max_attempts: int = 5,
        retry_mode: str = "standard",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        addressing_style: str | None = None,
        operation_timeout: float | None = 60.0,
        max_turn_buffer_bytes: int = DEFAULT_MAX_TURN_BUFFER_BYTES,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        multipart_part_bytes: int = DEFAULT_PART_BYTES,
        max_parts_in_flight: int = 2,
        check_endpoint: bool | None = None,
        allow_unsafe_endpoint: bool = False,
        dictionary_id: str | None = None,
    ) -> None:
        config = StoreConfig.from_options(
            bucket,
            prefix,
            endpoint_url=endpoint_url,
            region_name=region_name,
            profile_name=profile_name,
            compression_level=compression_level,
            read_concurrency=read_concurrency,
            manifest_cache_size=manifest_cache_size,
            max_attempts=max_attempts,
            retry_mode=retry_mode,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            addressing_style=addressing_style,
            operation_timeout=operation_timeout,
            max_turn_buffer_bytes=max_turn_buffer_bytes,
            max_buffer_bytes=max_buffer_bytes,
            multipart_part_bytes=multipart_part_bytes,
            max_parts_in_flight=max_parts_in_flight,
            check_endpoint=check_endpoint,
            allow_unsafe_endpoint=allow_unsafe_endpoint,
            dictionary_id=dictionary_id,
        )
        self.config = config
        """The validated configuration, grouped."""
        self.operation_timeout = operation_timeout
        """Bound on the total time of one S3 call, retries included (``None``: unbounded)."""
        self.max_turn_buffer_bytes = max_turn_buffer_bytes
        """JSON-line bytes one turn buffers before it is streamed to S3."""
        self.multipart_part_bytes = multipart_part_bytes
        """Compressed bytes per part of a streamed turn."""
        self.max_parts_in_flight = max_parts_in_flight
        """Parts of one streamed turn waiting for upload before appends wait."""
        self._budget = BufferBudget(max_buffer_bytes)
        self._codec = TurnCodec(compression_level)
        self.bucket = bucket
        self.layout = config.layout
        self.read_concurrency = read_concurrency
        self.requests = RequestCounter()
        """HTTP requests this store's client sent, by operation (retries included)."""
        self._settings = config.client
        self._session = session
        self.objects = Bucket(
            bucket,
            owned_prefix=self.layout.prefix,
            settings=config.client,
            client=client,
            session=session,
            operation_timeout=operation_timeout,
            requests=self.requests,
        )
        """The bucket seam: every request this store makes goes through it."""
        self._probe = EndpointProbe(self.objects, self.layout.prefix, config.endpoint_check)
        self._open: dict[str, dict[int, OpenTurn]] = {}
        self._finished: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._finished_limit = max(manifest_cache_size, 1024)
        self._manifests = ManifestCache(manifest_cache_size)
        self._segment_indexes = SegmentIndexCache()
        self._dictionaries: dict[str, TrainedDictionary] = {}
        self._dictionary_lock = asyncio.Lock()
        self.dictionary_id = dictionary_id
        """The dictionary new turns are compressed with (``None``: plain zstd)."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3EventStore:
        """Build a store from ``s3://bucket/some/prefix``; ``options`` as for the constructor.

        Raises:
            ConfigurationError: the URL is not an ``s3://`` URL with a bucket.
        """
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc or parsed.query or parsed.fragment:
            raise ConfigurationError(f"{url!r} is not of the form s3://bucket/prefix")
        return cls(parsed.netloc, parsed.path.lstrip("/"), **options)

    @property
    def url(self) -> str:
        """``s3://bucket/prefix`` of this store."""
        return f"s3://{self.bucket}/{self.layout.prefix}"

    # --- client lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the S3 client now rather than on the first request.

        Raises:
            StorageError: the client could not be created.
        """
        await self.objects.open()

    async def close(self) -> None:
        """Close the client if this store created it. Open turns are kept in memory.

        Buffered events of turns that were never finished are lost when the process ends:
        a warning is logged when any remain. Streamed turns stop uploading after their
        in-flight part (their multipart uploads stay until finished, discarded or expired
        by the bucket's lifecycle rule).
        """
        pending = sum(len(turns) for turns in self._open.values())
        if pending:
            logger.warning("closing S3EventStore with %d open turn(s) not finished", pending)
        for turns in list(self._open.values()):
            for open_turn in list(turns.values()):
                if open_turn.stream is not None:
                    await open_turn.stream.stop()
        await self.objects.close()

    @property
    def buffered_bytes(self) -> int:
        """Bytes all open turns hold in memory now (what ``max_buffer_bytes`` bounds)."""
        return self._budget.used

    @property
    def client(self) -> Any:
        """The aiobotocore client in use (``None`` before the first request)."""
        return self.objects.client

    # --- write path -------------------------------------------------------------------

    async def append(self, thread_id: str, turn: int, envelope: AgentEventEnvelope) -> None:
        """Buffer one event in its open turn. Costs no S3 request, except for streamed turns.

        A turn whose buffer reaches ``max_turn_buffer_bytes`` is streamed from then on:
        events are compressed at once and uploaded in parts in the background; ``append``
        waits only when ``max_parts_in_flight`` parts are waiting for the upload.

        Raises:
            InvalidThreadIdError: bad thread id, or too long for S3 keys under this prefix.
            InvalidTurnError: bad turn number.
            InvalidEnvelopeError: ``envelope`` is not an :class:`AgentEventEnvelope`.
            TurnFinishedError: this store knows the turn is finished (it finished or read
                it). A turn finished by another writer is only detected by ``finish_turn``.
            BufferLimitError: the event would take the store over ``max_buffer_bytes``.
            TurnStreamingError: a streamed turn whose payload a failed ``finish_turn``
                sealed, or that was discarded while this append waited.
            StorageError: a part of a streamed turn could not be uploaded; the turn is
                still open and the next append or ``finish_turn`` retries the upload.

            Whenever it raises, the event was not recorded.
        """
        if type(envelope) is not AgentEventEnvelope:
            check_envelope(envelope)
        turns = self._open.get(thread_id) if type(thread_id) is str else None
        open_turn = turns.get(turn) if turns is not None and type(turn) is int else None
        if open_turn is not None and open_turn.sealing is None and open_turn.stream is None:
            # The hot path, inlined: an agent appends thousands of deltas per turn, and
            # buffering must cost about what a list append does (see benchmarks/).
            size = envelope.wire_size + 1
            budget = self._budget
            if (
                open_turn.buffered_bytes + size < self.max_turn_buffer_bytes
                and budget.used + size <= budget.limit
            ):
                budget.used += size
                open_turn.events.append(envelope)
                open_turn.buffered_bytes += size
                open_turn.last_append_at = time.time()
                return
        await self._append_slow(thread_id, turn, envelope, open_turn)

    async def _append_slow(
        self,
        thread_id: str,
        turn: int,
        envelope: AgentEventEnvelope,
        open_turn: OpenTurn | None,
    ) -> None:
        """Everything but the hot path: new or sealing turns, streaming, limits."""
        if open_turn is None or open_turn.sealing is not None:
            open_turn = await self._open_for_append(thread_id, turn)
        if open_turn.stream is not None:
            await self._append_streamed(open_turn, open_turn.stream, envelope)
            return
        size = envelope.wire_size + 1
        stream = None
        if open_turn.buffered_bytes + size >= self.max_turn_buffer_bytes:
            stream = self._new_stream(open_turn)  # may refuse: before anything is recorded
        self._budget.reserve(size)
        open_turn.add(envelope)
        if stream is not None:
            self._start_streaming(open_turn, stream)

    def _new_stream(self, open_turn: OpenTurn) -> StreamedTurn:
        encoder = TurnStreamEncoder(
            open_turn.thread_id, open_turn.turn, level=self._codec.level, writer=open_turn.writer
        )
        key = self.layout.turn_key(open_turn.thread_id, open_turn.turn)
        self.objects.check_owned(key)
        return StreamedTurn(
            encoder,
            bucket=self.objects,
            key=key,
            part_bytes=self.multipart_part_bytes,
            max_parts_in_flight=self.max_parts_in_flight,
            budget=self._budget,
        )

    def _start_streaming(self, open_turn: OpenTurn, stream: StreamedTurn) -> None:
        """Move a turn's buffered events into its stream; from now on they are in S3 parts."""
        # This compresses max_turn_buffer_bytes on the event loop, once per turn; from
        # then on each append compresses only its own event (in 256 KiB batches).
        for event in open_turn.events:
            stream.add(event)
        self._budget.release(open_turn.buffered_bytes)
        open_turn.events = []
        open_turn.stream = stream
        logger.info(
            "turn %d of thread %r reached %d bytes: streaming it to %s",
            open_turn.turn,
            open_turn.thread_id,
            open_turn.buffered_bytes,
            stream.key,
        )

    async def _append_streamed(
        self, open_turn: OpenTurn, stream: StreamedTurn, envelope: AgentEventEnvelope
    ) -> None:
        async with stream.append_lock:  # FIFO: appends keep their call order while waiting
            await stream.wait_for_room()
            self._budget.reserve(0)  # refuse while the store is over its limit
            stream.add(envelope)
            open_turn.buffered_bytes = stream.encoder.raw_bytes
            open_turn.last_append_at = time.time()

    async def _open_for_append(self, thread_id: str, turn: int) -> OpenTurn:
        check_thread_id(thread_id)
        check_turn(turn)
        self.layout.thread_folder(thread_id)  # refuse ids whose keys cannot exist, now
        while True:
            open_turn = self._open.get(thread_id, {}).get(turn)
            if open_turn is None:
                if (thread_id, turn) in self._finished:
                    raise TurnFinishedError(thread_id, turn)
                open_turn = OpenTurn(thread_id, turn)
                self._open.setdefault(thread_id, {})[turn] = open_turn
                return open_turn
            if open_turn.sealing is None:
                return open_turn
            await open_turn.sealing.wait()  # a finish_turn is uploading: see how it ends

    async def finish_turn(self, thread_id: str, turn: int) -> None:
        """Write the turn as one immutable object. Costs one PutObject.

        The PUT carries ``If-None-Match: *``: if the key exists, the turn was finished
        already. A retry after a lost response recognises its own object (same writer id
        and checksum, one HeadObject) and succeeds. Any other failure leaves the turn open
        with its buffer intact, so calling ``finish_turn`` again loses nothing.

        Raises:
            InvalidThreadIdError: bad thread id.
            InvalidTurnError: bad turn number.
            TurnAlreadyFinishedError: the turn is finished, by this store or another writer;
                events this store had buffered are in ``unwritten_events``. This includes a
                turn this store has seen in a segment (compacted), without a request.
            ConfigurationError: the configured ``dictionary_id`` does not exist; the turn is
                still open.
            CorruptObjectError: the configured dictionary's bytes do not match its id.
            StorageError: the PUT failed; the turn is still open.
        """
        check_thread_id(thread_id)
        check_turn(turn)
        key = self.layout.turn_key(thread_id, turn)
        open_turn = await self._seal(thread_id, turn, key)
        assert open_turn.sealing is not None
        try:
            await self._probe.before_write()
            if open_turn.stream is not None:
                etag, manifest = await self._complete_stream(key, open_turn, open_turn.stream)
            else:
                encoded = await self._encode(open_turn)
                etag = await self._put_turn(key, encoded, open_turn)
                manifest = encoded.manifest
        except TurnAlreadyFinishedError:
            self._drop_open(open_turn)
            self._remember_finished(thread_id, turn)
            raise
        except BaseException:
            open_turn.sealing.set()
            open_turn.sealing = None
            raise
        self._manifests.put(key, etag, manifest)
        self._drop_open(open_turn)
        self._remember_finished(thread_id, turn)

    async def _seal(self, thread_id: str, turn: int, key: str) -> OpenTurn:
        """Claim the open turn for one ``finish_turn``; concurrent calls queue behind it."""
        while True:
            open_turn = self._open.get(thread_id, {}).get(turn)
            if open_turn is None:
                if (thread_id, turn) in self._finished:
                    raise TurnAlreadyFinishedError(thread_id, turn, key=key)
                open_turn = OpenTurn(thread_id, turn)
                self._open.setdefault(thread_id, {})[turn] = open_turn
            if open_turn.sealing is None:
                open_turn.sealing = asyncio.Event()
                return open_turn
            await open_turn.sealing.wait()

    def _drop_open(self, open_turn: OpenTurn) -> None:
        turns = self._open.get(open_turn.thread_id)
        if turns is not None and turns.get(open_turn.turn) is open_turn:
            if open_turn.stream is None:
                self._budget.release(open_turn.buffered_bytes)
            del turns[open_turn.turn]
            if not turns:
                del self._open[open_turn.thread_id]
        if open_turn.sealing is not None:
            open_turn.sealing.set()

    def _remember_finished(self, thread_id: str, turn: int) -> None:
        self._finished[(thread_id, turn)] = None
        self._finished.move_to_end((thread_id, turn))
        while len(self._finished) > self._finished_limit:
            self._finished.popitem(last=False)

    async def _encode(self, open_turn: OpenTurn) -> EncodedTurn:
        if self.dictionary_id is not None and self._codec.dictionary is None:
            dictionary = self._dictionaries.get(self.dictionary_id)
            if dictionary is None:
                from s3_eventstore.s3.dictionaries import fetch_dictionary

                dictionary = await fetch_dictionary(self.objects, self.layout, self.dictionary_id)
                self._dictionaries[dictionary.id] = dictionary
            self._codec = TurnCodec(self._codec.level, dictionary)
        events = tuple(open_turn.events)
        if open_turn.buffered_bytes < ENCODE_IN_THREAD_BYTES:
            return self._codec.encode(
                open_turn.thread_id, open_turn.turn, events, writer=open_turn.writer
            )
        # A private codec: zstd compressors must not be used by two threads at once.
        codec = TurnCodec(self._codec.level, self._codec.dictionary)
        return await asyncio.to_thread(
            codec.encode, open_turn.thread_id, open_turn.turn, events, writer=open_turn.writer
        )

    async def _complete_stream(
        self, key: str, open_turn: OpenTurn, stream: StreamedTurn
    ) -> tuple[str, TurnManifest]:
        """Finish a streamed turn: last part, then CompleteMultipartUpload with If-None-Match.

        Returns the ETag and manifest, or raises TurnAlreadyFinishedError (upload aborted).
        """
        manifest = await stream.finish()
        gone = False
        try:
            etag = await stream.complete()
        except StorageError as err:
            if err.code != "NoSuchUpload":
                raise
            etag, gone = None, True  # an earlier attempt completed it, or someone aborted it
        if etag is not None:
            return etag, manifest
        existing = await self._head_manifest(key, strict=False)
        if existing is not None and existing[1] is not None:
            found = existing[1]
            if (found.writer, found.sha256) == (manifest.writer, manifest.sha256):
                logger.info("finish_turn retry found its own streamed object %s", key)
                return existing[0], found
        if gone and existing is None:
            await stream.abort()
            self._drop_open(open_turn)
            raise StorageError(
                f"the multipart upload of {key} was aborted by someone else before it "
                f"completed: the streamed events of turn {open_turn.turn} are lost",
                operation="CompleteMultipartUpload",
                code="NoSuchUpload",
            )
        await stream.abort()
        raise TurnAlreadyFinishedError(open_turn.thread_id, open_turn.turn, key=key)

    async def _put_turn(self, key: str, encoded: EncodedTurn, open_turn: OpenTurn) -> str:
        """PUT with If-None-Match; returns the ETag, or raises TurnAlreadyFinishedError."""
        for _ in range(3):
            try:
                return await self.objects.put(
                    key, encoded.body, mode="create", metadata=encoded.metadata
                )
            except PreconditionFailedError:
                pass
            existing = await self._head_manifest(key, strict=False)
            if existing is None:
                continue  # deleted since the 412 (a concurrent clear): try the PUT again
            etag, manifest = existing
            if manifest is not None and (
                manifest.writer == encoded.manifest.writer
                and manifest.sha256 == encoded.manifest.sha256
            ):
                logger.info("finish_turn retry found its own object %s", key)
                return etag
            raise TurnAlreadyFinishedError(
                open_turn.thread_id, open_turn.turn, unwritten_events=open_turn.events, key=key
            )
        raise StorageError(
            f"PutObject {key} kept meeting a vanishing object", operation="PutObject"
        )

    # --- open turn management ---------------------------------------------------------

    def open_turns(self) -> list[OpenTurnInfo]:
        """Every turn open in this store, oldest first, with sizes, ages and whether each is
        streamed. No request."""
        infos = [turn.info() for turns in self._open.values() for turn in turns.values()]
        return sorted(infos, key=lambda info: info.opened_at)

    async def discard_turn(self, thread_id: str, turn: int) -> tuple[AgentEventEnvelope, ...]:
        """Drop an open turn's buffer without writing it; returns the dropped events.

        A turn with nothing buffered here returns ``()``. Costs no request, except for a
        streamed turn: its multipart upload is aborted (one AbortMultipartUpload) and it
        returns ``()``, since its events are no longer in memory.

        Raises:
            InvalidThreadIdError: bad thread id.
            InvalidTurnError: bad turn number.
            StorageError: AbortMultipartUpload failed; the turn is dropped all the same
                (its parts remain until the bucket's lifecycle rule removes them).
        """
        check_thread_id(thread_id)
        check_turn(turn)
        while True:
            open_turn = self._open.get(thread_id, {}).get(turn)
            if open_turn is None:
                return ()
            if open_turn.sealing is None:
                self._drop_open(open_turn)
                if open_turn.stream is not None:
                    await open_turn.stream.abort()
                return tuple(open_turn.events)
            await open_turn.sealing.wait()

    @staticmethod
    def _streaming_error(open_turn: OpenTurn) -> TurnStreamingError:
        return TurnStreamingError(
            f"turn {open_turn.turn} of thread {open_turn.thread_id!r} is open and being "
            f"streamed to S3 (it outgrew max_turn_buffer_bytes), so its events are not in "
            f"memory; they can be read once finish_turn completes",
            thread_id=open_turn.thread_id,
            turn=open_turn.turn,
        )

    # --- read path --------------------------------------------------------------------
    #
    # A thread folder holds turn objects and, once compacted, segments (see
    # s3/segments.py and docs/FORMAT.md section 8). While compaction runs, or after it
    # died between its segment PUT and its deletes, a turn can be in both; readers take
    # each turn once, and check that the copies agree (SHA-256 of the payload) rather than
    # pick one silently. An object listed a moment ago can vanish before it is fetched
    # (compaction deleted it after writing its segment, or a clear): the read then lists
    # again (`_Relist`), since the turn's other copy must already be there.

    async def get_turn(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        """One turn. Costs one GetObject, whether the turn is its own object or in a segment
        whose index this store has seen (a ranged GET of the turn's frame).

        A compacted turn whose segment index is not known yet costs the GetObject (404),
        one ListObjectsV2 of the thread's segments, one ranged GetObject of the segment's
        index (two when it exceeds 256 KiB) and one ranged GetObject of the turn's frame;
        the index is cached, so the thread's other turns cost one GET each from then on.
        A turn that does not exist costs the GetObject and that ListObjectsV2, unless it
        is open in this store (then the 404 falls back to the open turn, as before). Unlike
        ``get_turns``, it does not look for a second copy of the turn (see
        :class:`ConflictingCopiesError`): that would cost a LIST on every call.

        Raises:
            InvalidThreadIdError: bad thread id.
            InvalidTurnError: bad turn number.
            IntegrityError: the object failed verification (the error names the key).
            StorageError: the GET failed.
            TurnStreamingError: the turn is open here and streamed (see ``append``).
        """
        check_thread_id(thread_id)
        check_turn(turn)
        key = self.layout.turn_key(thread_id, turn)
        folder = self.layout.thread_folder(thread_id)
        known = self._segment_indexes.find_turn(folder, turn)
        if known is not None:
            segment_key, etag, _, entry = known
            frames = await self._fetch_frames(segment_key, etag, [entry], thread_id)
            if frames is not None:
                return StoredTurnEvents(turn, frames[0], True)
            self._segment_indexes.discard(segment_key)  # gone or replaced: look again
        events = await self._fetch(key, thread_id, turn)
        if events is not None:
            return StoredTurnEvents(turn, events, True)
        open_turn = self._open.get(thread_id, {}).get(turn)
        if open_turn is not None:
            if open_turn.stream is not None:
                raise self._streaming_error(open_turn)
            return StoredTurnEvents(turn, tuple(open_turn.events), False)
        return await self._relisting(thread_id, lambda: self._turn_from_segments(thread_id, turn))

    async def _turn_from_segments(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        folder = self.layout.thread_folder(thread_id)
        segments = self._parse_segments(await self._list(folder + SEGMENT_PREFIX), thread_id)
        for segment in segments:
            if not segment.covers(turn):
                continue
            index = await self._segment_index(segment, thread_id)
            entry = index.entry(turn)
            if entry is None:
                continue
            frames = await self._fetch_frames(segment.key, segment.etag, [entry], thread_id)
            if frames is None:
                raise _Relist(segment.key)
            return StoredTurnEvents(turn, frames[0], True)
        return None

    async def get_turns(self, thread_id: str) -> list[StoredTurnEvents]:
        """Every turn in turn order. Costs one ListObjectsV2 per 1000 objects of the thread,
        plus one GetObject per turn object and one per segment (``read_concurrency`` at a
        time): a compacted thread costs its LIST and one GET per 16 MiB segment.

        While a compaction is under way (or was interrupted) a turn may be both an object
        and in a segment: each such turn object costs one HeadObject (unless its manifest
        is cached) to check that both copies agree.

        Raises:
            InvalidThreadIdError: bad thread id.
            IntegrityError: an object failed verification (the error names the key), or
                two copies of a turn disagree (:class:`ConflictingCopiesError`).
            StorageError: a request failed.
            TurnStreamingError: a turn open here is streamed (see ``append``).
        """
        return self._merge_open(
            thread_id,
            await self._relisting(thread_id, lambda: self._archived_turns(thread_id)),
        )

    async def _archived_turns(self, thread_id: str) -> dict[int, StoredTurnEvents]:
        listed, segments = await self._list_thread(thread_id)
        outside = [item for item in listed if not _covered(segments, item.turn)]
        inside = [item for item in listed if _covered(segments, item.turn)]
        segment_turns: dict[str, tuple[SegmentIndex, list[tuple[AgentEventEnvelope, ...]]]] = {}
        turn_events: dict[int, tuple[AgentEventEnvelope, ...]] = {}

        async def fetch_segment(segment: _ListedSegment) -> None:
            found = await self._fetch_segment(segment, thread_id)
            if found is None:
                raise _Relist(segment.key)
            segment_turns[segment.key] = found

        async def fetch_turn(item: _Listed) -> None:
            turn_events[item.turn] = await self._events_of(thread_id, item.turn, item)

        await self._gather(
            [*(fetch_segment(s) for s in segments), *(fetch_turn(i) for i in outside)]
        )
        archived: dict[int, StoredTurnEvents] = {}
        claims: dict[int, tuple[str, str]] = {}
        for segment in segments:
            index, events = segment_turns[segment.key]
            for entry, entry_events in zip(index.entries, events, strict=True):
                if _claim(claims, entry.turn, entry.manifest.sha256, segment.key):
                    archived[entry.turn] = StoredTurnEvents(entry.turn, entry_events, True)
        gaps = [item for item in inside if item.turn not in claims]
        await self._gather(
            [
                *(
                    self._check_copy(item, *claims[item.turn])
                    for item in inside
                    if item.turn in claims
                ),
                *(fetch_turn(item) for item in gaps),
            ]
        )
        for item in [*outside, *gaps]:
            archived[item.turn] = StoredTurnEvents(item.turn, turn_events[item.turn], True)
        return archived

    async def event_count(self, thread_id: str) -> int:
        """Number of events. Costs the LIST of ``get_turns``, plus one HeadObject per turn
        object whose manifest this store has not seen yet (and one ranged GetObject of its
        trailer for a streamed turn object); no event is downloaded. A segment's event count
        is in its key: a compacted thread costs the LIST alone, unless a turn object's
        number falls inside a segment's turn range (an interrupted compaction, or a turn
        finished after its neighbours were compacted): that segment's index is then read
        (one ranged GetObject, cached) to place it.

        Raises:
            InvalidThreadIdError: bad thread id.
            IntegrityError: a manifest is missing or malformed, or two copies of a turn
                disagree.
            StorageError: a request failed.
        """
        counts = await self._relisting(thread_id, lambda: self._turn_counts(thread_id))
        return sum(count for _, count, _ in counts)

    async def get_events_since(self, thread_id: str, offset: int) -> list[AgentEventEnvelope]:
        """Events from ``offset`` on (turn-major). Costs what ``event_count`` costs, plus one
        GetObject per turn object that holds events at or after ``offset``. A segment wholly
        after ``offset`` costs one GetObject; a segment ``offset`` falls inside costs a
        ranged GetObject of its index (unless cached) and one ranged GetObject of the frames
        from the first turn needed to the segment's end.

        Raises:
            InvalidThreadIdError: bad thread id.
            InvalidInputError: ``offset`` is not a non-negative int.
            IntegrityError: an object failed verification.
            StorageError: a request failed.
            TurnStreamingError: a turn open here and streamed holds events at or after
                ``offset``.
        """
        check_offset(offset)
        return await self._relisting(thread_id, lambda: self._events_since(thread_id, offset))

    async def _events_since(self, thread_id: str, offset: int) -> list[AgentEventEnvelope]:
        counts = await self._turn_counts(thread_id)
        wanted: list[tuple[int, _Source]] = []  # (events to skip, source)
        position = 0
        for _, count, source in counts:
            if position + count > offset:
                wanted.append((max(0, offset - position), source))
            position += count
        if wanted and isinstance(wanted[0][1], _ListedSegment) and wanted[0][0] > 0:
            # The offset falls inside a segment: fetch only the frames it needs.
            skip, segment = wanted[0][0], wanted[0][1]
            index = await self._segment_index(segment, thread_id)
            expanded: list[tuple[int, _Source]] = []
            for entry in index.entries:
                if not expanded and skip >= entry.manifest.events:
                    skip -= entry.manifest.events
                    continue
                expanded.append((skip if not expanded else 0, _InSegment(segment, index, entry)))
            wanted[:1] = expanded
        first_skip = wanted[0][0] if wanted else 0
        jobs: list[Awaitable[list[tuple[AgentEventEnvelope, ...]]]] = []
        group: list[_InSegment] = []
        for _, source in wanted:
            if isinstance(source, _InSegment):
                if group and (
                    group[-1].segment.key != source.segment.key
                    or group[-1].entry.end != source.entry.offset
                ):
                    jobs.append(self._group_events(thread_id, group))
                    group = []
                group.append(source)
                continue
            if group:
                jobs.append(self._group_events(thread_id, group))
                group = []
            jobs.append(self._source_events(thread_id, source))
        if group:
            jobs.append(self._group_events(thread_id, group))
        events: list[AgentEventEnvelope] = []
        for index_in_result, turn_events in enumerate(
            turn for job in await self._gather(jobs) for turn in job
        ):
            events.extend(turn_events[first_skip:] if index_in_result == 0 else turn_events)
        return events

    async def _group_events(
        self, thread_id: str, group: list[_InSegment]
    ) -> list[tuple[AgentEventEnvelope, ...]]:
        """The events of adjacent turns of one segment: one ranged GET of their frames."""
        segment = group[0].segment
        frames = await self._fetch_frames(
            segment.key, segment.etag, [member.entry for member in group], thread_id
        )
        if frames is None:
            raise _Relist(segment.key)
        return frames

    async def _source_events(
        self, thread_id: str, source: _Source
    ) -> list[tuple[AgentEventEnvelope, ...]]:
        if isinstance(source, _ListedSegment):
            found = await self._fetch_segment(source, thread_id)
            if found is None:
                raise _Relist(source.key)
            return found[1]
        if isinstance(source, _InSegment):
            return await self._group_events(thread_id, [source])
        return [await self._events_of(thread_id, -1, source)]

    async def _events_of(
        self, thread_id: str, turn: int, source: _Listed | OpenTurn
    ) -> tuple[AgentEventEnvelope, ...]:
        if isinstance(source, OpenTurn):
            if source.stream is not None:
                raise self._streaming_error(source)
            return tuple(source.events)
        events = await self._fetch(source.key, thread_id, source.turn)
        if events is None:
            raise _Relist(source.key)  # compacted or cleared between the LIST and the GET
        return events

    async def _turn_counts(self, thread_id: str) -> list[tuple[int, int, _Source]]:
        """(turn, event count, where the events are) in turn order. A segment nothing else
        interleaves with is one entry for all its turns (numbered by its first turn)."""
        listed, segments = await self._list_thread(thread_id)
        open_turns = self._open.get(thread_id, {})
        counts: dict[int, tuple[int, int, _Source]] = {}
        claims: dict[int, tuple[str, str]] = {}
        if segments:
            loose = [item.turn for item in listed] + list(open_turns)
            tangled = _tangled(segments, loose)
            indexes = await self._gather(
                self._segment_index(s, thread_id) for s in segments if s.key in tangled
            )
            by_key = dict(zip([s.key for s in segments if s.key in tangled], indexes, strict=True))
            for segment in segments:
                index = by_key.get(segment.key)
                if index is None:  # nothing interleaves: count it from its key
                    counts[segment.first] = (segment.first, segment.events, segment)
                    continue
                for entry in index.entries:
                    if _claim(claims, entry.turn, entry.manifest.sha256, segment.key):
                        source = _InSegment(segment, index, entry)
                        counts[entry.turn] = (entry.turn, entry.manifest.events, source)
        copies = [item for item in listed if item.turn in claims]
        own = [item for item in listed if item.turn not in claims]
        manifests = await self._gather(
            [
                *(self._manifest_of(item) for item in own),
                *(self._check_copy(item, *claims[item.turn]) for item in copies),
            ]
        )
        for item, manifest in zip(own, manifests[: len(own)], strict=True):
            if manifest is None:
                raise _Relist(item.key)
            counts[item.turn] = (item.turn, manifest.events, item)
        for turn, open_turn in open_turns.items():
            counts.setdefault(turn, (turn, open_turn.event_count, open_turn))
        return [counts[turn] for turn in sorted(counts)]

    def _merge_open(
        self, thread_id: str, archived: dict[int, StoredTurnEvents]
    ) -> list[StoredTurnEvents]:
        merged = dict(archived)
        for turn, open_turn in self._open.get(thread_id, {}).items():
            if turn not in merged:
                if open_turn.stream is not None:
                    raise self._streaming_error(open_turn)
                merged[turn] = StoredTurnEvents(turn, tuple(open_turn.events), False)
        return [merged[turn] for turn in sorted(merged)]

    async def _relisting(self, thread_id: str, read: Callable[[], Awaitable[_T]]) -> _T:
        """Run a read, listing again when an object it listed vanished before its GET."""
        gone = ""
        for _ in range(_RELIST_ATTEMPTS):
            try:
                return await read()
            except _Relist as vanished:
                gone = vanished.key
                logger.info("%s vanished while it was read (compacted or cleared)", gone)
        raise StorageError(
            f"objects of thread {thread_id!r} kept vanishing while they were read "
            f"(last: {gone}); retry",
            operation="GetObject",
            code="NoSuchKey",
        )

    async def _check_copy(self, item: _Listed, sha256: str, segment_key: str) -> None:
        """Check that a turn object held by a segment too is the same turn (by SHA-256)."""
        manifest = self._manifests.get(item.key, item.etag)
        if manifest is None:
            found = await self._head_manifest(item.key, strict=True)
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

    async def _gather(self, coroutines: Iterable[Awaitable[_T]]) -> list[_T]:
        """Run coroutines with at most ``read_concurrency`` in flight, results in order."""
        semaphore = asyncio.Semaphore(self.read_concurrency)

        async def bounded(coroutine: Awaitable[_T]) -> _T:
            async with semaphore:
                return await coroutine

        tasks = [asyncio.ensure_future(bounded(c)) for c in coroutines]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _list_turns(self, thread_id: str) -> list[_Listed]:
        """The thread's turn objects in turn order (segments and foreign keys skipped)."""
        return (await self._list_thread(thread_id))[0]

    async def _list_thread(self, thread_id: str) -> tuple[list[_Listed], list[_ListedSegment]]:
        """The thread's turn objects in turn order and its segments in key order; anything
        else in its folder is skipped (and logged)."""
        folder = self.layout.thread_folder(thread_id)
        listed: list[_Listed] = []
        others: list[ListedObject] = []
        for obj in await self._list(folder):
            turn = self.layout.parse_turn_key(obj.key, thread_id)
            if turn is None:
                others.append(obj)
                continue
            listed.append(_Listed(turn, obj.key, obj.etag, obj.size))
        listed.sort(key=lambda item: item.turn)  # keys sort by turn already; do not rely on it
        return listed, self._parse_segments(others, thread_id)

    def _parse_segments(self, objects: list[ListedObject], thread_id: str) -> list[_ListedSegment]:
        segments: list[_ListedSegment] = []
        for obj in objects:
            name = self.layout.parse_segment_key(obj.key, thread_id)
            if name is None:
                logger.warning("skipping %s: not a turn object of this store", obj.key)
                continue
            segments.append(_ListedSegment(obj.key, obj.etag, obj.size, name))
        segments.sort(key=lambda segment: segment.key)
        return segments

    async def list_pages(
        self, prefix: str, *, delimiter: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """ListObjectsV2 pages under ``prefix`` one at a time, as S3 returns them (at most
        1000 keys a page: never assume more), so a huge prefix is never held in memory.

        Raises:
            StorageError: a LIST failed (after the client's retries), or S3 truncated a
                page without a continuation token.
        """
        async for page in self.objects.list_pages(prefix, delimiter=delimiter):
            yield page

    async def _list(self, prefix: str) -> list[ListedObject]:
        """Every object under ``prefix``, following continuation tokens page by page."""
        return await self.objects.list_all(prefix)

    async def _fetch(
        self, key: str, thread_id: str, turn: int
    ) -> tuple[AgentEventEnvelope, ...] | None:
        """GET and verify one turn object; ``None`` if it does not exist."""
        found = await self._fetch_object(key)
        if found is None:
            return None
        body, etag, manifest, _ = found
        events = await self._decode(body, manifest, key, thread_id, turn)
        self._manifests.put(key, etag, manifest)
        self._remember_finished(thread_id, turn)
        return tuple(events)

    async def _fetch_object(self, key: str) -> tuple[bytes, str, TurnManifest, bool] | None:
        """GET one turn object: body, ETag, manifest (not yet verified against the body) and
        whether it is streamed (its body ends with the manifest trailer)."""
        found = await self.objects.get(key)
        if found is None:
            return None
        manifest = read_manifest(found.metadata, found.body, key=key)
        return found.body, found.etag, manifest, is_streamed(found.metadata)

    async def _decode(
        self, body: bytes, manifest: TurnManifest, key: str, thread_id: str, turn: int
    ) -> list[AgentEventEnvelope]:
        dictionary = await self._dictionary(manifest.dictionary)
        decode: Callable[[], list[AgentEventEnvelope]] = lambda: TurnCodec.decode(
            body, manifest, key=key, thread_id=thread_id, turn=turn, dictionary=dictionary
        )
        if manifest.raw_bytes < ENCODE_IN_THREAD_BYTES:
            return decode()
        return await asyncio.to_thread(decode)

    async def _dictionary(self, dictionary_id: str | None) -> TrainedDictionary | None:
        """The dictionary a manifest names, fetched once per store (content-addressed)."""
        if dictionary_id is None:
            return None
        cached = self._dictionaries.get(dictionary_id)
        if cached is not None:
            return cached
        async with self._dictionary_lock:  # concurrent reads of one archive fetch it once
            cached = self._dictionaries.get(dictionary_id)
            if cached is not None:
                return cached
            from s3_eventstore.s3.dictionaries import fetch_dictionary

            try:
                cached = await fetch_dictionary(self.objects, self.layout, dictionary_id)
            except ConfigurationError as err:  # a manifest naming a missing dictionary
                raise CorruptObjectError(
                    str(err), key=self.layout.dictionary_key(dictionary_id)
                ) from None
            self._dictionaries[dictionary_id] = cached
        return cached

    async def _manifest_of(self, item: _Listed) -> TurnManifest | None:
        cached = self._manifests.get(item.key, item.etag)
        if cached is not None:
            return cached
        found = await self._head_manifest(item.key, strict=True)
        return None if found is None else found[1]

    # --- segments ---------------------------------------------------------------------

    async def _fetch_segment(
        self, segment: _ListedSegment, thread_id: str
    ) -> tuple[SegmentIndex, list[tuple[AgentEventEnvelope, ...]]] | None:
        """GET a whole segment, verify its index and every turn; ``None`` if it is gone."""
        found = await self.objects.get(segment.key)
        if found is None:
            return None
        body = found.body
        manifest = SegmentManifest.from_metadata(found.metadata, key=segment.key)
        manifest.check_name(segment.name, thread_id, key=segment.key)
        if len(body) != manifest.stored_bytes:
            raise CorruptObjectError(
                f"segment is {len(body)} bytes, manifest says {manifest.stored_bytes}",
                key=segment.key,
            )
        index = SegmentIndex.parse(manifest, body[manifest.index_offset :], key=segment.key)
        self._learn_index(segment.key, found.etag, index)
        events = await self._decode_frames(segment.key, body, 0, index.entries, thread_id)
        return index, events

    async def _segment_index(self, segment: _ListedSegment, thread_id: str) -> SegmentIndex:
        """A segment's verified index: cached, or one ranged GET of the segment's tail (two
        when the index is larger than the tail). Raises ``_Relist`` if the segment is gone."""
        cached = self._segment_indexes.get(segment.key, segment.etag)
        if cached is not None:
            return cached
        start = max(0, segment.size - _INDEX_TAIL_BYTES)
        found = await self._ranged_get(segment.key, segment.etag, start, segment.size)
        if found is None:
            raise _Relist(segment.key)
        tail, metadata = found
        manifest = SegmentManifest.from_metadata(metadata, key=segment.key)
        manifest.check_name(segment.name, thread_id, key=segment.key)
        if manifest.stored_bytes != segment.size:
            raise CorruptObjectError(
                f"segment is {segment.size} bytes, manifest says {manifest.stored_bytes}",
                key=segment.key,
            )
        if manifest.index_offset >= start:
            frame = tail[manifest.index_offset - start :]
        else:
            found = await self._ranged_get(
                segment.key, segment.etag, manifest.index_offset, segment.size
            )
            if found is None:
                raise _Relist(segment.key)
            frame = found[0]
        index = SegmentIndex.parse(manifest, frame, key=segment.key)
        self._learn_index(segment.key, segment.etag, index)
        return index

    def _learn_index(self, key: str, etag: str, index: SegmentIndex) -> None:
        """Cache an index, and remember its turns as finished: ``append``/``finish_turn`` of
        a compacted turn is then refused without a request."""
        self._segment_indexes.put(key, etag, index)
        for entry in index.entries:
            self._remember_finished(index.manifest.thread_id, entry.turn)

    async def _fetch_frames(
        self, key: str, etag: str, entries: list[SegmentEntry], thread_id: str
    ) -> list[tuple[AgentEventEnvelope, ...]] | None:
        """One ranged GET of adjacent turns' frames, verified; ``None`` if the segment with
        this ETag is gone."""
        start, end = entries[0].offset, entries[-1].end
        found = await self._ranged_get(key, etag, start, end)
        if found is None:
            return None
        return await self._decode_frames(key, found[0], start, entries, thread_id)

    async def _ranged_get(
        self, key: str, etag: str, start: int, end: int
    ) -> tuple[bytes, dict[str, str]] | None:
        """Bytes ``start..end-1`` of the object version with ``etag`` and its metadata;
        ``None`` when it is gone or another version replaced it."""
        found = await self.objects.get(key, byte_range=(start, end), if_match=etag)
        if found is None:
            return None
        if len(found.body) != end - start:
            raise CorruptObjectError(
                f"ranged GET of bytes {start}..{end - 1} returned {len(found.body)} bytes",
                key=key,
            )
        return found.body, found.metadata

    async def _decode_frames(
        self,
        key: str,
        data: bytes,
        base: int,
        entries: Sequence[SegmentEntry],
        thread_id: str,
    ) -> list[tuple[AgentEventEnvelope, ...]]:
        """Verify and decode turn frames cut from ``data`` (which starts at offset ``base``)."""
        dictionaries = {
            entry.manifest.dictionary: await self._dictionary(entry.manifest.dictionary)
            for entry in entries
            if entry.manifest.dictionary is not None
        }

        def decode_all() -> list[tuple[AgentEventEnvelope, ...]]:
            decoded = []
            for entry in entries:
                frame = data[entry.offset - base : entry.end - base]
                try:
                    events = TurnCodec.decode(
                        frame,
                        frame_manifest(entry),
                        key=key,
                        thread_id=thread_id,
                        turn=entry.turn,
                        dictionary=dictionaries.get(entry.manifest.dictionary or ""),
                    )
                except IntegrityError as err:
                    message = str(err).removeprefix(f"{key}: ")
                    raise type(err)(f"turn {entry.turn}: {message}", key=key) from None
                decoded.append(tuple(events))
            return decoded

        if sum(entry.manifest.raw_bytes for entry in entries) < ENCODE_IN_THREAD_BYTES:
            return decode_all()
        return await asyncio.to_thread(decode_all)

    async def _head_manifest(
        self, key: str, *, strict: bool
    ) -> tuple[str, TurnManifest | None] | None:
        """HEAD one object: ``(etag, manifest)``, ``None`` if absent. A malformed manifest
        raises when ``strict``, else yields ``(etag, None)``."""
        head = await self.objects.head(key)
        if head is None:
            return None
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
        self._manifests.put(key, etag, manifest)
        return etag, manifest

    async def _trailer(self, key: str, etag: str, size: int) -> bytes:
        """The last TRAILER_BYTES of a streamed object, of the version whose ETag is known."""
        found = await self.objects.get(
            key, byte_range=(max(0, size - TRAILER_BYTES), size), if_match=etag
        )
        if found is None:
            raise StorageError(
                f"GetObject {key} failed: the object changed or vanished since its HEAD",
                operation="GetObject",
                code="NoSuchKey",
            )
        return found.body

    # --- compaction -------------------------------------------------------------------

    async def compact(
        self,
        thread_id: str,
        *,
        max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
        min_turns: int = 2,
    ) -> CompactionReport:
        """Merge the thread's finished turn objects into segments (see
        :func:`s3_eventstore.s3.compaction.compact`, which this calls). Compact idle
        threads: a turn finished again by another writer after compaction freed its key
        makes reads raise :class:`ConflictingCopiesError`.

        Raises:
            As :func:`s3_eventstore.s3.compaction.compact`.
        """
        from s3_eventstore.s3.compaction import compact

        return await compact(
            self, thread_id, max_segment_bytes=max_segment_bytes, min_turns=min_turns
        )

    # --- verification -----------------------------------------------------------------

    async def verify(self, thread_id: str | None = None) -> VerifyReport:
        """Download and verify every object of one thread, or of the whole prefix.

        Bad objects are reported, never raised (see :mod:`s3_eventstore.s3.verify`).
        Costs one ListObjectsV2 per 1000 objects plus one GetObject per turn object.

        Raises:
            InvalidThreadIdError: bad thread id.
            StorageError: a LIST or GET failed.
        """
        from s3_eventstore.s3.verify import verify_objects  # operators' tool: load on use

        return await verify_objects(self, thread_id)

    # --- delete -----------------------------------------------------------------------

    async def clear(self, thread_id: str) -> None:
        """Delete every object in the thread's folder and drop its open turns.

        Costs the LIST of ``get_turns`` plus one DeleteObjects per 1000 objects. In a
        versioned bucket this hides the thread (delete markers); older versions remain
        until lifecycle expires them.

        Raises:
            InvalidThreadIdError: bad thread id.
            ObjectLockedError: Object Lock retention kept some objects; lists what was and
                was not deleted.
            StorageError: a request failed.
        """
        folder = self.layout.thread_folder(check_thread_id(thread_id))
        keys = [obj.key for obj in await self._list(folder)]
        await self.objects.delete_keys(keys)
        await self._forget_thread(thread_id, folder)

    async def _forget_thread(self, thread_id: str, folder: str) -> None:
        """Drop the thread's open turns (aborting streamed uploads) and what is cached."""
        for turn in list(self._open.get(thread_id, {})):
            open_turn = self._open[thread_id][turn]
            if open_turn.sealing is None:
                self._drop_open(open_turn)
                if open_turn.stream is not None:
                    await open_turn.stream.abort()
        self._manifests.discard_prefix(folder)
        self._segment_indexes.discard_prefix(folder)
        for item in [item for item in self._finished if item[0] == thread_id]:
            del self._finished[item]

    async def purge(self, thread_id: str) -> PurgeReport:
        """Erase a thread for good: every object version and delete marker in its folder.

        S3 only: in a versioned bucket ``clear`` leaves noncurrent versions behind; this
        removes them (and is equivalent to ``clear`` in an unversioned bucket). Drops
        the thread's open turns like ``clear``. Costs one ListObjectVersions per 1000
        versions plus one DeleteObjects per 1000 versions.

        Raises:
            InvalidThreadIdError: bad thread id.
            ObjectLockedError: Object Lock kept some versions; everything else was
                deleted, and ``deleted``/``not_deleted`` list ``key?versionId=...``.
            StorageError: a request failed.
        """
        folder = self.layout.thread_folder(check_thread_id(thread_id))
        try:
            from s3_eventstore.s3.purge import purge_versions  # operators' tool: load on use

            return await purge_versions(self.objects, folder)
        finally:
            await self._forget_thread(thread_id, folder)

    # --- endpoint check ---------------------------------------------------------------

    @property
    def endpoint_probe(self) -> ProbeResult | None:
        """The conditional-write probe's result once it ran (see ``check_endpoint``)."""
        return self._probe.result

    def _wants_probe(self) -> bool:
        return self._probe.wanted()

    async def probe_endpoint(self) -> ProbeResult:
        """Check now, once per store, that the endpoint honours ``If-None-Match: *``.

        Runs the probe whatever ``check_endpoint`` says; ``finish_turn`` calls it before
        the first write when ``check_endpoint`` asks for it. Costs two PutObject and one
        DeleteObject under ``{prefix}_doctor/`` the first time, nothing afterwards; the
        result is kept in :attr:`endpoint_probe`.

        Raises:
            StorageError: the probe could not run (it is tried again next time).
        """
        return await self._probe.run()
