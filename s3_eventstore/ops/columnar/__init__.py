"""The Parquet tier: ``publish`` writes it, the ``events`` view reads it with the rest.

:mod:`.schema` (columns, rows), :mod:`.log` (the commit log), :mod:`.pending` (turns not
yet published), :mod:`.publish` (the writer), :mod:`.view` (the DuckDB view over both).
Format: docs/FORMAT.md, section 10.
"""
