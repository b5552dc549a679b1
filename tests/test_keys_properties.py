"""Key layout properties (hypothesis): any thread id, turn and prefix maps to a key inside
the store's prefix and inside that thread's own folder, reversibly; invalid coordinates
are refused with a typed error before any request."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from s3_eventstore import (
    ConfigurationError,
    InvalidThreadIdError,
    InvalidTurnError,
    S3EventStore,
)
from s3_eventstore.format.keys import (
    MAX_KEY_BYTES,
    KeyLayout,
    ParsedKey,
    decode_thread,
    encode_thread,
)
from s3_eventstore.identifiers import TURN_MAX
from s3_eventstore.testing.conformance import make_event

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server

# Every code point, lone surrogates included (st.text() leaves those out by default).
ANY_CHAR = st.characters(codec=None, exclude_categories=())
ODD_CHARS = st.sampled_from(["/", ".", "..", "%", "%2F", "\x00", "\n", "\x7f", "~", "=", " ", "会"])
THREAD_IDS = st.one_of(
    st.text(ANY_CHAR, max_size=60),
    st.lists(st.one_of(ODD_CHARS, st.text(max_size=3)), max_size=12).map("".join),
)
TURNS = st.integers(min_value=0, max_value=TURN_MAX)
SEGMENT = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="/"), min_size=1, max_size=12
).filter(lambda segment: segment not in (".", ".."))
PREFIXES = st.one_of(
    st.just(""),
    st.lists(SEGMENT, min_size=1, max_size=4).map("/".join),
    st.lists(SEGMENT, min_size=1, max_size=4).map(lambda parts: "/".join(parts) + "/"),
)


def _valid(thread_id: str) -> bool:
    try:
        thread_id.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return thread_id != ""


def _folder_or_none(layout: KeyLayout, thread_id: str) -> str | None:
    """The folder, or None when the id is (correctly) too long for this prefix."""
    if len(layout.prefix.encode()) + 12 * len(thread_id) < 800:  # encoded: <= 12 B a char
        return layout.thread_folder(thread_id)
    try:
        return layout.thread_folder(thread_id)
    except InvalidThreadIdError:
        return None  # only length can refuse a valid id, and only near S3's key limit


@given(THREAD_IDS)
def test_encoding_round_trips_or_refuses_typed(thread_id: str) -> None:
    if not _valid(thread_id):
        with pytest.raises(InvalidThreadIdError):
            KeyLayout.for_prefix("p").thread_folder(thread_id)
        return
    encoded = encode_thread(thread_id)
    assert encoded.isascii()
    assert not any(ch in encoded for ch in "/.~")
    assert encoded.isprintable()
    assert decode_thread(encoded) == thread_id


@given(PREFIXES, THREAD_IDS, TURNS)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_keys_stay_inside_the_prefix_and_parse_back(prefix: str, thread_id: str, turn: int) -> None:
    layout = KeyLayout.for_prefix(prefix)
    assume(_valid(thread_id))
    folder = _folder_or_none(layout, thread_id)
    assume(folder is not None)
    key = layout.turn_key(thread_id, turn)
    assert key.startswith(layout.threads_root)
    assert key.startswith(layout.prefix)
    assert len(key.encode("utf-8")) <= MAX_KEY_BYTES
    # Nothing after the prefix can climb out of it or hide a control character.
    below = key[len(layout.prefix) :].split("/")
    assert not {".", ".."} & set(below)
    assert all(part.isprintable() for part in below)
    assert len(below) == 4  # threads / shard= / thread= / turn object
    assert layout.parse_key(key) == ParsedKey(thread_id, turn)
    assert layout.parse_turn_key(key, thread_id) == turn
    assert layout.thread_of_folder(folder) == thread_id


@given(THREAD_IDS, THREAD_IDS, TURNS)
def test_no_thread_folder_contains_another(a: str, b: str, turn: int) -> None:
    assume(a != b and _valid(a) and _valid(b))
    layout = KeyLayout.for_prefix("tenant/archive")
    folder_a, folder_b = layout.thread_folder(a), layout.thread_folder(b)
    assert not folder_b.startswith(folder_a)
    assert not folder_a.startswith(folder_b)
    assert layout.parse_turn_key(layout.turn_key(b, turn), a) is None


@given(st.text(ANY_CHAR, max_size=8))
def test_bad_prefixes_are_refused_typed(prefix: str) -> None:
    try:
        layout = KeyLayout.for_prefix(prefix)
    except ConfigurationError:
        return
    assert layout.prefix == "" or layout.prefix.endswith("/")
    assert layout.prefix.rstrip("/") == prefix.rstrip("/")
    assert not layout.prefix.startswith("/")


# --- invalid coordinates never reach the network --------------------------------------------


class _Tripwire:
    """A borrowed 'client' that records any use beyond event registration."""

    def __init__(self) -> None:
        self.touched: list[str] = []

    @property
    def meta(self) -> Any:
        class _Events:
            def register(self, *args: Any, **kwargs: Any) -> None:
                pass

        class _Meta:
            events = _Events()

        return _Meta()

    def __getattr__(self, name: str) -> Any:
        self.touched.append(name)
        raise AssertionError(f"client.{name} used")


INVALID_TURNS = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=TURN_MAX + 1),
    st.booleans(),
    st.floats(allow_nan=True),
    st.just("1"),
    st.none(),
)
INVALID_THREADS = st.one_of(
    st.just(""),
    st.text(min_size=1000, max_size=1100),
    st.text(ANY_CHAR, min_size=1).filter(lambda text: not _valid(text)),
    st.integers(),
    st.binary(),
    st.none(),
)


def _refused(store: S3EventStore, thread_id: Any, turn: Any) -> list[type[Exception]]:
    """Every store call on the coordinates; the error type each raised."""

    async def calls() -> list[type[Exception]]:
        raised: list[type[Exception]] = []
        for call in (
            lambda: store.append(thread_id, turn, make_event(0)),
            lambda: store.finish_turn(thread_id, turn),
            lambda: store.get_turn(thread_id, turn),
            lambda: store.discard_turn(thread_id, turn),
        ):
            try:
                await call()
            except Exception as err:  # noqa: BLE001 - the type is what is asserted
                raised.append(type(err))
            else:
                raised.append(type(None))  # type: ignore[arg-type]
        return raised

    return asyncio.run(calls())


@given(INVALID_TURNS)
@settings(max_examples=60, deadline=None)
def test_invalid_turns_are_refused_before_any_request(turn: Any) -> None:
    client = _Tripwire()
    store = S3EventStore("bucket", "p", client=client)
    assert _refused(store, "thread", turn) == [InvalidTurnError] * 4
    assert client.touched == []
    assert store.open_turns() == []


@given(INVALID_THREADS)
@settings(max_examples=60, deadline=None)
def test_invalid_thread_ids_are_refused_before_any_request(thread_id: Any) -> None:
    client = _Tripwire()
    store = S3EventStore("bucket", "p", client=client)
    raised = _refused(store, thread_id, 0)
    assert raised[:3] == [InvalidThreadIdError] * 3
    # discard_turn checks the id's type and Unicode but owns no key: a long id has nothing.
    assert raised[3] in (InvalidThreadIdError, type(None))
    calls = [store.get_turns, store.event_count, store.clear]
    if thread_id is not None:  # verify(None) means "the whole store"
        calls.append(store.verify)
    for call in calls:
        with pytest.raises(InvalidThreadIdError):
            asyncio.run(call(thread_id))
    assert client.touched == []
    assert store.open_turns() == []


async def test_refusals_cost_no_request_on_a_real_client(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    async with S3EventStore(
        bucket, "p", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as store:
        for turn in (-1, TURN_MAX + 1, True, 1.5):
            with pytest.raises(InvalidTurnError):
                await store.finish_turn("t", turn)
        for thread_id in ("", "x" * 1000, "bad\ud800"):
            with pytest.raises(InvalidThreadIdError):
                await store.get_turns(thread_id)
        assert store.requests.total == 0
