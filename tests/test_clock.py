"""Times as clients receive them: one fixed shape, so strings order like the times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from snipix.clock import iso_instant, to_millisecond
from snipix.wire.models import Instant, WireModel

MOMENTS = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
)


def test_a_whole_second_keeps_its_fraction() -> None:
    """Pydantic's own form writes `...:40Z` here, which sorts after `...:40.026000Z`."""
    whole = datetime(2026, 12, 4, 19, 45, 40, tzinfo=UTC)
    later = whole + timedelta(milliseconds=26)
    assert iso_instant(whole) == "2026-12-04T19:45:40.000000Z"
    assert iso_instant(whole) < iso_instant(later)


def test_other_zones_and_naive_times_are_written_in_utc() -> None:
    plus_two = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert iso_instant(plus_two) == "2026-01-01T00:00:00.000000Z"
    assert iso_instant(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000000Z"


@given(first=MOMENTS, second=MOMENTS)
def test_strings_order_like_the_times(first: datetime, second: datetime) -> None:
    first, second = to_millisecond(first), to_millisecond(second)
    assert (iso_instant(first) < iso_instant(second)) == (first < second)
    assert datetime.fromisoformat(iso_instant(first)) == first


class Stamped(WireModel):
    updated_at: Instant


def test_a_model_sends_the_fixed_shape_and_reads_it_back() -> None:
    stamped = Stamped(updated_at=datetime(2026, 12, 4, 19, 45, 40, tzinfo=UTC))
    body = stamped.model_dump_json()
    assert body == '{"updatedAt":"2026-12-04T19:45:40.000000Z"}'
    assert Stamped.model_validate_json(body) == stamped
    schema = Stamped.model_json_schema(mode="serialization")
    assert schema["properties"]["updatedAt"]["format"] == "date-time"
