"""The dictionary shipped in the package: usable by id with no object in the bucket,
readable by a fresh store, and exactly the file its id names."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import TYPE_CHECKING

import zstandard

from s3_eventstore import S3EventStore
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns
from s3_eventstore.format.dictionary import AGENT_SDK_DICTIONARY_ID, shipped_dictionary
from tests.conftest import all_keys

if TYPE_CHECKING:
    from typing import Any

    from s3_eventstore.demo.embedded import EmbeddedS3Server


def test_the_shipped_file_hashes_to_its_name() -> None:
    folder = resources.files("s3_eventstore.dictionaries")
    files = [entry for entry in folder.iterdir() if entry.name.endswith(".zdict")]
    assert f"{AGENT_SDK_DICTIONARY_ID}.zdict" in {entry.name for entry in files}
    for entry in files:
        assert hashlib.sha256(entry.read_bytes()).hexdigest()[:32] + ".zdict" == entry.name
    dictionary = shipped_dictionary(AGENT_SDK_DICTIONARY_ID)
    assert dictionary is not None
    assert dictionary.id == AGENT_SDK_DICTIONARY_ID


def test_ids_not_shipped_are_none() -> None:
    assert shipped_dictionary("0" * 32) is None
    assert shipped_dictionary("../workload_data/agent_sdk_envelopes") is None
    assert shipped_dictionary(AGENT_SDK_DICTIONARY_ID.upper()) is None


async def test_a_store_writes_and_reads_with_the_shipped_dictionary_without_fetching_it(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    turns = list(generate_turns(WorkloadSpec(threads=1, turns_per_thread=3)))
    thread = turns[0].thread_id
    options: dict[str, Any] = {"endpoint_url": s3_server.endpoint_url}
    async with S3EventStore(
        bucket, "a", session=s3_server.session(), dictionary_id=AGENT_SDK_DICTIONARY_ID, **options
    ) as writer:
        for generated in turns:
            for event in generated.events:
                await writer.append(thread, generated.turn, event)
            await writer.finish_turn(thread, generated.turn)
        assert writer.requests.snapshot() == {"PutObject": 3}
    keys = all_keys(backdoor, bucket)
    assert len(keys) == 3
    assert not any("dictionaries/" in key for key in keys)  # nothing fetched or stored
    head = backdoor.head_object(Bucket=bucket, Key=keys[0])
    assert f'"dictionary":"{AGENT_SDK_DICTIONARY_ID}"' in head["Metadata"]["s3es-manifest"]

    async with S3EventStore(bucket, "a", session=s3_server.session(), **options) as reader:
        read = await reader.get_turns(thread)
        assert reader.requests.snapshot() == {"GetObject": 3, "ListObjectsV2": 1}
    assert [[e.to_json() for e in t.events] for t in read] == [
        [e.to_json() for e in t.events] for t in turns
    ]
    # What `zstd -dc -D s3_eventstore/dictionaries/<id>.zdict OBJECT` does:
    dictionary = shipped_dictionary(AGENT_SDK_DICTIONARY_ID)
    assert dictionary is not None
    body = backdoor.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    payload = zstandard.ZstdDecompressor(dict_data=dictionary.zstd_dict).decompress(body)
    assert payload == b"".join(e.to_json() + b"\n" for e in turns[0].events)
