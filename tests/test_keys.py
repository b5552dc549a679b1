"""Key layout: pure functions, examples. (Property tests live in test_keys_properties.py.)"""

from __future__ import annotations

import hashlib

import pytest

from s3_eventstore import ConfigurationError, InvalidThreadIdError
from s3_eventstore.format.keys import (
    KeyLayout,
    ParsedKey,
    decode_thread,
    encode_thread,
    normalise_prefix,
    thread_shard,
)


@pytest.mark.parametrize(
    ("thread_id", "encoded"),
    [
        ("e455fe43-e6d9-472a-9efc-decac2709f78", "e455fe43-e6d9-472a-9efc-decac2709f78"),
        ("a/b", "a%2Fb"),
        ("..", "%2E%2E"),
        ("~x y", "%7Ex%20y"),
        ("100%", "100%25"),
        ("a\nb\x00", "a%0Ab%00"),
        ("会", "%E4%BC%9A"),
        ("thread=x", "thread%3Dx"),
    ],
)
def test_thread_encoding(thread_id: str, encoded: str) -> None:
    assert encode_thread(thread_id) == encoded
    assert decode_thread(encoded) == thread_id


@pytest.mark.parametrize("bad", ["", "a/b", "%2f", "%E4", "a%", "%2", "a.b", "%41"])
def test_non_canonical_encodings_are_refused(bad: str) -> None:
    with pytest.raises(InvalidThreadIdError):
        decode_thread(bad)


def test_turn_key_layout() -> None:
    layout = KeyLayout.for_prefix("archive/v1")
    thread = "e455fe43-e6d9-472a-9efc-decac2709f78"
    shard = hashlib.sha256(thread.encode()).hexdigest()[:2]
    key = layout.turn_key(thread, 7)
    assert key == f"archive/v1/threads/shard={shard}/thread={thread}/00000000000000000007.jsonl.zst"
    assert layout.turn_key(thread, 2**64 - 1).endswith("/18446744073709551615.jsonl.zst")
    assert layout.parse_key(key) == ParsedKey(thread, 7)
    assert layout.parse_turn_key(key, thread) == 7
    assert layout.parse_turn_key(key, thread + "x") is None
    assert layout.thread_of_folder(layout.thread_folder(thread)) == thread
    assert sorted([layout.turn_key(thread, n) for n in (10, 2, 100)]) == [
        layout.turn_key(thread, n) for n in (2, 10, 100)
    ]


def test_shards_spread_time_ordered_ids() -> None:
    ids = [f"0190a3c4-{n:04x}-7000-8000-000000000000" for n in range(4096)]
    shards = {thread_shard(i) for i in ids}
    assert len(shards) == 256


@pytest.mark.parametrize(
    "key",
    [
        "elsewhere/threads/shard=00/thread=a/00000000000000000001.jsonl.zst",
        "p/threads/shard=00/thread=a/1.jsonl.zst",
        "p/threads/shard=00/thread=a/00000000000000000001.jsonl",
        "p/threads/thread=a/00000000000000000001.jsonl.zst",
        "p/threads/shard=00/thread=a%2/00000000000000000001.jsonl.zst",
        "p/threads/shard=zz/thread=a/00000000000000000001.jsonl.zst",
        "p/threads/shard=00/thread=a/sub/00000000000000000001.jsonl.zst",
    ],
)
def test_foreign_keys_are_not_turns(key: str) -> None:
    assert KeyLayout.for_prefix("p").parse_key(key) is None


def test_prefix_normalisation() -> None:
    assert normalise_prefix("") == ""
    assert normalise_prefix("a") == "a/"
    assert normalise_prefix("a/b/") == "a/b/"
    for bad in ("/a", "a//b", "a/./b", "..", "a/..", "a\x00", "a\x7f", "x" * 600):
        with pytest.raises(ConfigurationError):
            normalise_prefix(bad)


def test_thread_ids_too_long_for_s3_keys_are_refused_up_front() -> None:
    layout = KeyLayout.for_prefix("p")
    fits = "x" * 900
    assert len(layout.turn_key(fits, 1).encode()) <= 1024
    with pytest.raises(InvalidThreadIdError, match="1024-byte key limit"):
        layout.thread_folder("x" * 1000)
    with pytest.raises(InvalidThreadIdError, match="key limit"):
        layout.thread_folder("会" * 120)  # 360 UTF-8 bytes, 1080 once percent-encoded
    with pytest.raises(InvalidThreadIdError):
        layout.thread_folder(["not", "hashable"])  # type: ignore[arg-type]
