"""Issue 13, item 4: timestamps as the `time` crate's Rfc3339 parser reads them, UUIDs as
the `uuid` crate reads them; everything else refused with InvalidEnvelopeError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from s3_eventstore import AgentEventEnvelope, InvalidEnvelopeError
from s3_eventstore.timestamps import MAX_TIMESTAMP_CHARS, parse_timestamp

EVENT_ID = "0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10"


def envelope(**fields: Any) -> AgentEventEnvelope:
    data = {"event_id": EVENT_ID, "sequence": 0, "timestamp": "2025-06-01T12:00:00Z", "type": "x"}
    return AgentEventEnvelope.from_dict({**data, **fields})


ACCEPTED_TIMESTAMPS = [
    ("2025-06-01T12:00:00Z", 1748779200_000000000),
    ("2025-06-01t12:00:00z", 1748779200_000000000),  # 'T' and 'Z' in either case
    ("2025-06-01 12:00:00Z", 1748779200_000000000),  # any separator since time 0.3.37
    ("2025-06-01_12:00:00Z", 1748779200_000000000),
    ("2025-06-01\x0012:00:00Z", 1748779200_000000000),
    ("2025-06-01T12:00:00.5Z", 1748779200_500000000),
    ("2025-06-01T12:00:00.539384757Z", 1748779200_539384757),
    ("2025-06-01T12:00:00.5393847579999Z", 1748779200_539384757),  # digits past 9 ignored
    ("2025-06-01T12:00:00." + "1" * 38 + "Z", 1748779200_111111111),
    ("2025-06-01T12:00:00.000-03:00", 1748790000_000000000),
    ("2025-06-01T12:00:00+23:59", 1748779200_000000000 - (23 * 3600 + 59 * 60) * 10**9),
    ("2025-06-01T12:00:00-00:00", 1748779200_000000000),
    ("2016-12-31T23:59:60Z", 1483228799_999999999),  # a leap second: 59.999999999
    ("2016-12-31T23:59:60.123Z", 1483228799_999999999),  # its fraction is ignored
    ("2017-01-01T00:59:60+01:00", 1483228799_999999999),  # 23:59:60 UTC
    ("2016-06-30T23:59:60Z", 1467331199_999999999),
    ("2024-02-29T00:00:00Z", 1709164800_000000000),
    ("0000-01-01T00:00:00Z", -62167219200_000000000),  # year 0000 (a leap year)
    ("0000-02-29T00:00:00Z", -62167219200_000000000 + 59 * 86400 * 10**9),
    ("9999-12-31T23:59:59.999999999-23:59", 253402300799_999999999 + 86340 * 10**9),
]


@pytest.mark.parametrize(("text", "nanos"), ACCEPTED_TIMESTAMPS)
def test_timestamps_the_time_crate_accepts(text: str, nanos: int) -> None:
    event = envelope(timestamp=text)
    assert event.timestamp == text  # kept verbatim
    assert event.timestamp_ns == nanos
    assert AgentEventEnvelope.from_json(event.to_json()).timestamp_ns == nanos


@pytest.mark.parametrize(
    "text",
    [
        "2025-06-01T12:00:00",  # the offset is required
        "2025-06-01T12:00Z",  # so are seconds
        "2025-06-01T12:00:00.Z",  # a fraction needs a digit
        "2025-06-01T12:00:00,5Z",
        "2025-06-01T12:00:00+0300",  # the offset needs its colon
        "2025-06-01T12:00:00+03",
        "2025-06-01T12:00:00+24:00",  # offset hour <= 23
        "2025-06-01T12:00:00+03:60",  # offset minute <= 59
        "2025-06-01T12:00:00 Z",
        "2025-06-01T12:00:00ZZ",  # nothing may follow
        "2025-06-01T12:00:00Z ",
        " 2025-06-01T12:00:00Z",
        "25-06-01T12:00:00Z",  # four year digits
        "+2025-06-01T12:00:00Z",
        "12025-06-01T12:00:00Z",
        "2025-6-01T12:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-00-01T00:00:00Z",
        "2025-02-29T00:00:00Z",  # not a leap year
        "1900-02-29T00:00:00Z",
        "2025-04-31T00:00:00Z",
        "2025-06-00T00:00:00Z",
        "2025-06-01T24:00:00Z",
        "2025-06-01T12:60:00Z",
        "2025-06-01T12:00:61Z",
        "2025-06-30T12:00:60Z",  # a leap second not at 23:59:60 UTC
        "2016-12-31T23:59:60+01:00",  # 22:59:60 UTC
        "2016-12-30T23:59:60Z",  # not the month's last day
        "2025-06-01T12:00:00.٣Z",  # only ASCII digits
        "\uff12\uff10\uff12\uff15-06-01T12:00:00Z",  # fullwidth digits
        "2025-06-01é12:00:00Z",  # the separator is one byte
        "2025-06-01T12:00:00\u221203:00",  # U+2212 is not a sign
        "2025-06-01T12:00:00." + "1" * 44 + "Z",  # over MAX_TIMESTAMP_CHARS
        "2025-06-01T12:00:00." + "1" * 1000 + "Z",  # the input
        "",
    ],
)
def test_timestamps_refused(text: str) -> None:
    with pytest.raises(InvalidEnvelopeError, match="is not RFC 3339"):
        envelope(timestamp=text)
    with pytest.raises(InvalidEnvelopeError, match="is not RFC 3339"):
        AgentEventEnvelope.create("x", sequence=0, timestamp=text)


def test_timestamp_length_limit_is_what_the_manifest_allows() -> None:
    longest = "2025-06-01T12:00:00." + "1" * 38 + "-03:00"
    assert len(longest) == MAX_TIMESTAMP_CHARS
    envelope(timestamp=longest)
    with pytest.raises(InvalidEnvelopeError, match=f"at most {MAX_TIMESTAMP_CHARS}"):
        envelope(timestamp=longest[:20] + "1" + longest[20:])


def test_datetime_accessor() -> None:
    assert envelope(timestamp="2016-12-31T23:59:60Z").datetime == datetime(
        2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC
    )
    assert envelope(timestamp="2025-01-10T07:00:02.123-03:00").datetime == datetime(
        2025, 1, 10, 7, 0, 2, 123000, tzinfo=timezone(-timedelta(hours=3))
    )
    year_zero = envelope(timestamp="0000-01-01T00:00:00Z")
    with pytest.raises(InvalidEnvelopeError, match="no Python datetime"):
        _ = year_zero.datetime


def test_parse_timestamp_raises_value_error_only() -> None:
    with pytest.raises(ValueError, match=r"not a calendar date"):
        parse_timestamp("2025-02-30T00:00:00Z")


ACCEPTED_UUIDS = [
    "0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10",
    "0B7C9D2E-5B8E-4A51-9A55-6A9D1C1F3E10",
    "0b7c9d2e5b8e4a519a556a9d1c1f3e10",  # simple
    "{0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10}",  # braced
    "urn:uuid:0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10",
    "00000000-0000-0000-0000-000000000000",  # nil
    "ffffffff-ffff-ffff-ffff-ffffffffffff",  # max
    "0b7c9d2e-5b8e-0a51-0a55-6a9d1c1f3e10",  # any version and variant bits
]


@pytest.mark.parametrize("text", ACCEPTED_UUIDS)
def test_uuids_the_uuid_crate_accepts(text: str) -> None:
    event = envelope(event_id=text)
    assert str(event.event_id).replace("-", "") in text.lower().replace("-", "")


@pytest.mark.parametrize(
    "text",
    [
        "nope",
        "",
        "0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e1",  # one digit short
        "0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e100",
        "0b7c9d2e5b8e-4a51-9a55-6a9d1c1f3e10",  # hyphens in the wrong places
        "0b7c9d2e-5b8e4a51-9a55-6a9d1c1f3e10a",
        "0b7c-9d2e-5b8e-4a51-9a55-6a9d1c1f3e10",
        "{0b7c9d2e5b8e4a519a556a9d1c1f3e10}",  # braces only around the hyphenated form
        "urn:uuid:0b7c9d2e5b8e4a519a556a9d1c1f3e10",
        "URN:UUID:0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10",  # the prefix is lowercase
        "uuid:0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10",
        "{0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10",
        " 0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10",
        "0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10\n",
        "0g7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10",
        "\uff10b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10",  # fullwidth digit
        "0b7c9d2e-5b8e-4a51-9a55-6a9d1c1f3e10" * 1000,
    ],
)
def test_uuids_refused(text: str) -> None:
    with pytest.raises(InvalidEnvelopeError, match="is not a UUID"):
        envelope(event_id=text)
