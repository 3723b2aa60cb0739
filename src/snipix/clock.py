"""The time a service reads as "now", passed in rather than read from the system.

Whether a claim, a lease or a key has expired is a judgement about time; code that takes
its clock as an argument can be shown "ten seconds later" by moving that clock, where code
that reads the system clock itself can only be shown it by waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

type Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The system's time, timezone-aware (UTC): the default clock."""
    return datetime.now(UTC)


def to_millisecond(moment: datetime) -> datetime:
    """`moment` cut to the millisecond, as MongoDB stores it (so a stored time compares
    equal to the one the code kept)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def iso_instant(moment: datetime) -> str:
    """`moment` as ISO 8601 in UTC with `Z` and always six fraction digits.

    One fixed width means two times compare as strings the way they compare as times (a
    time on a whole second would otherwise lose its fraction and sort after a later one),
    and JavaScript's `Date` parses it unambiguously. A naive time is read as UTC, which is
    what the database stores.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def utc_now_ms() -> datetime:
    """The system's time to the millisecond: the "now" a service stores and returns."""
    return to_millisecond(utc_now())
