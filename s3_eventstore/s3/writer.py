"""The write path: appends into open turns, streaming of large turns, suspension (flush)
and the finish protocol.

``append`` buffers in memory (no request); ``flush`` persists open turns as open turn
objects and ``finish_turn`` seals a turn, each with one conditional PUT on the turn key
when nobody else wrote it (docs/FORMAT.md section 11; the decisions after a failed
condition are :mod:`s3_eventstore.s3.suspension`'s), so exactly one writer can ever
finish a turn and a retry after a lost response recognises its own write. Bounded memory: a turn whose buffer reaches ``max_turn_buffer_bytes`` is
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
from s3_eventstore.errors import (
    StorageError,
    TurnAlreadyFinishedError,
    TurnFinishedError,
    TurnStreamingError,
)
from s3_eventstore.format.lifecycle import encode_open
from s3_eventstore.format.stream import TurnStreamEncoder
from s3_eventstore.format.turn import TurnCodec
from s3_eventstore.identifiers import check_thread_id, check_turn
from s3_eventstore.memory import check_envelope
from s3_eventstore.s3.config import ENCODE_IN_THREAD_BYTES
from s3_eventstore.s3.multipart import StreamedTurn
from s3_eventstore.s3.suspension import resolve, write_turn

if TYPE_CHECKING:
    from collections.abc import Sequence

    from s3_eventstore.format.keys import KeyLayout
    from s3_eventstore.format.manifest import TurnManifest
    from s3_eventstore.format.turn import EncodedTurn
    from s3_eventstore.s3.bucket import Bucket
    from s3_eventstore.s3.buffers import OpenTurn
    from s3_eventstore.s3.config import WriteOptions
    from s3_eventstore.s3.open_turns import OpenTurns
    from s3_eventstore.s3.probe import EndpointProbe
    from s3_eventstore.s3.reader import ThreadReader
    from s3_eventstore.s3.suspension import WriteMode, WriteResult

__all__ = ["TurnWriter"]

logger = logging.getLogger("s3_eventstore")


class TurnWriter:
    """Appends and finishes turns of one store.

    Args:
        bucket: The bucket seam.
        layout: The store's key layout.
        open_turns: The store's open turns.
        reader: The read path (a write whose condition failed reads the turn key there).
        probe: The endpoint probe run before the first write when configured.
        options: Compression level, buffer limits, multipart part size, dictionary.
    """

    def __init__(
        self,
        bucket: Bucket,
        layout: KeyLayout,
        open_turns: OpenTurns,
        reader: ThreadReader,
        probe: EndpointProbe,
        options: WriteOptions,
    ) -> None:
        self._bucket = bucket
        self._layout = layout
        self._open_turns = open_turns
        self._reader = reader
        self._turns = reader.turns
        self._probe = probe
        self._codec = TurnCodec(options.compression_level)
        self._open_codec = TurnCodec(options.compression_level)  # open objects: no dictionary
        self.persist = options.persist
        """Automatic persistence of open turns (``None``: only ``flush``/``close``)."""
        self.max_turn_buffer_bytes = options.max_turn_buffer_bytes
        """JSON-line bytes one turn buffers before it is streamed to S3."""
        self.multipart_part_bytes = options.multipart_part_bytes
        """Compressed bytes per part of a streamed turn."""
        self.max_parts_in_flight = options.max_parts_in_flight
        """Parts of one streamed turn waiting for upload before appends wait."""
        self.dictionary_id = options.dictionary_id
        """The dictionary new turns are compressed with (``None``: plain zstd)."""
        self._undelivered: list[TurnAlreadyFinishedError] = []
        """Refusals found by a flush that then raised something else (or by a close that
        refused several turns): the next ``flush`` raises them first, one per call. A
        refused turn is dropped, so its error is the only place its events are left."""

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
            or self.persist is not None
            or open_turn.persistence.needs_check
        ):
            return False
        size = envelope.wire_size + 1
        held = envelope.memory_size  # what the budget counts: real memory, not JSON bytes
        budget = self._open_turns.budget
        if (
            open_turn.buffered_bytes + size >= self.max_turn_buffer_bytes
            or budget.used + held > budget.limit
        ):
            return False
        budget.used += held
        open_turn.events.append(envelope)
        open_turn.buffered_bytes += size
        open_turn.held_bytes += held
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
        """Everything but the hot path: new or sealing turns, streaming, limits, automatic
        persistence, and turns whose state must be checked first."""
        if open_turn is None or open_turn.sealing is not None:
            check_thread_id(thread_id)
            check_turn(turn)
            self._layout.thread_folder(thread_id)  # refuse ids whose keys cannot exist, now
            open_turn = await self._open_for_append(thread_id, turn)
        elif open_turn.persistence.needs_check:
            await self._check_own_finish(open_turn)
        if open_turn.stream is not None:
            await self._append_streamed(open_turn, open_turn.stream, envelope)
            return
        size = envelope.wire_size + 1
        stream = None
        try:
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
            self._open_turns.budget.reserve(envelope.memory_size)
        except BaseException:
            self._open_turns.drop_if_unused(open_turn)  # a refused append leaves no turn
            raise
        open_turn.add(envelope)
        if not open_turn.pending_since:
            open_turn.pending_since = open_turn.last_append_at
        if stream is not None:
            self._start_streaming(open_turn, stream)
        elif self.persist is not None and self.persist.due(
            len(open_turn.events),
            open_turn.buffered_bytes,
            open_turn.pending_since,
            open_turn.last_append_at,
        ):
            await self._persist_now(open_turn, envelope)

    async def _open_for_append(self, thread_id: str, turn: int) -> OpenTurn:
        """The open turn to append to. A turn this store believes finished is re-checked
        first (one HEAD): another store may have cleared the thread since.

        Raises:
            TurnFinishedError: the turn is finished (or compacted).
        """
        try:
            return await self._open_turns.open_for_append(thread_id, turn)
        except TurnFinishedError:
            key = self._layout.turn_key(thread_id, turn)
            head = await self._bucket.head(key)
            if head is not None and not self._reader.is_open_object(head.metadata):
                raise
            self._open_turns.forget_finished(thread_id, turn)
            return await self._open_turns.open_for_append(thread_id, turn)

    async def _check_own_finish(self, open_turn: OpenTurn) -> None:
        """After a ``finish_turn`` that may have landed (it raised), read the key once: if
        this store's finish sealed the turn, the append is refused (and a later
        ``finish_turn`` succeeds).

        Raises:
            TurnFinishedError: this store's own earlier finish sealed the turn.
        """
        persistence = open_turn.persistence
        async with persistence.lock:
            state = await self._reader.read_key(open_turn.thread_id, open_turn.turn)
            self._forget_front(open_turn, resolve(persistence, state, tuple(open_turn.events)))
            own = state.writer is not None and state.writer in persistence.finish_ids
            persistence.own_finished = own and state.kind in ("finished", "stub")
            if persistence.own_finished:
                self._forget_front(open_turn, len(open_turn.events))
                raise TurnFinishedError(open_turn.thread_id, open_turn.turn)

    def _forget_front(self, open_turn: OpenTurn, count: int) -> None:
        self._open_turns.budget.release(open_turn.take_front(count))

    async def _persist_now(self, open_turn: OpenTurn, envelope: AgentEventEnvelope) -> None:
        """Automatic persistence, best effort: a storage failure leaves the events buffered
        (the next persist, flush or finish writes them, once)."""
        try:
            await self._probe.before_write()
            await self.write(open_turn, "open")
        except TurnAlreadyFinishedError as err:
            self._open_turns.drop(open_turn)
            self._open_turns.remember_finished(open_turn.thread_id, open_turn.turn)
            unwritten = tuple(event for event in err.unwritten_events if event is not envelope)
            raise TurnFinishedError(
                open_turn.thread_id, open_turn.turn, unwritten_events=unwritten
            ) from None
        except StorageError as err:
            logger.warning(
                "could not persist turn %d of thread %r (it stays buffered): %s",
                open_turn.turn,
                open_turn.thread_id,
                err,
            )

    def _new_stream(self, open_turn: OpenTurn) -> StreamedTurn:
        if open_turn.persistence.known_persisted:
            raise TurnStreamingError(
                f"turn {open_turn.turn} of thread {open_turn.thread_id!r} has persisted "
                f"events (an open turn object) and cannot be streamed: finish it, or raise "
                f"max_turn_buffer_bytes; the event was not recorded",
                thread_id=open_turn.thread_id,
                turn=open_turn.turn,
            )
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
        self._open_turns.budget.release(open_turn.held_bytes)
        open_turn.held_bytes = 0
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
        """Seal the turn in one immutable object (see ``S3EventStore.finish_turn``)."""
        check_thread_id(thread_id)
        check_turn(turn)
        key = self._layout.turn_key(thread_id, turn)
        open_turn = await self._open_turns.seal(thread_id, turn, key)
        try:
            await self._probe.before_write()
            if open_turn.stream is not None:
                etag, manifest = await self._complete_stream(key, open_turn, open_turn.stream)
                self._turns.manifests.put(key, etag, manifest)
            else:
                await self.write(open_turn, "finished")
        except TurnAlreadyFinishedError:
            self._open_turns.drop(open_turn)
            self._open_turns.remember_finished(thread_id, turn)
            raise
        except BaseException:
            self._open_turns.unseal(open_turn)
            raise
        self._open_turns.drop(open_turn)
        self._open_turns.remember_finished(thread_id, turn)

    async def flush(self) -> None:
        """Persist every open turn's buffered events (see ``S3EventStore.flush``).

        A refusal an earlier call found but could not raise is raised first.
        """
        if self._undelivered:
            raise self._undelivered.pop(0)
        streamed: list[OpenTurn] = []
        for open_turn in sorted(self._open_turns.all(), key=lambda t: (t.thread_id, t.turn)):
            if open_turn.stream is not None:
                streamed.append(open_turn)
                continue
            if not open_turn.events or open_turn.sealing is not None:
                continue  # nothing to persist, or a finish_turn is writing it now
            await self._probe.before_write()
            try:
                await self.write(open_turn, "open")
            except TurnAlreadyFinishedError:
                self._open_turns.drop(open_turn)
                self._open_turns.remember_finished(open_turn.thread_id, open_turn.turn)
                raise
        if streamed:
            first = streamed[0]
            raise TurnStreamingError(
                f"{len(streamed)} open turn(s) are streamed (they outgrew "
                f"max_turn_buffer_bytes) and cannot be suspended, e.g. turn {first.turn} of "
                f"thread {first.thread_id!r}: finish or discard them (every other open turn "
                f"was persisted)",
                thread_id=first.thread_id,
                turn=first.turn,
            )

    async def flush_for_close(self) -> None:
        """Flush until every open turn is persisted or refused (``close``'s flush); streamed
        turns are left as they are.

        Raises:
            TurnAlreadyFinishedError: the first refused turn; further ones are raised by
                the next ``flush`` (or close), one per call.
            StorageError: a request failed; refusals found before it are raised by the
                next ``flush`` (or close), so no refused turn's events are lost unheard.
        """
        refused: list[TurnAlreadyFinishedError] = []
        try:
            while True:
                try:
                    await self.flush()
                    break
                except TurnAlreadyFinishedError as err:
                    refused.append(err)  # that turn is dropped: flush the others
                except TurnStreamingError:
                    break  # streamed turns cannot be suspended: close stops them
        except BaseException:
            self._undelivered[:0] = refused
            raise
        if refused:
            self._undelivered[:0] = refused[1:]
            raise refused[0]

    async def write(self, open_turn: OpenTurn, mode: WriteMode) -> WriteResult:
        """Persist (``open``) or seal (``finished``) an open turn: conditional PUTs on its
        key until one holds (docs/FORMAT.md 11.4). Persisted events leave the buffer.

        Raises:
            TurnAlreadyFinishedError: another writer sealed the turn.
            StorageError: a request failed (the outcome is resolved by the next write).
        """
        key = self._layout.turn_key(open_turn.thread_id, open_turn.turn)

        cache = self._turns.open_manifests if mode == "open" else self._turns.manifests

        async def put(
            events: Sequence[AgentEventEnvelope], writer: str, if_match: str | None
        ) -> str:
            encoded = await self._encode(open_turn, events, writer, mode)
            etag = await self._bucket.put(
                key,
                encoded.body,
                mode="create" if if_match is None else "overwrite",
                if_match=if_match,
                metadata=encoded.metadata,
            )
            cache.put(key, etag, encoded.manifest)  # counting it needs no HEAD now
            return etag

        async with open_turn.persistence.lock:
            result = await write_turn(
                open_turn.persistence,
                mode,
                pending=lambda: open_turn.events,
                drop=lambda count: self._forget_front(open_turn, count),
                put=put,
                read_key=lambda: self._reader.read_key(open_turn.thread_id, open_turn.turn),
                thread_id=open_turn.thread_id,
                turn=open_turn.turn,
                key=key,
            )
            self._forget_front(open_turn, result.written)
            return result

    async def _encode(
        self,
        open_turn: OpenTurn,
        events: Sequence[AgentEventEnvelope],
        writer: str,
        mode: WriteMode,
    ) -> EncodedTurn:
        thread_id, turn = open_turn.thread_id, open_turn.turn
        if mode == "open":
            codec = self._open_codec
            if sum(event.wire_size for event in events) < ENCODE_IN_THREAD_BYTES:
                return encode_open(codec, thread_id, turn, events, writer=writer)
            private = TurnCodec(codec.level)  # zstd compressors are not thread-safe
            return await asyncio.to_thread(
                encode_open, private, thread_id, turn, events, writer=writer
            )
        if self.dictionary_id is not None and self._codec.dictionary is None:
            dictionary = await self._turns.writing_dictionary(self.dictionary_id)
            self._codec = TurnCodec(self._codec.level, dictionary)
        if sum(event.wire_size for event in events) < ENCODE_IN_THREAD_BYTES:
            return self._codec.encode(thread_id, turn, events, writer=writer)
        # A private codec: zstd compressors must not be used by two threads at once.
        codec = TurnCodec(self._codec.level, self._codec.dictionary)
        return await asyncio.to_thread(codec.encode, thread_id, turn, events, writer=writer)

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
