"""What an archive costs to keep in S3: a storage and request price model, no I/O.

Turn objects are small (a few KB each), and S3 bills small objects in ways that dominate
the bill once they move out of STANDARD: STANDARD_IA and GLACIER_IR bill every object
as at least 128 KiB, GLACIER and DEEP_ARCHIVE add 40 KiB of index per object (8 KiB of
it at the STANDARD rate). The model therefore needs the size of each object, not only
the total; :class:`SizeTally` keeps exactly the sums it needs while objects stream by.

Prices are AWS list prices for us-east-1 (see :data:`STORAGE_CLASSES`, ``PUT_PER_1000``,
``GET_PER_1000``); other regions and negotiated rates differ. Storage is billed per
GB-month where AWS's "GB" is 2**30 bytes. Retrieval fees (IA, Glacier) and the minimum
storage durations (30, 90, 90, 180 days) are not modelled: they depend on how the archive
is read and deleted, not on what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "GB",
    "GET_PER_1000",
    "KB",
    "PUT_PER_1000",
    "STORAGE_CLASSES",
    "USD_DECIMALS",
    "ClassCost",
    "CostEstimate",
    "SizeTally",
    "StorageClassPrice",
    "estimate_costs",
    "round_usd",
]

KB: Final = 1024
"""AWS's KB in storage billing."""
GB: Final = 1024**3
"""AWS's GB in storage billing (GB-month)."""
PUT_PER_1000: Final = 0.005
"""USD per 1000 PUT, COPY, POST, LIST requests to STANDARD (us-east-1)."""
GET_PER_1000: Final = 0.0004
"""USD per 1000 GET, SELECT and other read requests to STANDARD (us-east-1)."""
STANDARD_GB_MONTH: Final = 0.023
"""USD per GB-month in STANDARD (first 50 TB, us-east-1): also the rate of archive overhead."""


@dataclass(frozen=True, slots=True)
class StorageClassPrice:
    """How one storage class bills an object (us-east-1 list prices)."""

    name: str
    """The ``StorageClass`` value S3 uses."""
    gb_month: float
    """USD per GB-month of billable bytes."""
    min_object_bytes: int = 0
    """Every object is billed as at least this many bytes (128 KiB for IA and Glacier IR)."""
    archive_overhead_bytes: int = 0
    """Index bytes added per object, billed at this class's rate (32 KiB for Glacier)."""
    standard_overhead_bytes: int = 0
    """Metadata bytes added per object, billed at the STANDARD rate (8 KiB for Glacier)."""
    transition_per_1000: float = 0.0
    """USD per 1000 lifecycle transitions into this class (one per object, once)."""


STORAGE_CLASSES: Final[tuple[StorageClassPrice, ...]] = (
    StorageClassPrice("STANDARD", STANDARD_GB_MONTH),
    StorageClassPrice("STANDARD_IA", 0.0125, min_object_bytes=128 * KB, transition_per_1000=0.01),
    StorageClassPrice("GLACIER_IR", 0.004, min_object_bytes=128 * KB, transition_per_1000=0.02),
    StorageClassPrice(
        "GLACIER",
        0.0036,
        archive_overhead_bytes=32 * KB,
        standard_overhead_bytes=8 * KB,
        transition_per_1000=0.03,
    ),
    StorageClassPrice(
        "DEEP_ARCHIVE",
        0.00099,
        archive_overhead_bytes=32 * KB,
        standard_overhead_bytes=8 * KB,
        transition_per_1000=0.05,
    ),
)
"""The classes an archive of turn objects can live in, cheapest access first."""
_MINIMUMS: Final = frozenset(p.min_object_bytes for p in STORAGE_CLASSES if p.min_object_bytes)


@dataclass(slots=True)
class SizeTally:
    """Running sums over object sizes: everything the cost model needs, in O(1) memory."""

    objects: int = 0
    """Objects seen."""
    bytes: int = 0
    """Their total stored size."""
    _at_least: dict[int, int] = field(default_factory=dict)
    """For each distinct ``min_object_bytes`` > 0: sum of ``max(size, minimum)``."""

    def add(self, size: int) -> None:
        """Count one object of ``size`` stored bytes."""
        self.objects += 1
        self.bytes += size
        for minimum in _MINIMUMS:
            self._at_least[minimum] = self._at_least.get(minimum, 0) + max(size, minimum)

    def extend(self, sizes: Iterable[int]) -> SizeTally:
        """Count many objects; returns ``self`` for chaining."""
        for size in sizes:
            self.add(size)
        return self

    def billed_bytes_at_least(self, minimum: int) -> int:
        """Sum of ``max(size, minimum)`` over the objects seen.

        Raises:
            ValueError: ``minimum`` is not the minimum of a class in :data:`STORAGE_CLASSES`
                (only those sums are kept).
        """
        if minimum <= 0 or self.objects == 0:
            return self.bytes
        if minimum not in self._at_least:
            raise ValueError(f"no tally kept for a {minimum}-byte minimum")
        return self._at_least[minimum]


@dataclass(frozen=True, slots=True)
class ClassCost:
    """The estimate for keeping the tallied objects in one storage class."""

    storage_class: str
    """S3 storage class."""
    billable_bytes: int
    """Bytes billed at this class's rate (minimums and archive index included)."""
    standard_overhead_bytes: int
    """Bytes billed at the STANDARD rate on top (Glacier metadata)."""
    storage_usd_month: float
    """USD per month to store the objects in this class."""
    transition_usd: float
    """USD, once, to move every object here from STANDARD with lifecycle rules."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "storage_class": self.storage_class,
            "billable_bytes": self.billable_bytes,
            "standard_overhead_bytes": self.standard_overhead_bytes,
            "storage_usd_month": round_usd(self.storage_usd_month),
            "transition_usd": round_usd(self.transition_usd),
        }


USD_DECIMALS: Final = 9
"""Money in JSON is rounded to nano-dollars: a small archive's monthly cost is a few
micro-dollars, and binary floats would otherwise print as ``8.999999999999999e-05``."""


def round_usd(value: float) -> float:
    """``value`` rounded to :data:`USD_DECIMALS` places (as a JSON-ready float)."""
    return round(value, USD_DECIMALS)


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """Storage cost per class plus the request costs of writing and reading the archive."""

    objects: int
    """Objects the estimate is for."""
    stored_bytes: int
    """Their total size."""
    classes: tuple[ClassCost, ...]
    """One entry per storage class, in :data:`STORAGE_CLASSES` order."""
    put_usd: float
    """USD to write the objects (one PutObject each, STANDARD request price)."""
    get_usd: float
    """USD to read every object once from STANDARD (one GetObject each)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "objects": self.objects,
            "stored_bytes": self.stored_bytes,
            "classes": [cost.to_dict() for cost in self.classes],
            "put_usd": round_usd(self.put_usd),
            "get_usd": round_usd(self.get_usd),
            "prices": "AWS list prices, us-east-1; GB = 2**30 bytes",
        }


def estimate_costs(tally: SizeTally) -> CostEstimate:
    """Price the tallied objects in every storage class.

    Small objects are why this takes a tally rather than a byte total: a 4 KB turn
    object costs as much as a 128 KB one in STANDARD_IA, and 40 KB of Glacier index
    is ten times the object.
    """
    classes = []
    for price in STORAGE_CLASSES:
        billable = (
            tally.billed_bytes_at_least(price.min_object_bytes)
            + tally.objects * price.archive_overhead_bytes
        )
        standard_extra = tally.objects * price.standard_overhead_bytes
        monthly = billable / GB * price.gb_month + standard_extra / GB * STANDARD_GB_MONTH
        classes.append(
            ClassCost(
                storage_class=price.name,
                billable_bytes=billable,
                standard_overhead_bytes=standard_extra,
                storage_usd_month=monthly,
                transition_usd=tally.objects / 1000 * price.transition_per_1000,
            )
        )
    return CostEstimate(
        objects=tally.objects,
        stored_bytes=tally.bytes,
        classes=tuple(classes),
        put_usd=tally.objects / 1000 * PUT_PER_1000,
        get_usd=tally.objects / 1000 * GET_PER_1000,
    )
