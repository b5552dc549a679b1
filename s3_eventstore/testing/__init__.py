"""The contract test kit, shipped with the package so that any EventStore can prove itself.

Subclass :class:`EventStoreConformance` in a ``Test*`` class and provide a ``store``
fixture; see ``tests/test_conformance_memory.py`` and ``tests/test_conformance_s3.py``.
The suite needs pytest (``pip install 's3-eventstore[testing]'``); it is imported only
when :class:`EventStoreConformance` is first used, so the vectors and the fault proxy
(``s3_eventstore.testing.faultproxy``) work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from s3_eventstore.testing.vectors import (
    AgentSdkVectors,
    find_agent_sdk_fixtures,
    load_agent_sdk_vectors,
)

if TYPE_CHECKING:
    from s3_eventstore.testing.conformance import EventStoreConformance

__all__ = [
    "AgentSdkVectors",
    "EventStoreConformance",
    "find_agent_sdk_fixtures",
    "load_agent_sdk_vectors",
]


def __getattr__(name: str) -> Any:
    if name == "EventStoreConformance":  # imports pytest: only on use
        try:
            from s3_eventstore.testing.conformance import EventStoreConformance
        except ModuleNotFoundError as err:
            if err.name not in ("pytest", "pytest_asyncio"):
                raise
            raise ModuleNotFoundError(
                f"EventStoreConformance needs {err.name}: pip install 's3-eventstore[testing]'",
                name=err.name,
            ) from err
        return EventStoreConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
