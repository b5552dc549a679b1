"""zstd dictionaries shipped with the package, one file per dictionary: ``{id}.zdict``.

``id`` is the first 32 hex digits of the file's SHA-256, as for dictionaries stored in a
bucket (see :mod:`s3_eventstore.format.dictionary`). A manifest names the dictionary its body
needs by that id, so a shipped dictionary is never changed or removed: objects written
with it must stay readable by every later version. A new dictionary is a new file.
``python -m benchmarks.default_dictionary`` trains the agent-sdk envelope dictionary.
"""
