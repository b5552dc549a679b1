"""Framework adapters: one archive behind every Python agent framework.

Each adapter lives in its own module and needs its framework (an optional extra), so
nothing is imported here. See docs/ADAPTERS.md for the mapping they share.

* :mod:`s3_eventstore.adapters.openai_agents` — ``EventStoreSession`` (``[openai-agents]``)
* :mod:`s3_eventstore.adapters.strands` — ``EventStoreSessionManager`` (``[strands]``)
* :mod:`s3_eventstore.adapters.pydantic_ai` — ``save_run``/``load_history`` (``[pydantic-ai]``)
* :mod:`s3_eventstore.adapters.mapping` — the mapping and retractions (no dependency)
* :mod:`s3_eventstore.adapters.journal` — one thread: commit a batch, read it back
"""
