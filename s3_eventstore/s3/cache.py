"""A bounded cache of turn manifests, keyed by object key and validated by ETag.

Turn objects are immutable, so a manifest read once stays true for as long as the
object with that ETag exists. The LIST that every read starts with returns each
key's ETag, so a cached manifest is only used when the object listed is the very
one it was read from: a turn deleted and rewritten by another writer is re-read.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s3_eventstore.codec import TurnManifest

__all__ = ["ManifestCache"]


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
