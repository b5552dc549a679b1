"""S3EventStore: the EventStore contract on one immutable zstd object per finished turn.

A thin facade: it validates its options (:mod:`s3_eventstore.s3.config`) and composes
the parts that do the work, each in its own module --

* :class:`~s3_eventstore.s3.bucket.Bucket` (``objects``): the client, deadlines, error
  translation and conditional writes: every request goes through it;
* :class:`~s3_eventstore.s3.open_turns.OpenTurns`: the turns buffered here;
* :class:`~s3_eventstore.s3.writer.TurnWriter` (``writer``): appends, streaming of large
  turns, the finish protocol;
* :class:`~s3_eventstore.s3.reader.ThreadReader` (``reader``): listing, fetching,
  verifying and decoding, the caches, ranged segment reads;
* :class:`~s3_eventstore.s3.probe.EndpointProbe`: the conditional-write probe;

and loads the operators' tools on use: :mod:`~s3_eventstore.s3.compaction`,
:mod:`~s3_eventstore.s3.verify`, :mod:`~s3_eventstore.s3.purge`.

Why this module is longer than 500 lines: it is the public API's documentation (every
method's costs in requests and its ``Raises:``), and each method body is one delegation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Self

from s3_eventstore.errors import TurnAlreadyFinishedError
from s3_eventstore.format.keys import parse_s3_url
from s3_eventstore.format.segment import DEFAULT_MAX_SEGMENT_BYTES
from s3_eventstore.identifiers import check_thread_id, check_turn
from s3_eventstore.s3.bucket import Bucket
from s3_eventstore.s3.config import (
    DEFAULT_MAX_BUFFER_BYTES,
    DEFAULT_MAX_TURN_BUFFER_BYTES,
    DEFAULT_PART_BYTES,
    StoreConfig,
)
from s3_eventstore.s3.metrics import RequestCounter
from s3_eventstore.s3.open_turns import OpenTurns
from s3_eventstore.s3.probe import EndpointProbe
from s3_eventstore.s3.reader import ThreadReader
from s3_eventstore.s3.writer import TurnWriter
from s3_eventstore.store import EventStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents
    from s3_eventstore.s3.buffers import OpenTurn, OpenTurnInfo
    from s3_eventstore.s3.compaction import CompactionReport
    from s3_eventstore.s3.listing import ThreadListing
    from s3_eventstore.s3.probe import ProbeResult
    from s3_eventstore.s3.purge import PurgeReport
    from s3_eventstore.s3.verify import VerifyReport

__all__ = ["S3EventStore"]

logger = logging.getLogger("s3_eventstore")


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
        share_client: Without ``client`` or ``session``, use the client (and its
            connection pool) shared by every store of equal settings on this event loop:
            the second store costs milliseconds to open, not a parse of the S3 model. The
            last store closed closes it. ``False`` gives this store a client of its own.
        max_turn_buffer_bytes: JSON-line bytes one turn buffers in memory; a turn reaching
            it is streamed to S3 (multipart upload) while appends continue.
        max_buffer_bytes: Bytes all open turns may hold in memory together; an ``append``
            that would exceed it raises ``BufferLimitError`` and records nothing.
        multipart_part_bytes: Compressed bytes per part of a streamed turn (>= 5 MiB).
        max_parts_in_flight: Parts of one streamed turn cut but not yet uploaded before
            ``append`` waits for the upload (back-pressure).
        check_endpoint: Probe, before the first write, that the endpoint honours
            ``If-None-Match: *`` (two conditional PUTs and a DELETE under
            ``{prefix}_doctor/``), and once, before the first turn that outgrows
            ``max_turn_buffer_bytes``, that CompleteMultipartUpload honours it too (a PUT,
            a one-part upload, a DELETE); where it does not (Ceph radosgw 16) large turns
            are not streamed: that ``append`` raises :class:`UnsafeEndpointError` (code
            ``ConditionalMultipartIgnored``) and records nothing. ``None`` (default)
            probes every endpoint that is not AWS, loopback included (a local MinIO or
            test server is exactly where a missing condition goes unnoticed), once per
            endpoint per process; ``True`` probes AWS too; ``False`` never probes.
        allow_unsafe_endpoint: Write even when a probe finds that the endpoint ignores
            ``If-None-Match`` (a warning is logged): two writers of one turn can then
            silently overwrite each other.
        operation_timeout: Seconds one S3 call may take in total, retries and backoff
            included (botocore only bounds each attempt); ``None`` for no bound. On expiry
            the call raises :class:`StorageUnavailableError`.
        dictionary_id: Compress finished turns with this trained zstd dictionary (see
            :mod:`s3_eventstore.s3.dictionaries`; fetched on the first ``finish_turn``). Such
            objects need the dictionary to decompress (``zstd -D``); streamed turns are
            written without it. Reading never needs this: manifests name their dictionary.
        persist_every_events: Persist an open turn by itself (one PUT, during the ``append``
            that reaches the bound) once it holds this many unpersisted events; ``None``:
            only :meth:`flush`/:meth:`close` persist. A worker killed without ``close``
            then loses at most that many events per open turn. Each persist rewrites the
            turn's open object: ``n/k`` PUTs and about ``n²/2k`` uploaded events per turn.
        persist_every_bytes: The same, by unpersisted bytes of JSON lines.
        persist_every_seconds: The same, by the age of the oldest unpersisted event (checked
            at each ``append``; an idle turn is persisted by ``flush``).
        checksum_headers: Send ``x-amz-checksum-sha256`` with every upload, so S3
            verifies the bytes it stores (default). ``False`` for S3-compatible servers
            that answer 400 to checksum headers (``s3-eventstore doctor`` tells): no
            checksum header is sent that an operation does not require (botocore's
            ``request_checksum_calculation``/``response_checksum_validation`` are
            ``when_required`` either way). Every object is still verified against its
            manifest's SHA-256 when read.

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
        share_client: bool = True,
        operation_timeout: float | None = 60.0,
        max_turn_buffer_bytes: int = DEFAULT_MAX_TURN_BUFFER_BYTES,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        multipart_part_bytes: int = DEFAULT_PART_BYTES,
        max_parts_in_flight: int = 2,
        check_endpoint: bool | None = None,
        allow_unsafe_endpoint: bool = False,
        dictionary_id: str | None = None,
        persist_every_events: int | None = None,
        persist_every_bytes: int | None = None,
        persist_every_seconds: float | None = None,
        checksum_headers: bool = True,
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
            share_client=share_client,
            operation_timeout=operation_timeout,
            max_turn_buffer_bytes=max_turn_buffer_bytes,
            max_buffer_bytes=max_buffer_bytes,
            multipart_part_bytes=multipart_part_bytes,
            max_parts_in_flight=max_parts_in_flight,
            check_endpoint=check_endpoint,
            allow_unsafe_endpoint=allow_unsafe_endpoint,
            dictionary_id=dictionary_id,
            persist_every_events=persist_every_events,
            persist_every_bytes=persist_every_bytes,
            persist_every_seconds=persist_every_seconds,
            checksum_headers=checksum_headers,
        )
        self.config = config
        """The validated configuration, grouped."""
        self.bucket = bucket
        """The bucket name."""
        self.layout = config.layout
        """The key layout of the store's prefix."""
        self.operation_timeout = operation_timeout
        """Bound on the total time of one S3 call, retries included (``None``: unbounded)."""
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
        self._open_turns = OpenTurns(max_buffer_bytes, max(manifest_cache_size, 1024))
        self._probe = EndpointProbe(self.objects, self.layout.prefix, config.endpoint_check)
        self.reader = ThreadReader(
            self.objects,
            self.layout,
            self._open_turns,
            read_concurrency=read_concurrency,
            manifest_cache_size=manifest_cache_size,
        )
        """The read path."""
        self.writer = TurnWriter(
            self.objects,
            self.layout,
            self._open_turns,
            self.reader,
            self._probe,
            config.write,
        )
        """The write path."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3EventStore:
        """Build a store from ``s3://bucket/some/prefix``; ``options`` as for the constructor.

        The URL is read literally: everything after the bucket is the prefix, ``?`` and
        ``#`` included (:func:`~s3_eventstore.format.keys.parse_s3_url`).

        Raises:
            ConfigurationError: the URL is not an ``s3://`` URL with a bucket.
        """
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, **options)

    @property
    def url(self) -> str:
        """``s3://bucket/prefix`` of this store."""
        return f"s3://{self.bucket}/{self.layout.prefix}"

    @property
    def read_concurrency(self) -> int:
        """Maximum GET/HEAD requests in flight for one read."""
        return self.reader.read_concurrency

    @read_concurrency.setter
    def read_concurrency(self, value: int) -> None:
        self.reader.read_concurrency = value

    @property
    def max_turn_buffer_bytes(self) -> int:
        """JSON-line bytes one turn buffers before it is streamed to S3."""
        return self.writer.max_turn_buffer_bytes

    @property
    def multipart_part_bytes(self) -> int:
        """Compressed bytes per part of a streamed turn."""
        return self.writer.multipart_part_bytes

    @property
    def max_parts_in_flight(self) -> int:
        """Parts of one streamed turn waiting for upload before appends wait."""
        return self.writer.max_parts_in_flight

    @property
    def dictionary_id(self) -> str | None:
        """The dictionary new turns are compressed with (``None``: plain zstd)."""
        return self.writer.dictionary_id

    # --- client lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            await self.close()
            return
        try:  # the body raised: persist what can be, without hiding its exception
            await self.close()
        except Exception as err:  # noqa: BLE001 - logged; the body's exception propagates
            logger.warning("closing S3EventStore after an error: %s", err)

    async def open(self) -> None:
        """Create the S3 client now rather than on the first request.

        Raises:
            StorageError: the client could not be created.
        """
        await self.objects.open()

    async def close(self, *, flush: bool = True) -> None:
        """Persist open turns (unless ``flush=False``), then close the client if this store
        created it.

        With ``flush`` (the default) every open turn's buffered events are persisted as in
        :meth:`flush` — a later store, in any process, continues the turns — until each is
        persisted or refused (another writer finished it: its events are handed back in
        a ``TurnAlreadyFinishedError``, after the client is closed). Each refused turn is
        handed back exactly once: when several are refused, or when a request fails after
        a refusal was found, the next ``close`` (or ``flush``) raises the next one — call
        it again until it returns. With ``flush=False`` open turns are dropped with the
        store (a warning is logged). Streamed turns cannot be suspended:
        they stop uploading after their in-flight part (their multipart uploads stay until
        finished, discarded or expired by the bucket's lifecycle rule).

        Args:
            flush: Persist open turns first (default ``True``).

        Raises:
            TurnAlreadyFinishedError: another writer finished one of the open turns (its
                events are in ``unwritten_events``; every other turn was persisted, or is
                handed back by the next call).
            StorageError: persisting failed; the turns stay open here (the client is
                closed all the same; a later call reopens it), and a refusal found before
                the failure is raised by the next call.
        """
        refused: TurnAlreadyFinishedError | None = None
        try:
            if flush:
                try:
                    await self.writer.flush_for_close()
                except TurnAlreadyFinishedError as err:
                    refused = err
            pending = sum(1 for turn in self._open_turns.all() if turn.events or turn.stream)
            if pending:
                logger.warning("closing S3EventStore with %d open turn(s) not persisted", pending)
            for open_turn in self._open_turns.all():
                if open_turn.stream is not None:
                    await open_turn.stream.stop()
        finally:
            await self.objects.close()
        if refused is not None:
            raise refused

    async def flush(self) -> None:
        """Persist the buffered events of every turn open in this store, now.

        Each open turn with events not yet persisted costs one PutObject (its open turn
        object, docs/FORMAT.md section 11); turns with nothing new cost nothing. A turn
        another store persisted first costs a GET and one more PUT (the events are merged:
        the persisted ones first). Afterwards any store on the same bucket and prefix sees
        the turns (``finished=False``) and continues them, and a crash of this process
        loses none of their events.

        Raises:
            TurnAlreadyFinishedError: another writer finished one of the turns: its events
                here are in ``unwritten_events`` and the turn is dropped; turns after it (in
                thread, turn order) were not flushed yet: call ``flush`` again. A refusal
                that an earlier ``flush`` or ``close`` found but could not raise (a request
                failed after it) is raised first, before anything is written.
            TurnStreamingError: a streamed turn (one that outgrew ``max_turn_buffer_bytes``)
                cannot be suspended; every other open turn was persisted.
            UnsafeEndpointError: the endpoint ignores conditional writes.
            StorageError: a request failed; the turns stay open here, nothing is lost
                (calling ``flush`` again writes each event once).
        """
        await self.writer.flush()

    @property
    def buffered_bytes(self) -> int:
        """Bytes all open turns hold in memory now (what ``max_buffer_bytes`` bounds)."""
        return self._open_turns.budget.used

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
            UnsafeEndpointError: the turn would stream, but the endpoint ignores
                ``If-None-Match`` on CompleteMultipartUpload (see ``check_endpoint``).

            Whenever it raises, the event was not recorded.
        """
        if not self.writer.try_buffer(thread_id, turn, envelope):  # the hot path: no coroutine
            await self.writer.append(thread_id, turn, envelope)

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
        await self.writer.finish_turn(thread_id, turn)

    def open_turns(self) -> list[OpenTurnInfo]:
        """Every turn open in this store, oldest first, with sizes, ages and whether each is
        streamed. No request."""
        return self._open_turns.infos()

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
        return await self._open_turns.discard(thread_id, turn)

    # --- read path --------------------------------------------------------------------

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
        return await self.reader.get_turn(thread_id, turn)

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
        return await self.reader.get_turns(thread_id)

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
        return await self.reader.event_count(thread_id)

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
        return await self.reader.events_since(thread_id, offset)

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

    # --- compaction -------------------------------------------------------------------

    async def compact(
        self,
        thread_id: str,
        *,
        max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
        min_turns: int = 2,
    ) -> CompactionReport:
        """Merge the thread's finished turn objects into segments (see
        :func:`s3_eventstore.s3.compaction.compact`, which this calls). Each compacted
        turn keeps a stub under its key (docs/FORMAT.md section 11.5), so a later
        ``finish_turn`` of it by any writer still raises :class:`TurnAlreadyFinishedError`.

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
        listed = [obj.key for obj in await self.objects.list_all(folder)]
        # Turn keys first, segments last: a stub never outlives its segment, so a read
        # racing the clear never meets a stub whose segment is gone for good.
        segments = [key for key in listed if self.layout.parse_segment_key(key, thread_id)]
        await self.objects.delete_keys([key for key in listed if key not in set(segments)])
        await self.objects.delete_keys(segments)
        await self._forget_thread(thread_id, folder)

    async def _forget_thread(self, thread_id: str, folder: str) -> None:
        """Drop the thread's open turns (aborting streamed uploads) and what is cached."""
        await self._open_turns.forget_thread(thread_id)
        self.reader.forget(folder)

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

    @property
    def multipart_probe(self) -> ProbeResult | None:
        """Whether CompleteMultipartUpload honours ``If-None-Match: *``, once probed (before
        the first streamed turn, when ``check_endpoint`` asks for probes)."""
        return self._probe.multipart

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

    # --- seams the tests reach (kept from the single-module store) ----------------------
    # Tests patch these to stage races (a stale listing, objects that keep vanishing) or
    # read the probe decision; they forward to the part that owns the behaviour.

    def _wants_probe(self) -> bool:
        return self._probe.wanted()

    @property
    def probe_wanted(self) -> bool:
        """Whether ``finish_turn`` probes the endpoint before the first write (see
        ``check_endpoint``): every endpoint that is not AWS, unless configured otherwise."""
        return self._probe.wanted()

    @property
    def _open(self) -> dict[str, dict[int, OpenTurn]]:
        return self._open_turns.by_thread

    @property
    def _list_thread(self) -> Callable[[str], Awaitable[ThreadListing]]:
        return self.reader.list_thread

    @_list_thread.setter
    def _list_thread(self, value: Callable[[str], Awaitable[ThreadListing]]) -> None:
        setattr(self.reader, "list_thread", value)  # noqa: B010 - an instance-level patch

    @property
    def _fetch(self) -> Callable[[str, str, int], Awaitable[Any]]:
        return self.reader.turns.fetch_key

    @_fetch.setter
    def _fetch(self, value: Callable[[str, str, int], Awaitable[Any]]) -> None:
        setattr(self.reader.turns, "fetch_key", value)  # noqa: B010 - an instance-level patch
