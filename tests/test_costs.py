"""The storage cost model: per-object minimums and Glacier overheads, priced exactly."""

from __future__ import annotations

import pytest

from s3_eventstore.ops.costs import GB, KB, STORAGE_CLASSES, SizeTally, estimate_costs


def _by_class(tally: SizeTally) -> dict[str, tuple[int, int, float, float]]:
    estimate = estimate_costs(tally)
    return {
        c.storage_class: (
            c.billable_bytes,
            c.standard_overhead_bytes,
            c.storage_usd_month,
            c.transition_usd,
        )
        for c in estimate.classes
    }


def test_list_prices_are_the_documented_ones() -> None:
    assert [(p.name, p.gb_month, p.transition_per_1000) for p in STORAGE_CLASSES] == [
        ("STANDARD", 0.023, 0.0),
        ("STANDARD_IA", 0.0125, 0.01),
        ("GLACIER_IR", 0.004, 0.02),
        ("GLACIER", 0.0036, 0.03),
        ("DEEP_ARCHIVE", 0.00099, 0.05),
    ]


def test_small_objects_are_billed_at_their_minimums() -> None:
    tally = SizeTally().extend([4 * KB] * 1000)  # 1000 turn objects of 4 KiB
    costs = _by_class(tally)
    assert costs["STANDARD"][:2] == (4000 * KB, 0)
    assert costs["STANDARD"][2] == pytest.approx(4000 * KB / GB * 0.023)
    assert costs["STANDARD_IA"][0] == 1000 * 128 * KB  # 32x the data
    assert costs["STANDARD_IA"][2] == pytest.approx(128_000 * KB / GB * 0.0125)
    assert costs["GLACIER_IR"][0] == 1000 * 128 * KB
    assert costs["GLACIER"][:2] == (1000 * (4 + 32) * KB, 1000 * 8 * KB)
    assert costs["GLACIER"][2] == pytest.approx(36_000 * KB / GB * 0.0036 + 8000 * KB / GB * 0.023)
    assert costs["DEEP_ARCHIVE"][2] == pytest.approx(
        36_000 * KB / GB * 0.00099 + 8000 * KB / GB * 0.023
    )
    # Small turn objects cost *more* in IA than in STANDARD: the point of the model.
    assert costs["STANDARD_IA"][2] > costs["STANDARD"][2]
    assert [costs[name][3] for name in costs] == pytest.approx([0, 0.01, 0.02, 0.03, 0.05])


def test_large_objects_are_billed_by_size() -> None:
    tally = SizeTally().extend([GB, 200 * KB])
    costs = _by_class(tally)
    assert costs["STANDARD_IA"][0] == GB + 200 * KB
    assert costs["STANDARD"][0] == GB + 200 * KB


def test_request_costs() -> None:
    estimate = estimate_costs(SizeTally().extend([1] * 2000))
    assert estimate.put_usd == pytest.approx(0.01)
    assert estimate.get_usd == pytest.approx(0.0008)
    assert estimate.to_dict()["objects"] == 2000


def test_empty_tally() -> None:
    estimate = estimate_costs(SizeTally())
    assert all(c.storage_usd_month == 0 and c.billable_bytes == 0 for c in estimate.classes)


def test_only_class_minimums_are_tallied() -> None:
    tally = SizeTally().extend([10])
    assert tally.billed_bytes_at_least(128 * KB) == 128 * KB
    assert tally.billed_bytes_at_least(0) == 10
    with pytest.raises(ValueError, match="no tally kept for a 4096-byte minimum"):
        tally.billed_bytes_at_least(4096)
