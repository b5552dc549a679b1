"""The write path: appends into open turns, streaming of large turns, the finish protocol.

``append`` buffers in memory (no request); ``finish_turn`` encodes the turn and PUTs it
once with ``If-None-Match: *`` (``put(mode="create")``), so exactly one writer can ever
finish a turn; a retry after a lost response recognises its own object by writer id and
checksum. Bounded memory: a turn whose buffer reaches ``max_turn_buffer_bytes`` is
streamed to S3 as a multipart upload while appends continue
(:mod:`s3_eventstore.s3.multipart`), and ``append`` refuses, with ``BufferLimitError``,
to take the store's buffered bytes over ``max_buffer_bytes``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from s3_eventstore.envelope import AgentEventEnvelope
from s3_eventstore.errors import PreconditionFailedError, StorageError, TurnAlreadyFinishedError
from s3_eventstore.format.stream import TurnStreamEncoder
from s3_eventstore.format.turn import TurnCodec
from s3_eventstore.identifiers import check_thread_id, check_turn
from s3_eventstore.memory import check_envelope
from s3_eventstore.s3.config import ENCODE_IN_THREAD_BYTES
from s3_eventstore.s3.multipart import StreamedTurn

if TYPE_CHECKING:
    from s3_eventstore.format.keys import KeyLayout
    from s3_eventstore.format.manifest import TurnManifest
    from s3_eventstore.format.turn import EncodedTurn
    from s3_eventstore.s3.bucket import Bucket
    from s3_eventstore.s3.buffers import OpenTurn
    from s3_eventstore.s3.config import WriteOptions
    from s3_eventstore.s3.open_turns import OpenTurns
    from s3_eventstore.s3.probe import EndpointProbe
    from s3_eventstore.s3.turn_objects import TurnObjects

__all__ = ["TurnWriter"]

logger = logging.getLogger("s3_eventstore")


class TurnWriter:
    """Appends and finishes turns of one store.

    Args:
        bucket: The bucket seam.
        layout: The store's key layout.
        open_turns: The store's open turns.
        turns: Turn-object reads (a finish retry HEADs its key; manifests are cached there).
        probe: The endpoint probe run before the first write when configured.
        options: Compression level, buffer limits, multipart part size, dictionary.
    """

    def __init__(
        self,
        bucket: Bucket,
        layout: KeyLayout,
        open_turns: OpenTurns,
        turns: TurnObjects,
        probe: EndpointProbe,
        options: WriteOptions,
    ) -> None:
        self._bucket = bucket
        self._layout = layout
        self._open_turns = open_turns
        self._turns = turns
        self._probe = probe
        self._codec = TurnCodec(options.compression_level)
        self.max_turn_buffer_bytes = options.max_turn_buffer_bytes
        """JSON-line bytes one turn buffers before it is streamed to S3."""
        self.multipart_part_bytes = options.multipart_part_bytes
        """Compressed bytes per part of a streamed turn."""
        self.max_parts_in_flight = options.max_parts_in_flight
        """Parts of one streamed turn waiting for upload before appends wait."""
        self.dictionary_id = options.dictionary_id
        """The dictionary new turns are compressed with (``None``: plain zstd)."""

    # --- append -------------------------------------------------------------------------

    def try_buffer(self, thread_id: str, turn: int, envelope: AgentEventEnvelope) -> bool:
        """The hot path, synchronous: buffer the event and return True when its turn is
        open here, neither sealing nor streamed, and has room; otherwise record nothing and
        return False (then :meth:`append` does the rest).

        An agent appends thousands of deltas per turn, and buffering must cost about what a
        list append does (see benchmarks/): no coroutine, no validation beyond the types.
        """
        turns = self._open_turns.by_thread.get(thread_id) if type(thread_id) is str else None
        open_turn = turns.get(turn) if turns is not None and type(turn) is int else None
        if (
            open_turn is None
            or open_turn.sealing is not None
            or open_turn.stream is not None
            or type(envelope) is not AgentEventEnvelope
        ):
            return False
        size = envelope.wire_size + 1
        budget = self._open_turns.budget
        if (
            open_turn.buffered_bytes + size >= self.max_turn_buffer_bytes
            or budget.used + size > budget.limit
        ):
            return False
        budget.used += size
        open_turn.events.append(envelope)
        open_turn.buffered_bytes += size
        open_turn.last_append_at = time.time()
        return True

    async def append(self, thread_id: str, turn: int, envelope: AgentEventEnvelope) -> None:
        """Buffer one event in its open turn (see ``S3EventStore.append``)."""
        if type(envelope) is not AgentEventEnvelope:
            check_envelope(envelope)
        elif self.try_buffer(thread_id, turn, envelope):
            return
        turns = self._open_turns.by_thread.get(thread_id) if type(thread_id) is str else None
        open_turn = turns.get(turn) if turns is not None and type(turn) is int else None
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
            check_thread_id(thread_id)
            check_turn(turn)
            self._layout.thread_folder(thread_id)  # refuse ids whose keys cannot exist, now
            open_turn = await self._open_turns.open_for_append(thread_id, turn)
        if open_turn.stream is not None:
            await self._append_streamed(open_turn, open_turn.stream, envelope)
            return
        size = envelope.wire_size + 1
        stream = None
        if open_turn.buffered_bytes + size >= self.max_turn_buffer_bytes:
            if self._probe.stream_probe_pending():
                # Once per store, before the first stream: does completion honour
                # If-None-Match? The turn may change while the probe runs: start over.
                await self._probe.probe_multipart()
                await self.append(thread_id, turn, envelope)
                return
            self._probe.check_stream_allowed(  # may refuse: before anything is recorded
                f"turn {turn} of thread {thread_id!r}", self.max_turn_buffer_bytes
            )
            stream = self._new_stream(open_turn)  # may refuse: before anything is recorded
        self._open_turns.budget.reserve(size)
        open_turn.add(envelope)
        if stream is not None:
            self._start_streaming(open_turn, stream)

    def _new_stream(self, open_turn: OpenTurn) -> StreamedTurn:
        encoder = TurnStreamEncoder(
            open_turn.thread_id, open_turn.turn, level=self._codec.level, writer=open_turn.writer
        )
        key = self._layout.turn_key(open_turn.thread_id, open_turn.turn)
        self._bucket.check_owned(key)
        return StreamedTurn(
            encoder,
            bucket=self._bucket,
            key=key,
            part_bytes=self.multipart_part_bytes,
            max_parts_in_flight=self.max_parts_in_flight,
            budget=self._open_turns.budget,
        )

    def _start_streaming(self, open_turn: OpenTurn, stream: StreamedTurn) -> None:
        """Move a turn's buffered events into its stream; from now on they are in S3 parts."""
        # This compresses max_turn_buffer_bytes on the event loop, once per turn; from
        # then on each append compresses only its own event (in 256 KiB batches).
        for event in open_turn.events:
            stream.add(event)
        self._open_turns.budget.release(open_turn.buffered_bytes)
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
            self._open_turns.budget.reserve(0)  # refuse while the store is over its limit
            stream.add(envelope)
            open_turn.buffered_bytes = stream.encoder.raw_bytes
            open_turn.last_append_at = time.time()

    # --- finish -------------------------------------------------------------------------

    async def finish_turn(self, thread_id: str, turn: int) -> None:
        """Write the turn as one immutable object (see ``S3EventStore.finish_turn``)."""
        check_thread_id(thread_id)
        check_turn(turn)
        key = self._layout.turn_key(thread_id, turn)
        open_turn = await self._open_turns.seal(thread_id, turn, key)
        try:
            await self._probe.before_write()
            if open_turn.stream is not None:
                etag, manifest = await self._complete_stream(key, open_turn, open_turn.stream)
            else:
                encoded = await self._encode(open_turn)
                etag = await self._put_turn(key, encoded, open_turn)
                manifest = encoded.manifest
        except TurnAlreadyFinishedError:
            self._open_turns.drop(open_turn)
            self._open_turns.remember_finished(thread_id, turn)
            raise
        except BaseException:
            self._open_turns.unseal(open_turn)
            raise
        self._turns.manifests.put(key, etag, manifest)
        self._open_turns.drop(open_turn)
        self._open_turns.remember_finished(thread_id, turn)

    async def _encode(self, open_turn: OpenTurn) -> EncodedTurn:
        if self.dictionary_id is not None and self._codec.dictionary is None:
            dictionary = await self._turns.writing_dictionary(self.dictionary_id)
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
        existing = await self._turns.head_manifest(key, strict=False)
        if existing is not None and existing[1] is not None:
            found = existing[1]
            if (found.writer, found.sha256) == (manifest.writer, manifest.sha256):
                logger.info("finish_turn retry found its own streamed object %s", key)
                return existing[0], found
        if gone and existing is None:
            await stream.abort()
            self._open_turns.drop(open_turn)
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
                return await self._bucket.put(
                    key, encoded.body, mode="create", metadata=encoded.metadata
                )
            except PreconditionFailedError:
                pass
            existing = await self._turns.head_manifest(key, strict=False)
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
