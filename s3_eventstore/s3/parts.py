"""What the maintenance tools need of a store: its key layout, its bucket and its read path.

:mod:`~s3_eventstore.s3.compaction` and :mod:`~s3_eventstore.s3.verify` work on these
parts through their public methods, never on the store's insides; ``S3EventStore``
satisfies :class:`StoreParts`, and so can a test double. Typing them against this
protocol rather than the facade keeps the facade the only module that imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from s3_eventstore.format.keys import KeyLayout
    from s3_eventstore.s3.bucket import Bucket
    from s3_eventstore.s3.reader import ThreadReader

__all__ = ["StoreParts"]


class StoreParts(Protocol):
    """The parts of an S3 store the maintenance tools use."""

    @property
    def layout(self) -> KeyLayout:
        """The store's key layout."""
        ...

    @property
    def objects(self) -> Bucket:
        """The bucket seam."""
        ...

    @property
    def reader(self) -> ThreadReader:
        """The read path (listing, fetching, verifying, caches)."""
        ...
