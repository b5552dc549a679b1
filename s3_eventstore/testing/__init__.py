"""The contract test kit, shipped with the package so that any EventStore can prove itself.

Subclass :class:`EventStoreConformance` in a ``Test*`` class and provide a ``store``
fixture; see ``tests/test_conformance_memory.py`` and ``tests/test_conformance_s3.py``.
"""

from s3_eventstore.testing.conformance import EventStoreConformance
from s3_eventstore.testing.vectors import AgentSdkVectors, find_agent_sdk_fixtures

__all__ = ["AgentSdkVectors", "EventStoreConformance", "find_agent_sdk_fixtures"]
