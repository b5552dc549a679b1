"""Bounded caches of what immutable objects say: turn manifests and segment indexes, keyed
by object key and validated by ETag.

Turn objects are immutable, so a manifest read once stays true for as long as the
object with that ETag exists. The LIST that every read starts with returns each
key's ETag, so a cached manifest is only used when the object listed is the very
one it was read from: a turn deleted and rewritten by another writer is re-read.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s3_eventstore.format.manifest import TurnManifest
    from s3_eventstore.format.segment import SegmentEntry, SegmentIndex

__all__ = ["ManifestCache", "SegmentIndexCache"]


class ManifestCache:
    """LRU of ``key -> (etag, manifest)``."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str, TurnManifest]] = OrderedDict()

    def get(self, key: str, etag: str) -> TurnManifest | None:
        """The manifest of ``key`` if cached for exactly this ``etag``."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != etag:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, etag: str, manifest: TurnManifest) -> None:
        """Remember a manifest, evicting the least recently used beyond ``max_entries``."""
        if self.max_entries <= 0:
            return
        self._entries[key] = (etag, manifest)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard_prefix(self, prefix: str) -> None:
        """Forget every key under ``prefix`` (a cleared thread)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class SegmentIndexCache:
    """LRU of ``segment key -> (etag, index)``.

    Segments are immutable, so an index read once stays true for as long as the object
    with that ETag exists; the LIST every thread read starts with gives the ETag to check.
    ``get_turn`` also looks indexes up by thread folder, to serve a compacted turn with a
    single ranged GET.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str, SegmentIndex]] = OrderedDict()

    def get(self, key: str, etag: str) -> SegmentIndex | None:
        """The index of ``key`` if cached for exactly this ``etag``."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != etag:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def get_any(self, key: str) -> tuple[str, SegmentIndex] | None:
        """The cached ETag and index of ``key``, whatever the ETag (check it when reading)."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, etag: str, index: SegmentIndex) -> None:
        """Remember an index, evicting the least recently used beyond ``max_entries``."""
        if self.max_entries <= 0:
            return
        self._entries[key] = (etag, index)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def find_turn(
        self, folder: str, turn: int
    ) -> tuple[str, str, SegmentIndex, SegmentEntry] | None:
        """A cached segment of the thread in ``folder`` holding ``turn``, lowest key first."""
        for key in sorted(k for k in self._entries if k.startswith(folder)):
            etag, index = self._entries[key]
            entry = index.entry(turn)
            if entry is not None:
                return key, etag, index, entry
        return None

    def discard(self, key: str) -> None:
        """Forget one segment (it was deleted or replaced)."""
        self._entries.pop(key, None)

    def discard_prefix(self, prefix: str) -> None:
        """Forget every segment under ``prefix`` (a cleared thread)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
