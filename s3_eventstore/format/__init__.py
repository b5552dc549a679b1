"""The object format (docs/FORMAT.md) as pure functions over bytes: no I/O, no client.

One module per section of the spec:

- :mod:`~s3_eventstore.format.keys`: the key layout (turns, segments, dictionaries);
- :mod:`~s3_eventstore.format.manifest`: the turn manifest and the format constants;
- :mod:`~s3_eventstore.format.turn`: turn objects (JSON lines, zstd, verification);
- :mod:`~s3_eventstore.format.stream`: streamed turn objects (header, trailer, encoder);
- :mod:`~s3_eventstore.format.segment`: segments (many turns and their index);
- :mod:`~s3_eventstore.format.dictionary`: trained zstd dictionaries, encoding side.
"""
