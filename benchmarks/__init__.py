"""Benchmarks of s3-eventstore: what users pay for, measured side by side in one run.

``python -m benchmarks`` (full, under 10 minutes on 2 cores) or ``--quick`` (smoke, CI).
One module per measurement; each exposes ``async def run(ctx) -> dict`` returning its
figures (plain JSON-ready values). ``report`` turns them into a table, JSON and targets.
See docs/BENCHMARKS.md for the figures of a full run and how to read them.
"""
