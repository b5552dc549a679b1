"""Damaged objects planted behind the store's back: every read names the key and raises a
typed IntegrityError; foreign objects are skipped with a log line. Never a partial or a
silently wrong result."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import zstandard

from s3_eventstore import (
    CorruptObjectError,
    IntegrityError,
    S3EventStore,
    UnsupportedFormatError,
)
from s3_eventstore.format.manifest import MANIFEST_METADATA_KEY, TurnManifest
from s3_eventstore.format.turn import EncodedTurn, TurnCodec
from s3_eventstore.testing.conformance import make_event

if TYPE_CHECKING:
    from s3_eventstore.envelope import AgentEventEnvelope

THREAD = "t"
CORRUPT_TURN = 1


def encoded_turn(thread: str = THREAD, turn: int = CORRUPT_TURN, n: int = 3) -> EncodedTurn:
    """A valid turn object built by the store's own codec."""
    events = [make_event(i) for i in range(n)]
    return TurnCodec(3).encode(thread, turn, events, writer="planted")


def plant(
    backdoor: Any, bucket: str, key: str, body: bytes, metadata: dict[str, str] | None
) -> None:
    backdoor.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata or {})


def _meta(manifest: TurnManifest, **changes: Any) -> dict[str, str]:
    return dataclasses.replace(manifest, **changes).to_metadata()


def _flip_bit(body: bytes) -> bytes:
    middle = len(body) // 2
    return body[:middle] + bytes([body[middle] ^ 0x10]) + body[middle + 1 :]


def _zstd(payload: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(payload)


Damage = Callable[[EncodedTurn], tuple[bytes, dict[str, str] | None]]


def _not_json(turn: EncodedTurn) -> tuple[bytes, dict[str, str]]:
    import hashlib

    payload = b"this is not json\n"
    body = _zstd(payload)
    manifest = dataclasses.replace(
        turn.manifest,
        events=1,
        raw_bytes=len(payload),
        stored_bytes=len(body),
        sha256=hashlib.sha256(payload).hexdigest(),
    )
    return body, manifest.to_metadata()


def _not_zstd(turn: EncodedTurn) -> tuple[bytes, dict[str, str]]:
    body = b"plain bytes, no zstd frame"
    return body, _meta(turn.manifest, stored_bytes=len(body))


# (damage, error type, message after "key: ", whether the manifest alone shows it)
CASES: dict[str, tuple[Damage, type[IntegrityError], str, bool]] = {
    "truncated": (
        lambda t: (t.body[:-7], t.manifest.to_metadata()),
        CorruptObjectError,
        r"body is \d+ bytes, manifest says \d+$",
        False,
    ),
    "truncated-with-matching-size": (
        lambda t: (t.body[:-7], _meta(t.manifest, stored_bytes=len(t.body) - 7)),
        CorruptObjectError,
        # zstd's stream reader yields nothing for a cut frame; the size check catches it.
        r"body is not valid zstd: |payload is 0 bytes, manifest says \d+$",
        False,
    ),
    "bit-flipped": (
        lambda t: (_flip_bit(t.body), t.manifest.to_metadata()),
        CorruptObjectError,
        r"body is not valid zstd: |payload SHA-256 does not match the manifest$",
        False,
    ),
    "not-zstd": (_not_zstd, CorruptObjectError, r"body is not valid zstd: ", False),
    "zstd-of-non-json": (
        _not_json,
        CorruptObjectError,
        r"a line is not a valid envelope: envelope is not valid JSON",
        False,
    ),
    "count": (
        lambda t: (t.body, _meta(t.manifest, events=4)),
        CorruptObjectError,
        r"payload has 3 lines, manifest says 4$",
        False,
    ),
    "checksum": (
        lambda t: (t.body, _meta(t.manifest, sha256="0" * 64)),
        CorruptObjectError,
        r"payload SHA-256 does not match the manifest$",
        False,
    ),
    "raw-size": (
        lambda t: (t.body, _meta(t.manifest, raw_bytes=t.manifest.raw_bytes - 1)),
        CorruptObjectError,
        r"payload is \d+ bytes, manifest says \d+$",
        False,
    ),
    "stored-size": (
        lambda t: (t.body, _meta(t.manifest, stored_bytes=t.manifest.stored_bytes + 1)),
        CorruptObjectError,
        r"body is \d+ bytes, manifest says \d+$",
        False,
    ),
    "timestamps": (
        lambda t: (t.body, _meta(t.manifest, last_timestamp="1999-01-01T00:00:00Z")),
        CorruptObjectError,
        r"first/last timestamps do not match the manifest$",
        False,
    ),
    "other-thread": (
        lambda t: (t.body, _meta(t.manifest, thread_id="u")),
        CorruptObjectError,
        r"manifest names thread 'u' turn 1, but the key is for thread 't' turn 1$",
        False,
    ),
    "other-turn": (
        lambda t: (t.body, _meta(t.manifest, turn=2)),
        CorruptObjectError,
        r"manifest names thread 't' turn 2, but the key is for thread 't' turn 1$",
        False,
    ),
    "format-version": (
        lambda t: (t.body, _meta(t.manifest, format=3)),
        UnsupportedFormatError,
        r"format version 3 is not supported \(this library reads 1 and 2\)$",
        True,
    ),
    "format-2-without-dictionary": (
        lambda t: (t.body, _meta(t.manifest, format=2)),
        CorruptObjectError,
        r"a format 2 manifest names its dictionary; a format 1 manifest has none$",
        True,
    ),
    "codec": (
        lambda t: (t.body, _meta(t.manifest, codec="gzip")),
        UnsupportedFormatError,
        r"codec 'gzip' is not supported$",
        True,
    ),
    "no-manifest": (
        lambda t: (t.body, None),
        CorruptObjectError,
        r"object has no s3es-manifest metadata$",
        True,
    ),
    "manifest-not-json": (
        lambda t: (t.body, {MANIFEST_METADATA_KEY: "{not json"}),
        CorruptObjectError,
        r"manifest is not JSON: ",
        True,
    ),
    "manifest-field-types": (
        lambda t: (t.body, _meta(t.manifest, events="3")),
        CorruptObjectError,
        r"manifest field has the wrong type$",
        True,
    ),
}


LISTING_LEVEL = {
    "truncated",
    "zstd-of-non-json",
    "count",
    "stored-size",
    "other-thread",
    "other-turn",
}
"""Damage the manifest shows against its key and the LIST (thread, turn, size, an event
count its payload cannot hold): reads that never download the body (event_count, and
get_events_since placing its offset) raise too (issue 13, item 6)."""
LISTING_MESSAGES = (
    r"object is \d+ bytes, manifest says \d+$"
    r"|manifest says \d+ events in \d+ bytes of JSON lines, which cannot be.*"
    r"|manifest names thread '\w' turn \d+, but the key is for thread 't' turn 1$"
)


@pytest.fixture
async def damaged(
    request: pytest.FixtureRequest, s3_store: S3EventStore, backdoor: Any, bucket: str
) -> tuple[S3EventStore, str, list[AgentEventEnvelope]]:
    """Turn 0 good, turn 1 damaged as the case says, turn 2 good: returns (store, key, turn 2)."""
    damage = CASES[request.param][0]
    await s3_store.append(THREAD, 0, make_event(0))
    await s3_store.finish_turn(THREAD, 0)
    key = s3_store.layout.turn_key(THREAD, CORRUPT_TURN)
    plant(backdoor, bucket, key, *damage(encoded_turn()))
    last = [make_event(i) for i in range(2)]
    for event in last:
        await s3_store.append(THREAD, 2, event)
    await s3_store.finish_turn(THREAD, 2)
    return s3_store, key, last


@pytest.mark.parametrize("damaged", list(CASES), indirect=True)
async def test_reads_raise_typed_naming_the_key(
    damaged: tuple[S3EventStore, str, list[AgentEventEnvelope]],
    request: pytest.FixtureRequest,
    backdoor: Any,
    bucket: str,
) -> None:
    store, key, last = damaged
    case = request.node.callspec.params["damaged"]
    _, error, message, manifest_level = CASES[case]
    if case in LISTING_LEVEL:
        manifest_level = True
        message = f"{message}|{LISTING_MESSAGES}"
    pattern = rf"^{re.escape(key)}: (?:{message})"
    for read in (
        lambda: store.get_turn(THREAD, CORRUPT_TURN),
        lambda: store.get_turns(THREAD),
        lambda: store.get_events(THREAD),
        lambda: store.get_events_since(THREAD, 0),
        lambda: store.get_events_since(THREAD, 1),  # the first event of the bad turn
    ):
        with pytest.raises(error, match=pattern) as info:
            await read()
        assert info.value.key == key
    if manifest_level:
        with pytest.raises(error, match=pattern):
            await store.event_count(THREAD)
    else:
        # event_count reads manifests only (by design): a well-formed manifest is believed.
        metadata = backdoor.head_object(Bucket=bucket, Key=key)["Metadata"]
        claimed = TurnManifest.from_metadata(metadata, key=key).events
        assert await store.event_count(THREAD) == 1 + claimed + 2
        # Reading only past the damaged turn does not touch it.
        assert await store.get_events_since(THREAD, 1 + claimed) == last
    assert await store.get_turn(THREAD, 2) is not None  # good neighbours still read


async def test_foreign_objects_in_a_thread_folder_are_skipped_with_a_log_line(
    s3_store: S3EventStore, backdoor: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    event = make_event(0)
    await s3_store.append(THREAD, 0, event)
    await s3_store.finish_turn(THREAD, 0)
    folder = s3_store.layout.thread_folder(THREAD)
    foreign = [
        f"{folder}notes.txt",
        f"{folder}00000000000000000001.jsonl.zst.tmp",
        f"{folder}1.jsonl.zst",
        f"{folder}sub/00000000000000000002.jsonl.zst",
    ]
    for key in foreign:
        plant(backdoor, bucket, key, b"whatever", None)
    caplog.set_level(logging.WARNING, logger="s3_eventstore")
    turns = await s3_store.get_turns(THREAD)
    assert [(t.turn, list(t.events)) for t in turns] == [(0, [event])]
    assert await s3_store.event_count(THREAD) == 1
    assert await s3_store.get_events_since(THREAD, 0) == [event]
    skipped = [r.getMessage() for r in caplog.records if r.name == "s3_eventstore"]
    for key in foreign:
        assert f"skipping {key}: not a turn object of this store" in skipped


# Closed for this forgery (issue 13): 4 events cannot fit in the 3 lines' raw_bytes (a
# line is at least SHORTEST_LINE_BYTES), so the count check refuses the manifest. A forged
# count that still fits raw_bytes is only caught by reading the body (get_turns does).
async def test_offset_past_a_turn_whose_manifest_count_lies(
    s3_store: S3EventStore, backdoor: Any, bucket: str
) -> None:
    turn = encoded_turn(n=3)
    key = s3_store.layout.turn_key(THREAD, CORRUPT_TURN)
    plant(backdoor, bucket, key, turn.body, _meta(turn.manifest, events=4))
    last = [make_event(i) for i in range(2)]
    for event in last:
        await s3_store.append(THREAD, 2, event)
    await s3_store.finish_turn(THREAD, 2)
    # The true stream is 3 + 2 events, so offset 4 is the last event; the manifest says 4
    # events in turn 1, so the store starts turn 2 at offset 4 and returns both.
    try:
        since = await s3_store.get_events_since(THREAD, 4)
    except IntegrityError:
        return  # refusing is as good as being right
    assert since == last[1:]
