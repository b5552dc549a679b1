"""Streamed turns: a turn too large to buffer, uploaded in parts while it is appended.

When an open turn's buffered JSON lines reach the store's ``max_turn_buffer_bytes``,
the store hands it to a :class:`StreamedTurn`. From then on:

* every appended event is compressed at once into the turn's single zstd frame
  (:class:`~s3_eventstore.format.turn.TurnStreamEncoder`); the SHA-256 of the uncompressed
  payload, its size, the event count and the first/last timestamps are tracked as
  it goes, and the envelopes themselves are dropped;
* compressed output is cut into parts of ``part_bytes`` (at least 5 MiB: S3 refuses
  smaller parts except the last) and uploaded in order by one background task per
  turn, into a multipart upload created with the turn's :class:`StreamHeader` as
  metadata; only the compressed bytes not yet uploaded stay in memory;
* back-pressure: an ``append`` waits while more than ``max_parts_in_flight`` parts are
  cut but not uploaded, so memory stays bounded when S3 is slower than the agent;
* ``finish_turn`` first waits for every cut part (if that fails the turn stays open and
  appendable), then ends the frame, appends the trailer (a zstd skippable frame with
  the manifest, see :mod:`s3_eventstore.format.turn`), uploads it as the last part and
  completes the upload with ``If-None-Match: *``. Parts are invisible until completion,
  so readers never see half a turn, and the turn appears atomically, at most once.
  Once the payload is sealed a failed ``finish_turn`` is retried by calling it again
  (appends then raise ``TurnStreamingError``); a retry whose completion had in fact
  succeeded recognises its own object by writer id and checksum.
* ``discard_turn``, ``clear`` and a lost race abort the upload (AbortMultipartUpload),
  after letting an in-flight part request end, so no request of ours can recreate it.

What the contract gives up for bounded memory, by design:

* reads of an open streamed turn (``get_turn``, ``get_turns``, ``get_events_since`` when
  it needs that turn's events) raise ``TurnStreamingError``: the events are in S3 parts
  that cannot be read before completion, and answering from a partial window would be a
  silent wrong answer. ``event_count`` and ``open_turns`` still count them exactly;
* ``discard_turn`` of a streamed turn returns ``()`` and ``TurnAlreadyFinishedError`` of
  a streamed turn carries no ``unwritten_events``: they are no longer in memory.

Backends: AWS S3 evaluates ``If-None-Match`` on CompleteMultipartUpload atomically.
moto (5.2) checks it but not atomically (a check, then a write, without a lock), so two
racing completions on moto can both succeed; sequential ones are refused as on S3.
Keep an ``AbortIncompleteMultipartUpload`` lifecycle rule on the bucket: a process that
dies mid-turn leaves its parts behind (billed, invisible) until the rule removes them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from s3_eventstore.errors import PreconditionFailedError, StorageError, TurnStreamingError
from s3_eventstore.s3.config import MIN_PART_BYTES
from s3_eventstore.s3.errors import translate

if TYPE_CHECKING:
    from collections.abc import Callable

    from s3_eventstore.envelope import AgentEventEnvelope
    from s3_eventstore.format.manifest import TurnManifest
    from s3_eventstore.format.stream import TurnStreamEncoder
    from s3_eventstore.s3.bucket import Bucket
    from s3_eventstore.s3.budget import BufferBudget

__all__ = ["MAX_PARTS", "MIN_PART_BYTES", "StreamedTurn"]

MAX_PARTS: Final = 10_000
"""S3's maximum number of parts in one upload."""


class StreamedTurn:
    """One open turn being uploaded as a multipart upload while events are appended.

    Driven by the store: :meth:`add` under :attr:`append_lock` after
    :meth:`wait_for_room`, then :meth:`finish` and :meth:`complete`, or :meth:`abort`.
    """

    def __init__(
        self,
        encoder: TurnStreamEncoder,
        *,
        bucket: Bucket,
        key: str,
        part_bytes: int,
        max_parts_in_flight: int,
        budget: BufferBudget,
    ) -> None:
        self.encoder = encoder
        self.key = key
        self.bucket = bucket
        """The bucket seam every request goes through."""
        self.upload_id: str | None = None
        """The multipart upload's id, once CreateMultipartUpload answered."""
        self.append_lock = asyncio.Lock()
        """Held by an append from its back-pressure wait to its ``add``, and by ``finish``:
        appends stay in call order and none lands after the payload is sealed."""
        self._part_bytes = part_bytes
        self._max_in_flight = max_parts_in_flight
        self._budget = budget
        self._tail = bytearray()
        self._pending: deque[tuple[int, bytes]] = deque()
        self._next_part = 1
        self._parts: list[dict[str, Any]] = []
        self._held = 0
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._error: StorageError | None = None
        self._changed = asyncio.Condition()
        self._stopping = False
        self.aborted = False
        """True once the upload was aborted (discarded, cleared or lost a race)."""

    @property
    def sealed(self) -> bool:
        """True once ``finish`` ended the payload: no more events can be added."""
        return self.encoder.manifest is not None

    @property
    def memory_bytes(self) -> int:
        """Bytes held in memory: cut parts not uploaded yet, the compressed tail, and the
        encoder's uncompressed batch."""
        return self._held

    @property
    def parts_uploaded(self) -> int:
        """Parts the endpoint has acknowledged."""
        return len(self._parts)

    def add(self, envelope: AgentEventEnvelope) -> None:
        """Compress one event into the stream (no I/O; a full part starts its upload).

        Raises:
            TurnStreamingError: the payload is sealed, or the upload was aborted.
        """
        self._check_open()
        before = self.encoder.batch_bytes
        out = self.encoder.add(envelope)
        self._account_batch(before)
        self._write(out)

    def _account_batch(self, before: int) -> None:
        """Count the encoder's uncompressed batch as held memory too."""
        delta = self.encoder.batch_bytes - before
        if delta >= 0:
            self._budget.force(delta)
            self._held += delta
        else:
            self._release(-delta)

    def _check_open(self) -> None:
        header = self.encoder.header
        if self.aborted:
            raise TurnStreamingError(
                f"turn {header.turn} of thread {header.thread_id!r} was discarded while "
                f"this append waited for its upload; the event was not recorded",
                thread_id=header.thread_id,
                turn=header.turn,
            )
        if self.sealed:
            raise TurnStreamingError(
                f"turn {header.turn} of thread {header.thread_id!r} is streamed and its "
                f"payload was sealed by a finish_turn that failed; call finish_turn again "
                f"(or discard_turn); the event was not recorded",
                thread_id=header.thread_id,
                turn=header.turn,
            )

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self._budget.force(len(data))
        self._held += len(data)
        self._tail += data
        while len(self._tail) >= self._part_bytes:
            self._cut(self._part_bytes)

    def _cut(self, size: int) -> None:
        if self._next_part > MAX_PARTS:
            raise StorageError(
                f"{self.key}: a streamed turn may not exceed {MAX_PARTS} parts of "
                f"{self._part_bytes} bytes; raise multipart_part_bytes",
                operation="UploadPart",
            )
        part = bytes(self._tail[:size])
        del self._tail[:size]
        self._pending.append((self._next_part, part))
        self._next_part += 1
        self._start()

    def _start(self) -> None:
        """Run the uploader if parts wait and it is not running (also after a failure)."""
        if self._running or not self._pending or self._stopping or self.aborted:
            return
        self._error = None
        self._running = True
        self._task = asyncio.get_running_loop().create_task(self._upload_pending())

    async def wait_for_room(self) -> None:
        """Back-pressure: wait until at most ``max_parts_in_flight`` parts await upload.

        Raises:
            StorageError: the upload failed (retried once more by every later call).
            TurnStreamingError: the upload was aborted meanwhile.
        """
        await self._wait(lambda: len(self._pending) <= self._max_in_flight)
        self._check_open()

    async def drain(self) -> None:
        """Wait until every part cut so far is uploaded (the tail stays in memory).

        Raises:
            StorageError: the upload failed.
            TurnStreamingError: the upload was aborted meanwhile.
        """
        await self._wait(lambda: not self._pending)

    async def _wait(self, done: Callable[[], bool]) -> None:
        self._start()
        async with self._changed:
            while not done():
                if self.aborted:
                    self._check_open()
                if not self._running:
                    if self._error is not None:
                        raise self._error
                    self._start()
                    if not self._running:  # nothing can make progress: a stop in progress
                        raise StorageError(f"{self.key}: upload stopped", operation="UploadPart")
                await self._changed.wait()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _upload_pending(self) -> None:
        try:
            if self.upload_id is None:
                self.upload_id = await self.bucket.create_multipart(
                    self.key, metadata=self.encoder.header.to_metadata()
                )
            while self._pending and not self._stopping:
                number, body = self._pending[0]
                part = await self.bucket.upload_part(self.key, self.upload_id, number, body)
                self._parts.append(part)
                self._pending.popleft()
                self._release(len(body))
                await self._notify()
        except StorageError as err:
            self._error = err
        except Exception as err:  # noqa: BLE001 - a task has no caller: keep it for the waiters
            self._error = translate(err, operation="UploadPart", key=self.key)
            self._error.__cause__ = err
        finally:
            self._running = False
            await self._notify()

    def _release(self, size: int) -> None:
        self._held -= size
        self._budget.release(size)

    async def finish(self) -> TurnManifest:
        """Upload every part, seal the payload with its trailer and upload the last part.

        Idempotent: a retry after a failure resumes where it stopped.

        Raises:
            StorageError: a part could not be uploaded; if the payload was not sealed yet,
                the turn still accepts appends.
        """
        async with self.append_lock:
            if not self.sealed:
                await self._wait(lambda: not self._pending)
                before = self.encoder.batch_bytes
                last = self.encoder.finish()
                self._account_batch(before)
                self._write(last)
                if self._tail:
                    self._cut(len(self._tail))
        await self._wait(lambda: not self._pending)
        assert self.encoder.manifest is not None
        return self.encoder.manifest

    async def complete(self) -> str | None:
        """CompleteMultipartUpload with ``If-None-Match: *``; the ETag, or ``None`` on 412.

        Raises:
            StorageError: the request failed (``code`` ``NoSuchUpload`` when the upload is
                gone: completed by an earlier attempt, or aborted by someone else).
        """
        try:
            etag = await self.bucket.complete_multipart(self.key, self.upload_id, self._parts)
        except PreconditionFailedError:
            return None
        self._release(self._held)
        return etag

    async def stop(self) -> None:
        """Let the in-flight part request end and stop uploading (parts stay pending)."""
        self._stopping = True
        try:
            if self._task is not None:
                await asyncio.shield(self._task)
        finally:
            self._stopping = False

    async def abort(self) -> None:
        """Stop uploading, abort the multipart upload and free the memory. Idempotent.

        Raises:
            StorageError: AbortMultipartUpload failed (the parts remain until the bucket's
                lifecycle rule removes them); the turn is dropped all the same.
        """
        self.aborted = True
        await self.stop()
        self._pending.clear()
        self._tail.clear()
        self._release(self._held)
        upload_id, self.upload_id = self.upload_id, None
        await self._notify()
        if upload_id is None:
            return
        await self.bucket.abort_multipart(self.key, upload_id)
