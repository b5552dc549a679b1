"""RFC 3339 timestamps and UUIDs exactly as agent-sdk's serde reads them.

agent-sdk's envelope uses ``time::serde::rfc3339`` (the ``time`` crate, 0.3.37 or later)
and ``uuid::Uuid``'s serde support. This module accepts what those parsers accept and
refuses the rest, so that an envelope this library archives is one agent-sdk can read.

``time``'s ``Rfc3339`` parser (``OffsetDateTime::parse``):

* ``YYYY-MM-DD``: exactly four year digits (0000-9999), a real calendar date
  (proleptic Gregorian: year 0000 is a leap year);
* then **any one ASCII character** as the separator (``T``, ``t``, a space ... since
  time 0.3.37, which reads RFC 3339's "(say) a space character" liberally);
* ``HH:MM:SS``, hour 00-23, minute 00-59, second 00-59, or 60 for a leap second: only
  when the instant is 23:59:60 UTC on the last day of a month, and then read as
  ``23:59:59.999999999`` whatever fraction follows;
* an optional fraction: ``.`` and one or more ASCII digits (only nine count);
* ``Z``, ``z`` or an offset ``+HH:MM``/``-HH:MM`` (hour 00-23, minute 00-59).

This library caps the whole timestamp at :data:`MAX_TIMESTAMP_CHARS` characters: a turn
object's manifest carries the first and last timestamp verbatim in S3's 2 KB of user
metadata, so a thousand fraction digits would make the turn impossible to finish.

``uuid``'s parser (``Uuid::from_str``, used by its serde ``Deserialize``) takes 32 hex
digits, the hyphenated 8-4-4-4-12 form, that form in braces, or ``urn:uuid:`` and that
form; hex digits in either case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final

__all__ = ["MAX_TIMESTAMP_CHARS", "Timestamp", "is_uuid", "parse_timestamp"]

MAX_TIMESTAMP_CHARS: Final = 64
"""Longest timestamp accepted (38 fraction digits with an offset): see the module doc."""

_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[\x00-\x7f]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_HYPHENATED = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID = re.compile(f"{_HYPHENATED}|\\{{{_HYPHENATED}\\}}|urn:uuid:{_HYPHENATED}|[0-9a-fA-F]{{32}}")
_NANOS_PER_SECOND: Final = 1_000_000_000


def is_uuid(text: str) -> bool:
    """True when the ``uuid`` crate parses ``text`` (see the module doc)."""
    return _UUID.fullmatch(text) is not None


def _is_leap_year(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap_year(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    day_of_era = days - era * 146097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    mp = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return year_of_era + era * 400 + (month <= 2), month, day


@dataclass(frozen=True, slots=True)
class Timestamp:
    """A parsed timestamp, as ``time``'s ``OffsetDateTime`` holds it."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    """0-59: a leap second reads as 59 with 999,999,999 nanoseconds, as in ``time``."""
    nanosecond: int
    offset_seconds: int
    """The UTC offset in seconds (``Z`` and ``-00:00`` are 0)."""

    @property
    def unix_nanos(self) -> int:
        """Nanoseconds since the Unix epoch (exact, for every year 0000-9999)."""
        days = _days_from_civil(self.year, self.month, self.day)
        seconds = days * 86400 + self.hour * 3600 + self.minute * 60 + self.second
        return (seconds - self.offset_seconds) * _NANOS_PER_SECOND + self.nanosecond

    def to_datetime(self) -> datetime:
        """An aware ``datetime`` in the timestamp's own offset, truncated to microseconds.

        Raises:
            ValueError: year 0000, which ``datetime`` cannot hold.
        """
        return datetime(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanosecond // 1000,
            timezone(timedelta(seconds=self.offset_seconds)),
        )


def parse_timestamp(text: str) -> Timestamp:
    """Parse an RFC 3339 timestamp the way agent-sdk does (see the module doc).

    Raises:
        ValueError: ``text`` is not such a timestamp, or is longer than
            :data:`MAX_TIMESTAMP_CHARS`.
    """
    if len(text) > MAX_TIMESTAMP_CHARS:
        raise ValueError(
            f"it is {len(text)} characters long; at most {MAX_TIMESTAMP_CHARS} are accepted "
            "(a turn's manifest carries timestamps in S3's 2 KB of metadata)"
        )
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError("expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)")
    year, month, day, hour, minute, second = (int(group) for group in match.groups()[:6])
    fraction, sign, offset_hour, offset_minute = match.groups()[6:]
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        raise ValueError(f"{year:04d}-{month:02d}-{day:02d} is not a calendar date")
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError(f"{hour:02d}:{minute:02d}:{second:02d} is not a time of day")
    offset = 0
    if sign is not None:
        if int(offset_hour) > 23 or int(offset_minute) > 59:
            raise ValueError(f"offset {sign}{offset_hour}:{offset_minute} is out of range")
        offset = (int(offset_hour) * 3600 + int(offset_minute) * 60) * (-1 if sign == "-" else 1)
    nanos = int((fraction or "0")[:9].ljust(9, "0"))
    if second == 60:
        second, nanos = 59, _NANOS_PER_SECOND - 1
        utc = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + 59
        utc -= offset
        utc_year, utc_month, utc_day = _civil_from_days(utc // 86400)
        if utc % 86400 != 86399 or utc_day != _days_in_month(utc_year, utc_month):
            raise ValueError(
                "second 60 (a leap second) is only valid at 23:59:60 UTC on a month's last day"
            )
    return Timestamp(year, month, day, hour, minute, second, nanos, offset)
