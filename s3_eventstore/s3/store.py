"""S3EventStore: the EventStore contract on one immutable zstd object per finished turn.

Write path: ``append`` buffers in memory (no request); ``finish_turn`` encodes the
turn and PUTs it once with ``If-None-Match: *``, so exactly one writer can ever
finish a turn. Read path: LIST the thread's folder, then GET (or HEAD, when only
manifests are needed) in turn order with bounded concurrency, verifying every
object against its manifest. Turns open in this store are merged into reads.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar
from urllib.parse import urlparse

from s3_eventstore.codec import EncodedTurn, TurnCodec, TurnManifest
from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents
from s3_eventstore.errors import (
    ConfigurationError,
    IntegrityError,
    ObjectLockedError,
    StorageError,
    TurnAlreadyFinishedError,
    TurnFinishedError,
)
from s3_eventstore.identifiers import check_thread_id, check_turn
from s3_eventstore.memory import check_envelope
from s3_eventstore.s3.buffers import OpenTurn, OpenTurnInfo
from s3_eventstore.s3.cache import ManifestCache
from s3_eventstore.s3.client import ClientSettings, open_client
from s3_eventstore.s3.errors import is_not_found, is_precondition_failed, translate
from s3_eventstore.s3.keys import KeyLayout
from s3_eventstore.s3.metrics import RequestCounter
from s3_eventstore.store import EventStore, check_offset

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

__all__ = ["S3EventStore"]

logger = logging.getLogger("s3_eventstore")

LIST_PAGE_LIMIT: Final = 1000
"""S3 returns at most 1000 keys per LIST page; never assume more."""
DELETE_BATCH_LIMIT: Final = 1000
"""S3 accepts at most 1000 keys per DeleteObjects request (moto does not enforce it)."""
ENCODE_IN_THREAD_BYTES: Final = 1 << 20
"""Turns larger than this are compressed on a worker thread to keep the event loop live."""
_BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Listed:
    """One turn object as the LIST returned it."""

    turn: int
    key: str
    etag: str
    size: int


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

    Raises:
        ConfigurationError: bucket, prefix or limits are unusable.
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
    ) -> None:
        if not isinstance(bucket, str) or not _BUCKET_NAME.fullmatch(bucket):
            raise ConfigurationError(f"{bucket!r} is not a valid bucket name")
        if type(read_concurrency) is not int or read_concurrency < 1:
            raise ConfigurationError("read_concurrency must be a positive int")
        if retry_mode not in ("standard", "adaptive", "legacy"):
            raise ConfigurationError(f"unknown retry_mode {retry_mode!r}")
        if type(max_attempts) is not int or max_attempts < 1:
            raise ConfigurationError("max_attempts must be a positive int")
        try:
            self._codec = TurnCodec(compression_level)
        except ValueError as err:
            raise ConfigurationError(str(err)) from None
        self.bucket = bucket
        self.layout = KeyLayout.for_prefix(prefix)
        self.read_concurrency = read_concurrency
        self.requests = RequestCounter()
        """HTTP requests this store's client sent, by operation (retries included)."""
        self._settings = ClientSettings(
            endpoint_url=endpoint_url,
            region_name=region_name,
            profile_name=profile_name,
            max_attempts=max_attempts,
            retry_mode=retry_mode,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max(64, read_concurrency * 2),
            addressing_style=addressing_style,
        )
        self._session = session
        self._client: Any = client
        self._borrowed = client is not None
        if client is not None:
            self.requests.attach(client)
        self._stack: AsyncExitStack | None = None
        self._client_lock = asyncio.Lock()
        self._open: dict[str, dict[int, OpenTurn]] = {}
        self._finished: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._finished_limit = max(manifest_cache_size, 1024)
        self._manifests = ManifestCache(manifest_cache_size)

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
        await self._get_client()

    async def close(self) -> None:
        """Close the client if this store created it. Open turns are kept in memory.

        Buffered events of turns that were never finished are lost when the process ends:
        a warning is logged when any remain.
        """
        pending = sum(len(turns) for turns in self._open.values())
        if pending:
            logger.warning("closing S3EventStore with %d open turn(s) not finished", pending)
        if self._stack is not None:
            stack, self._stack = self._stack, None
            self._client = None
            await stack.aclose()

    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is None:
                stack = AsyncExitStack()
                try:
                    client = await open_client(self._settings, stack, self._session)
                except Exception as err:
                    await stack.aclose()
                    raise translate(err, operation="CreateClient") from err
                self.requests.attach(client)
                self._stack, self._client = stack, client
        return self._client

    @property
    def client(self) -> Any:
        """The aiobotocore client in use (``None`` before the first request)."""
        return self._client

    # --- write path -------------------------------------------------------------------

    async def append(self, thread_id: str, turn: int, envelope: AgentEventEnvelope) -> None:
        """Buffer one event in its open turn. Costs no S3 request.

        Raises:
            InvalidThreadIdError: bad thread id, or too long for S3 keys under this prefix.
            InvalidTurnError: bad turn number.
            InvalidEnvelopeError: ``envelope`` is not an :class:`AgentEventEnvelope`.
            TurnFinishedError: this store knows the turn is finished (it finished or read
                it). A turn finished by another writer is only detected by ``finish_turn``.
        """
        if type(envelope) is not AgentEventEnvelope:
            check_envelope(envelope)
        turns = self._open.get(thread_id) if type(thread_id) is str else None
        open_turn = turns.get(turn) if turns is not None and type(turn) is int else None
        if open_turn is None or open_turn.sealing is not None:
            open_turn = await self._open_for_append(thread_id, turn)
        open_turn.add(envelope)

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
                events this store had buffered are in ``unwritten_events``.
            StorageError: the PUT failed; the turn is still open.
        """
        check_thread_id(thread_id)
        check_turn(turn)
        key = self.layout.turn_key(thread_id, turn)
        open_turn = await self._seal(thread_id, turn, key)
        assert open_turn.sealing is not None
        try:
            encoded = await self._encode(open_turn)
            etag = await self._put_turn(key, encoded, open_turn)
        except TurnAlreadyFinishedError:
            self._drop_open(open_turn)
            self._remember_finished(thread_id, turn)
            raise
        except BaseException:
            open_turn.sealing.set()
            open_turn.sealing = None
            raise
        self._manifests.put(key, etag, encoded.manifest)
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
        events = tuple(open_turn.events)
        if open_turn.buffered_bytes < ENCODE_IN_THREAD_BYTES:
            return self._codec.encode(
                open_turn.thread_id, open_turn.turn, events, writer=open_turn.writer
            )
        # A private codec: zstd compressors must not be used by two threads at once.
        codec = TurnCodec(self._codec.level)
        return await asyncio.to_thread(
            codec.encode, open_turn.thread_id, open_turn.turn, events, writer=open_turn.writer
        )

    async def _put_turn(self, key: str, encoded: EncodedTurn, open_turn: OpenTurn) -> str:
        """PUT with If-None-Match; returns the ETag, or raises TurnAlreadyFinishedError."""
        self._check_owned(key)
        client = await self._get_client()
        for _ in range(3):
            try:
                response = await client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=encoded.body,
                    IfNoneMatch="*",
                    ChecksumAlgorithm="SHA256",
                    ContentType="application/zstd",
                    Metadata=encoded.manifest.to_metadata(),
                )
                return str(response["ETag"])
            except Exception as err:
                if not is_precondition_failed(err):
                    raise translate(err, operation="PutObject", key=key) from err
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

    def _check_owned(self, key: str) -> None:
        # Defence in depth: every key comes from the layout, but a write outside the
        # prefix must be impossible, not merely unlikely.
        if not key.startswith(self.layout.threads_root):
            raise ConfigurationError(f"refusing to write {key!r} outside {self.url}")

    # --- open turn management ---------------------------------------------------------

    def open_turns(self) -> list[OpenTurnInfo]:
        """Every turn open in this store, oldest first, with sizes and ages. No request."""
        infos = [turn.info() for turns in self._open.values() for turn in turns.values()]
        return sorted(infos, key=lambda info: info.opened_at)

    async def discard_turn(self, thread_id: str, turn: int) -> tuple[AgentEventEnvelope, ...]:
        """Drop an open turn's buffer without writing it; returns the dropped events.

        A turn with nothing buffered here returns ``()``. Costs no request.

        Raises:
            InvalidThreadIdError: bad thread id.
            InvalidTurnError: bad turn number.
        """
        check_thread_id(thread_id)
        check_turn(turn)
        while True:
            open_turn = self._open.get(thread_id, {}).get(turn)
            if open_turn is None:
                return ()
            if open_turn.sealing is None:
                self._drop_open(open_turn)
                return tuple(open_turn.events)
            await open_turn.sealing.wait()

    # --- read path --------------------------------------------------------------------

    async def get_turn(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        """One turn. Costs one GetObject (a 404 then falls back to this store's open turn).

        Raises:
            InvalidThreadIdError: bad thread id.
            InvalidTurnError: bad turn number.
            IntegrityError: the object failed verification (the error names the key).
            StorageError: the GET failed.
        """
        check_thread_id(thread_id)
        check_turn(turn)
        key = self.layout.turn_key(thread_id, turn)
        events = await self._fetch(key, thread_id, turn)
        if events is not None:
            return StoredTurnEvents(turn, events, True)
        open_turn = self._open.get(thread_id, {}).get(turn)
        if open_turn is None:
            return None
        return StoredTurnEvents(turn, tuple(open_turn.events), False)

    async def get_turns(self, thread_id: str) -> list[StoredTurnEvents]:
        """Every turn in turn order. Costs one ListObjectsV2 per 1000 objects of the thread,
        plus one GetObject per finished turn (``read_concurrency`` at a time).

        Raises:
            InvalidThreadIdError: bad thread id.
            IntegrityError: an object failed verification (the error names the key).
            StorageError: a request failed.
        """
        listed = await self._list_turns(thread_id)
        fetched = await self._gather(self._fetch(item.key, thread_id, item.turn) for item in listed)
        archived = {
            item.turn: StoredTurnEvents(item.turn, events, True)
            for item, events in zip(listed, fetched, strict=True)
            if events is not None
        }
        return self._merge_open(thread_id, archived)

    async def event_count(self, thread_id: str) -> int:
        """Number of events. Costs the LIST of ``get_turns``, plus one HeadObject per finished
        turn whose manifest this store has not seen yet; no event is downloaded.

        Raises:
            InvalidThreadIdError: bad thread id.
            IntegrityError: a manifest is missing or malformed.
            StorageError: a request failed.
        """
        return sum(count for _, count, _ in await self._turn_counts(thread_id))

    async def get_events_since(self, thread_id: str, offset: int) -> list[AgentEventEnvelope]:
        """Events from ``offset`` on (turn-major). Costs what ``event_count`` costs, plus one
        GetObject per finished turn that holds events at or after ``offset``.

        Raises:
            InvalidThreadIdError: bad thread id.
            InvalidInputError: ``offset`` is not a non-negative int.
            IntegrityError: an object failed verification.
            StorageError: a request failed.
        """
        check_offset(offset)
        counts = await self._turn_counts(thread_id)
        wanted: list[tuple[int, int, _Listed | OpenTurn]] = []  # (skip, turn, source)
        position = 0
        for turn, count, source in counts:
            if position + count > offset:
                wanted.append((max(0, offset - position), turn, source))
            position += count
        fetched = await self._gather(
            self._events_of(thread_id, turn, src) for _, turn, src in wanted
        )
        events: list[AgentEventEnvelope] = []
        for (skip, _, _), turn_events in zip(wanted, fetched, strict=True):
            events.extend(turn_events[skip:])
        return events

    async def _events_of(
        self, thread_id: str, turn: int, source: _Listed | OpenTurn
    ) -> tuple[AgentEventEnvelope, ...]:
        if isinstance(source, OpenTurn):
            return tuple(source.events)
        events = await self._fetch(source.key, thread_id, turn)
        if events is None:
            raise StorageError(  # deleted between the LIST and the GET (a concurrent clear)
                f"turn {turn} of thread {thread_id!r} vanished while it was read; retry",
                operation="GetObject",
                code="NoSuchKey",
            )
        return events

    async def _turn_counts(self, thread_id: str) -> list[tuple[int, int, _Listed | OpenTurn]]:
        """(turn, event count, where the events are) for every turn, in turn order."""
        listed = await self._list_turns(thread_id)
        manifests = await self._gather(self._manifest_of(item) for item in listed)
        counts: dict[int, tuple[int, int, _Listed | OpenTurn]] = {
            item.turn: (item.turn, manifest.events, item)
            for item, manifest in zip(listed, manifests, strict=True)
            if manifest is not None
        }
        for turn, open_turn in self._open.get(thread_id, {}).items():
            counts.setdefault(turn, (turn, len(open_turn.events), open_turn))
        return [counts[turn] for turn in sorted(counts)]

    def _merge_open(
        self, thread_id: str, archived: dict[int, StoredTurnEvents]
    ) -> list[StoredTurnEvents]:
        merged = dict(archived)
        for turn, open_turn in self._open.get(thread_id, {}).items():
            if turn not in merged:
                merged[turn] = StoredTurnEvents(turn, tuple(open_turn.events), False)
        return [merged[turn] for turn in sorted(merged)]

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
        """The thread's turn objects in turn order; anything else in its folder is skipped."""
        folder = self.layout.thread_folder(thread_id)
        listed: list[_Listed] = []
        for obj in await self._list(folder):
            turn = self.layout.parse_turn_key(obj["Key"], thread_id)
            if turn is None:
                logger.warning("skipping %s: not a turn object of this store", obj["Key"])
                continue
            listed.append(_Listed(turn, obj["Key"], str(obj.get("ETag", "")), int(obj["Size"])))
        listed.sort(key=lambda item: item.turn)  # keys sort by turn already; do not rely on it
        return listed

    async def _list(self, prefix: str) -> list[dict[str, Any]]:
        """Every object under ``prefix``, following continuation tokens page by page."""
        client = await self._get_client()
        objects: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": prefix,
                "MaxKeys": LIST_PAGE_LIMIT,
            }
            if token:
                params["ContinuationToken"] = token
            try:
                page = await client.list_objects_v2(**params)
            except Exception as err:
                raise translate(err, operation="ListObjectsV2", key=prefix) from err
            objects.extend(page.get("Contents", []))
            if not page.get("IsTruncated"):
                return objects
            token = page.get("NextContinuationToken")
            if not token:
                raise StorageError(
                    f"ListObjectsV2 {prefix} was truncated without a continuation token",
                    operation="ListObjectsV2",
                )

    async def _fetch(
        self, key: str, thread_id: str, turn: int
    ) -> tuple[AgentEventEnvelope, ...] | None:
        """GET and verify one turn object; ``None`` if it does not exist."""
        client = await self._get_client()
        try:
            response = await client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as stream:
                body = await stream.read()
        except Exception as err:
            if is_not_found(err):
                return None
            raise translate(err, operation="GetObject", key=key) from err
        manifest = TurnManifest.from_metadata(response.get("Metadata", {}), key=key)
        events = await self._decode(body, manifest, key, thread_id, turn)
        self._manifests.put(key, str(response.get("ETag", "")), manifest)
        self._remember_finished(thread_id, turn)
        return tuple(events)

    async def _decode(
        self, body: bytes, manifest: TurnManifest, key: str, thread_id: str, turn: int
    ) -> list[AgentEventEnvelope]:
        decode: Callable[[], list[AgentEventEnvelope]] = lambda: TurnCodec.decode(
            body, manifest, key=key, thread_id=thread_id, turn=turn
        )
        if manifest.raw_bytes < ENCODE_IN_THREAD_BYTES:
            return decode()
        return await asyncio.to_thread(decode)

    async def _manifest_of(self, item: _Listed) -> TurnManifest | None:
        cached = self._manifests.get(item.key, item.etag)
        if cached is not None:
            return cached
        found = await self._head_manifest(item.key, strict=True)
        return None if found is None else found[1]

    async def _head_manifest(
        self, key: str, *, strict: bool
    ) -> tuple[str, TurnManifest | None] | None:
        """HEAD one object: ``(etag, manifest)``, ``None`` if absent. A malformed manifest
        raises when ``strict``, else yields ``(etag, None)``."""
        client = await self._get_client()
        try:
            response = await client.head_object(Bucket=self.bucket, Key=key)
        except Exception as err:
            if is_not_found(err):
                return None
            raise translate(err, operation="HeadObject", key=key) from err
        etag = str(response.get("ETag", ""))
        try:
            manifest = TurnManifest.from_metadata(response.get("Metadata", {}), key=key)
        except IntegrityError:
            if strict:
                raise
            return etag, None
        self._manifests.put(key, etag, manifest)
        return etag, manifest

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
        keys = [obj["Key"] for obj in await self._list(folder)]
        deleted: list[str] = []
        for start in range(0, len(keys), DELETE_BATCH_LIMIT):
            batch = keys[start : start + DELETE_BATCH_LIMIT]
            deleted.extend(await self._delete_batch(batch, deleted, keys))
        for turn in list(self._open.get(thread_id, {})):
            open_turn = self._open[thread_id][turn]
            if open_turn.sealing is None:
                self._drop_open(open_turn)
        self._manifests.discard_prefix(folder)
        for item in [item for item in self._finished if item[0] == thread_id]:
            del self._finished[item]

    async def _delete_batch(
        self, batch: list[str], deleted_so_far: list[str], all_keys: list[str]
    ) -> list[str]:
        for key in batch:
            self._check_owned(key)
        client = await self._get_client()
        try:
            response = await client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
        except Exception as err:
            raise translate(err, operation="DeleteObjects", key=batch[0]) from err
        errors = response.get("Errors", [])
        if not errors:
            return batch
        failed = {error.get("Key") for error in errors}
        done = deleted_so_far + [key for key in batch if key not in failed]
        not_done = [key for key in all_keys if key not in set(done)]
        codes = sorted({str(error.get("Code")) for error in errors})
        message = (
            f"DeleteObjects could not delete {len(failed)} object(s) ({', '.join(codes)}); "
            f"deleted {len(done)}, kept {len(not_done)}"
        )
        if "AccessDenied" in codes:
            raise ObjectLockedError(
                message + " - Object Lock retention or a policy protects them",
                deleted=done,
                not_deleted=not_done,
            )
        raise StorageError(message, operation="DeleteObjects", code=codes[0])
