"""Trained zstd dictionaries: training on a store's turns, writing and reading with them,
and the size they save on turns they were not trained on."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

import pytest
import zstandard

from s3_eventstore import ConfigurationError, CorruptObjectError, S3EventStore
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns
from s3_eventstore.format.dictionary import TrainedDictionary, dictionary_id_of
from s3_eventstore.format.manifest import MANIFEST_METADATA_KEY
from s3_eventstore.format.turn import TurnCodec
from s3_eventstore.s3.dictionaries import train_dictionary
from tests.conftest import all_keys
from tests.test_s3_store import OperationLog, new_store, read_object

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server
    from s3_eventstore.demo.workload import GeneratedTurn

SPEC = WorkloadSpec(threads=40, turns_per_thread=5)


def payload(turn: GeneratedTurn) -> bytes:
    return b"".join(event.to_json() + b"\n" for event in turn.events)


async def write(store: S3EventStore, turns: list[GeneratedTurn]) -> None:
    for turn in turns:
        for event in turn.events:
            await store.append(turn.thread_id, turn.turn, event)
        await store.finish_turn(turn.thread_id, turn.turn)


def test_a_dictionary_shrinks_held_out_turns_by_a_fifth() -> None:
    turns = list(generate_turns(WorkloadSpec()))  # the benchmark's default workload
    threads = sorted({turn.thread_id for turn in turns})
    trained_on = set(threads[:150])
    held_out = [turn for turn in turns if turn.thread_id not in trained_on]
    samples = [payload(turn) for turn in turns if turn.thread_id in trained_on]
    data = zstandard.train_dictionary(32 * 1024, samples, level=3).as_bytes()
    dictionary = TrainedDictionary.from_bytes(data)
    plain, with_dictionary = TurnCodec(), TurnCodec(dictionary=dictionary)
    before = statistics.median(
        len(plain.encode(t.thread_id, t.turn, t.events, writer="w").body) for t in held_out
    )
    after = statistics.median(
        len(with_dictionary.encode(t.thread_id, t.turn, t.events, writer="w").body)
        for t in held_out
    )
    assert after <= 0.8 * before, (before, after)


async def test_train_write_and_read_back(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    turns = list(generate_turns(SPEC))
    threads = list(dict.fromkeys(turn.thread_id for turn in turns))
    async with new_store(s3_server, bucket) as plain:
        await write(plain, [t for t in turns if t.thread_id in threads[:30]])
        dictionary_id = await train_dictionary(plain, sample_threads=threads[:30], size=8192)
        assert dictionary_id == await train_dictionary(
            plain, sample_threads=threads[:30], size=8192
        )
        found = await train_dictionary(plain, size=8192)  # threads found by listing
        assert len(found) == 32
        assert all(
            f"dictionaries/{i}.zdict" in " ".join(all_keys(backdoor, bucket))
            for i in (found, dictionary_id)
        )
    key = f"archive/v1/dictionaries/{dictionary_id}.zdict"
    assert key in all_keys(backdoor, bucket)
    data = backdoor.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert dictionary_id_of(data) == dictionary_id
    held_out = [t for t in turns if t.thread_id in threads[30:]]
    async with new_store(s3_server, bucket, dictionary_id=dictionary_id) as store:
        log = OperationLog(store.client)
        await write(store, held_out[:1])
        assert log.take() == {"GetObject": 1, "PutObject": 1}, "the dictionary, once"
        await write(store, held_out[1:])
        assert log.take() == {"PutObject": len(held_out) - 1}
    first = held_out[0]
    response = backdoor.get_object(
        Bucket=bucket, Key=store.layout.turn_key(first.thread_id, first.turn)
    )
    body = response["Body"].read()
    manifest = response["Metadata"][MANIFEST_METADATA_KEY]
    assert '"format":2,' in manifest
    assert manifest.endswith(f',"dictionary":"{dictionary_id}"}}')
    with pytest.raises(zstandard.ZstdError):
        zstandard.ZstdDecompressor().decompress(body)
    dict_data = zstandard.ZstdCompressionDict(data)
    assert zstandard.ZstdDecompressor(dict_data=dict_data).decompress(body) == payload(first)
    async with new_store(s3_server, bucket) as reader:  # configured with no dictionary
        log = OperationLog(reader.client)
        read = await reader.get_turns(first.thread_id)
        assert [t.events for t in read] == [
            t.events for t in held_out if t.thread_id == first.thread_id
        ]
        assert log.take() == {"ListObjectsV2": 1, "GetObject": 5 + 1}, "turns and dictionary"
        await reader.get_turns(threads[-1])
        assert log.take() == {"ListObjectsV2": 1, "GetObject": 5}, "the dictionary is cached"
        # A thread of plain and dictionary turns compacts into one readable segment.
        plain_turn = turns[0]
        await reader.append(first.thread_id, 99, plain_turn.events[0])
        await reader.finish_turn(first.thread_id, 99)
        report = await reader.compact(first.thread_id)
        assert report.turns_compacted == 6
    payload_of_plain, _ = read_object(backdoor, bucket, reader.layout.turn_key(threads[0], 1))
    assert payload_of_plain == payload(turns[0]), "the untouched plain turn stays plain zstd"
    async with new_store(s3_server, bucket) as reader:
        read = await reader.get_turns(first.thread_id)
        assert [t.turn for t in read] == [1, 2, 3, 4, 5, 99]
        assert (await reader.verify(first.thread_id)).clean
        segment = backdoor.get_object(Bucket=bucket, Key=report.segments_written[0])
        assert f'"dictionaries":["{dictionary_id}"]' in segment["Metadata"][MANIFEST_METADATA_KEY]


async def test_missing_and_malformed_dictionaries(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    with pytest.raises(ConfigurationError, match="is not a dictionary id"):
        new_store(s3_server, bucket, dictionary_id="not-hex")
    missing = "0" * 32
    async with new_store(s3_server, bucket, dictionary_id=missing) as store:
        await store.append("t", 1, next(generate_turns(SPEC)).events[0])
        with pytest.raises(ConfigurationError, match=f"dictionary {missing} does not exist"):
            await store.finish_turn("t", 1)
        assert [i.turn for i in store.open_turns()] == [1], "the turn stays open"
    backdoor.put_object(
        Bucket=bucket, Key=f"archive/v1/dictionaries/{missing}.zdict", Body=b"not a dictionary"
    )
    async with new_store(s3_server, bucket, dictionary_id=missing) as store:
        await store.append("t", 1, next(generate_turns(SPEC)).events[0])
        with pytest.raises(CorruptObjectError, match=f"hash to [0-9a-f]{{32}}, not {missing}$"):
            await store.finish_turn("t", 1)


async def test_too_few_turns_to_train(s3_store: S3EventStore) -> None:
    with pytest.raises(ConfigurationError, match="only 0 finished turn"):
        await train_dictionary(s3_store, sample_threads=["nobody"])


async def test_a_turn_whose_dictionary_is_gone_is_corrupt(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    turns = list(generate_turns(SPEC))
    async with new_store(s3_server, bucket) as plain:
        await write(plain, turns[:20])
        dictionary_id = await train_dictionary(plain, size=4096)
    async with new_store(s3_server, bucket, dictionary_id=dictionary_id) as store:
        await write(store, turns[20:21])
    key = f"archive/v1/dictionaries/{dictionary_id}.zdict"
    backdoor.delete_object(Bucket=bucket, Key=key)
    async with new_store(s3_server, bucket) as reader:
        with pytest.raises(CorruptObjectError, match=f"dictionary {dictionary_id} does not exist"):
            await reader.get_turn(turns[20].thread_id, turns[20].turn)
