"""Verification of what a store holds: every turn object and segment downloaded and checked.

Reads trust nothing they download either, but they stop at the first bad object; an
operator auditing a bucket wants the whole list. :func:`verify_objects` lists one
thread's folder, or every thread under the store's prefix, page by page, downloads
each turn object with bounded concurrency and checks it against its manifest and its
key exactly as a read would. A segment is checked in full: its manifest against its key,
its index against its manifest (SHA-256, offsets, counts), and every turn frame against
its index entry, as a read of the whole segment would. A bad object becomes a :class:`VerifyProblem` in the
report; only a failure of the storage itself (LIST or GET) raises.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from s3_eventstore.errors import CorruptObjectError, IntegrityError
from s3_eventstore.format.lifecycle import STUB_BODY, Stub, open_manifest
from s3_eventstore.format.segment import LEGACY_SEGMENT_FORMAT
from s3_eventstore.format.stream import read_manifest
from s3_eventstore.identifiers import check_thread_id
from s3_eventstore.s3.listing import ListedSegment

if TYPE_CHECKING:
    from s3_eventstore.s3.objects import ListedObject
    from s3_eventstore.s3.parts import StoreParts

__all__ = ["VerifyProblem", "VerifyReport", "verify_objects"]

logger = logging.getLogger("s3_eventstore")


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    """One object that failed verification."""

    key: str
    """The object's key."""
    error: str
    """Name of the error a read would raise (``CorruptObjectError``, ``UnsupportedFormatError``)."""
    message: str
    """The error's message."""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :func:`verify_objects` found."""

    scope: str
    """The key prefix that was listed (a thread folder or the store's threads root)."""
    objects_checked: int
    """Turn objects downloaded and checked."""
    ok: int
    """Turn objects that passed every check."""
    events: int
    """Events in the objects that passed."""
    bytes_read: int
    """Object bytes downloaded (compressed)."""
    problems: tuple[VerifyProblem, ...] = ()
    """Objects that failed, in key order."""
    foreign: tuple[str, ...] = ()
    """Keys that are not turn objects of this store; skipped, not judged."""
    vanished: tuple[str, ...] = ()
    """Keys listed but gone by the time they were fetched (a concurrent delete)."""
    segments: int = 0
    """How many of ``objects_checked`` were segments (each holds many turns)."""
    orphans: tuple[str, ...] = ()
    """Segments (version 3) that no stub names: a compaction that lost a race with
    ``clear``, or one whose stubs were not written yet (it crashed, or still runs).
    Readers ignore them (a turn exists only while its key does) and ``clear`` deletes
    them; listed for the operator, not counted as problems (docs/FORMAT.md 11.5)."""

    @property
    def clean(self) -> bool:
        """True when no object failed verification."""
        return not self.problems


@dataclass(slots=True)
class _Tally:
    objects_checked: int = 0
    ok: int = 0
    events: int = 0
    bytes_read: int = 0
    problems: list[VerifyProblem] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    segments: int = 0
    stub_targets: set[tuple[str, str]] = field(default_factory=set)
    """(thread, segment name) of every stub read."""
    stubbed_segments: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Version-3 segments checked: key -> (thread, segment name)."""


async def verify_objects(store: StoreParts, thread_id: str | None = None) -> VerifyReport:
    """Verify every turn object of ``thread_id``, or of the whole store when ``None``.

    Raises:
        InvalidThreadIdError: bad thread id.
        StorageError: a LIST or GET failed (after the client's retries).
    """
    layout = store.layout
    if thread_id is None:
        scope = layout.threads_root
    else:
        scope = layout.thread_folder(check_thread_id(thread_id))
    tally = _Tally()
    async for page in store.objects.list_objects(scope):
        targets: list[tuple[str, str, int]] = []
        segments: list[tuple[ListedObject, str]] = []
        for obj in page:
            key = obj.key
            parsed = layout.parse_key(key)
            if parsed is None:
                owner = layout.thread_of_folder(key.rsplit("/", 1)[0] + "/")
                if (
                    owner is not None
                    and (thread_id is None or owner == thread_id)
                    and layout.parse_segment_key(key, owner) is not None
                ):
                    segments.append((obj, owner))
                    continue
            if parsed is None or (thread_id is not None and parsed.thread_id != thread_id):
                logger.warning("verify: skipping %s: not a turn object of this store", key)
                tally.foreign.append(key)
                continue
            targets.append((key, parsed.thread_id, parsed.turn))
        await store.reader.gather(
            [
                *(_check(store, tally, *target) for target in targets),
                *(_check_segment(store, tally, obj, owner) for obj, owner in segments),
            ]
        )
    orphans = sorted(
        key for key, target in tally.stubbed_segments.items() if target not in tally.stub_targets
    )
    return VerifyReport(
        scope=scope,
        objects_checked=tally.objects_checked,
        ok=tally.ok,
        events=tally.events,
        bytes_read=tally.bytes_read,
        problems=tuple(sorted(tally.problems, key=lambda problem: problem.key)),
        foreign=tuple(tally.foreign),
        vanished=tuple(sorted(tally.vanished)),
        segments=tally.segments,
        orphans=tuple(orphans),
    )


async def _check(store: StoreParts, tally: _Tally, key: str, thread_id: str, turn: int) -> None:
    """Download one turn object and run every check a read runs; record the verdict."""
    found = await store.objects.get(key)
    if found is None:
        tally.vanished.append(key)
        return
    body = found.body
    tally.objects_checked += 1
    tally.bytes_read += len(body)
    try:
        stub = Stub.from_metadata(found.metadata, key=key)
        if stub is not None:
            tally.stub_targets.add((thread_id, stub.segment))
            await _check_stub(store, key, body, stub, thread_id, turn)
            tally.ok += 1
            return
        manifest = open_manifest(found.metadata, key=key) or read_manifest(
            found.metadata, body, key=key
        )
        events = await store.reader.turns.decode(body, manifest, key, thread_id, turn)
    except IntegrityError as err:
        tally.problems.append(VerifyProblem(key, type(err).__name__, str(err)))
        return
    tally.ok += 1
    tally.events += len(events)


async def _check_stub(
    store: StoreParts, key: str, body: bytes, stub: Stub, thread_id: str, turn: int
) -> None:
    """A stub (docs/FORMAT.md 11.2) names its own key's turn, and a segment that exists and
    holds that turn with the stub's checksum (the segment itself is verified on its own).

    Raises:
        CorruptObjectError: any of that does not hold.
    """
    stub.check_key(thread_id, turn, key=key)
    if body != STUB_BODY:
        raise CorruptObjectError("a stub's body is not the empty skippable frame", key=key)
    segment_key = store.layout.thread_folder(thread_id) + stub.segment
    found = await store.reader.segments.index_by_name(segment_key, stub.segment_bytes, thread_id)
    entry = None if found is None else found[1].entry(turn)
    if entry is None or entry.manifest.sha256 != stub.sha256:
        raise CorruptObjectError(
            f"the stub's segment {stub.segment} is missing or does not hold turn {turn} "
            f"with sha256 {stub.sha256}",
            key=key,
        )


async def _check_segment(
    store: StoreParts, tally: _Tally, obj: ListedObject, thread_id: str
) -> None:
    """Download one segment and check it as a read of the whole segment would."""
    key = obj.key
    name = store.layout.parse_segment_key(key, thread_id)
    assert name is not None  # the caller parsed it
    segment = ListedSegment(key, obj.etag, obj.size, name)
    try:
        found = await store.reader.segments.fetch_segment(segment, thread_id)
    except IntegrityError as err:
        tally.objects_checked += 1
        tally.segments += 1
        tally.bytes_read += segment.size
        tally.problems.append(VerifyProblem(key, type(err).__name__, str(err)))
        return
    if found is None:
        tally.vanished.append(key)
        return
    tally.objects_checked += 1
    tally.segments += 1
    tally.bytes_read += segment.size
    tally.ok += 1
    tally.events += sum(len(events) for events in found[1])
    if found[0].manifest.format != LEGACY_SEGMENT_FORMAT:  # legacy ones need no stubs
        tally.stubbed_segments[key] = (thread_id, key.rsplit("/", 1)[-1])
