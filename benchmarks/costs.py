"""What 1 million turns a day cost per month on AWS S3, by arithmetic from measured figures.

The library's own model (``s3_eventstore.ops.costs``, when present) prices the objects the
``requests`` measurement wrote — their real sizes, one by one — and the result is scaled
linearly to a month of 1 M turns a day (every term of the model is linear in the object
count). The same arithmetic is also done here from the mean object size, with the prices
stated in :data:`PRICES`, as a cross-check and as the fallback when the library has no
cost model. us-east-1 list prices; GB = 2**30 bytes; a month is 30 days. LIST requests
(one per thread read) are priced here: the library's model has no LIST term.
"""

from __future__ import annotations

from typing import Any, Final

from benchmarks.harness import Context, rounded

GIB: Final = 1 << 30
KIB: Final = 1 << 10
TURNS_PER_DAY: Final = 1_000_000
DAYS_PER_MONTH: Final = 30

PRICES: Final[dict[str, Any]] = {
    "region": "us-east-1 (list prices)",
    "storage_per_gb_month": {
        "STANDARD": 0.023,
        "STANDARD_IA": 0.0125,
        "GLACIER_IR": 0.004,
        "GLACIER": 0.0036,
        "DEEP_ARCHIVE": 0.00099,
    },
    "put_per_1000": 0.005,
    "get_per_1000": 0.0004,
    "list_per_1000": 0.005,
    "transition_per_1000": {
        "STANDARD_IA": 0.01,
        "GLACIER_IR": 0.02,
        "GLACIER": 0.03,
        "DEEP_ARCHIVE": 0.05,
    },
    "minimum_billable_object_bytes": {"STANDARD_IA": 128 * KIB, "GLACIER_IR": 128 * KIB},
    "archive_overhead_bytes": {"at_standard_price": 8 * KIB, "at_archive_price": 32 * KIB},
}


def monthly_costs(
    *,
    puts_per_turn: float,
    gets_per_turn_read: float,
    lists_per_turn_read: float,
    object_bytes: float,
) -> dict[str, Any]:
    """Dollars per month for ``TURNS_PER_DAY`` turns a day, from per-turn figures."""
    turns = TURNS_PER_DAY * DAYS_PER_MONTH
    storage = PRICES["storage_per_gb_month"]
    data_gib = turns * object_bytes / GIB
    classes: dict[str, dict[str, float]] = {}
    for name, price in storage.items():
        minimum = PRICES["minimum_billable_object_bytes"].get(name, 0)
        billable = turns * max(object_bytes, minimum) / GIB
        dollars = billable * price
        if name in ("GLACIER", "DEEP_ARCHIVE"):
            overhead = PRICES["archive_overhead_bytes"]
            dollars += turns * overhead["at_standard_price"] / GIB * storage["STANDARD"]
            dollars += turns * overhead["at_archive_price"] / GIB * price
            billable += turns * (overhead["at_standard_price"] + overhead["at_archive_price"]) / GIB
        transition = PRICES["transition_per_1000"].get(name, 0.0) * turns / 1000
        classes[name] = {
            "billable_gib": rounded(billable, 1),
            "storage_usd_per_month_kept": rounded(dollars, 2),
            "transition_usd_once": rounded(transition, 2),
        }
    put_usd = puts_per_turn * turns / 1000 * PRICES["put_per_1000"]
    get_usd = gets_per_turn_read * turns / 1000 * PRICES["get_per_1000"]
    list_usd = lists_per_turn_read * turns / 1000 * PRICES["list_per_1000"]
    return {
        "turns_per_month": turns,
        "object_bytes": rounded(object_bytes, 1),
        "data_gib_per_month": rounded(data_gib, 2),
        "put_usd": rounded(put_usd, 2),
        "read_each_turn_once_get_usd": rounded(get_usd, 2),
        "read_each_turn_once_list_usd": rounded(list_usd, 2),
        "standard_first_month_accumulating_usd": rounded(data_gib / 2 * storage["STANDARD"], 2),
        "standard_after_12_months_accumulating_usd_per_month": rounded(
            12 * data_gib * storage["STANDARD"], 2
        ),
        "storage_classes": classes,
    }


def library_costs(sizes: list[int], turns_per_month: int) -> dict[str, Any] | None:
    """The month priced by ``s3_eventstore.ops.costs`` (``None`` if the library has no model)."""
    try:
        from s3_eventstore.ops.costs import SizeTally, estimate_costs
    except ImportError:
        return None
    estimate = estimate_costs(SizeTally().extend(sizes))
    scale = turns_per_month / estimate.objects
    return {
        "put_usd": rounded(estimate.put_usd * scale, 2),
        "read_each_turn_once_get_usd": rounded(estimate.get_usd * scale, 2),
        "storage_classes": {
            cost.storage_class: {
                "billable_gib": rounded(
                    (cost.billable_bytes + cost.standard_overhead_bytes) * scale / GIB, 1
                ),
                "storage_usd_per_month_kept": rounded(cost.storage_usd_month * scale, 2),
                "transition_usd_once": rounded(cost.transition_usd * scale, 2),
            }
            for cost in estimate.classes
        },
    }


def _max_relative_difference(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    pairs: list[tuple[float, float]] = [(ours["put_usd"], theirs["put_usd"])]
    pairs.append((ours["read_each_turn_once_get_usd"], theirs["read_each_turn_once_get_usd"]))
    for name, cost in theirs["storage_classes"].items():
        mine = ours["storage_classes"][name]
        pairs.append((mine["storage_usd_per_month_kept"], cost["storage_usd_per_month_kept"]))
        pairs.append((mine["transition_usd_once"], cost["transition_usd_once"]))
    return max(abs(a - b) / b if b else abs(a - b) for a, b in pairs)


async def run(ctx: Context) -> dict[str, Any]:
    shared = ctx.shared
    turns = shared["workload_turns"]
    puts = shared["write_requests"].get("PutObject", 0) / turns
    read = shared["read_requests_get_turns"]
    per_thread = shared["turns_per_thread"]
    turns_per_month = TURNS_PER_DAY * DAYS_PER_MONTH
    arithmetic = monthly_costs(
        puts_per_turn=puts,
        gets_per_turn_read=read.get("GetObject", 0) / per_thread,
        lists_per_turn_read=read.get("ListObjectsV2", 0) / per_thread,
        object_bytes=shared["workload_stored_bytes"] / turns,
    )
    library = library_costs(shared["workload_object_sizes"], turns_per_month)
    per_month = dict(arithmetic)
    if library is not None:
        per_month.update(library)  # the library's figures where it has them
    return {
        "model": "s3_eventstore.ops.costs" if library is not None else "benchmarks.costs",
        "cross_check_max_relative_difference": (
            rounded(_max_relative_difference(arithmetic, library), 4) if library else None
        ),
        "per_month": per_month,
        "arithmetic_here": arithmetic,
        "prices": PRICES,
        "inputs": {
            "puts_per_turn": rounded(puts, 4),
            "gets_per_turn_read": rounded(read.get("GetObject", 0) / per_thread, 4),
            "lists_per_turn_read": rounded(read.get("ListObjectsV2", 0) / per_thread, 4),
            "object_bytes": rounded(shared["workload_stored_bytes"] / turns, 1),
        },
    }
