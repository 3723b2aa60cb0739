"""Query shapes: fields and operators kept, every value replaced by its type, bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from bson import Int64, ObjectId

from snipix.db.monitoring.query_shape import SHAPE_MAX_CHARS, query_shape
from tests.db.monitoring.helpers import SECRET


def test_query_shape_keeps_fields_and_operators_and_drops_every_value() -> None:
    """An operator reading a slow-query line sees which fields and operators, not whose data."""
    command = {
        "find": "projects",
        "filter": {
            "owner": SECRET,
            "_id": ObjectId(),
            "deletedAt": None,
            "updatedAt": {"$gte": datetime(2026, 1, 1, tzinfo=UTC)},
            "$or": [{"archived": False}, {"size": {"$gt": Int64(5)}}],
            "tags": {"$in": [SECRET, "b", "c", "d", "e"]},
            "blob": b"\x00secret",
            "score": 1.5,
        },
        "sort": {"updatedAt": -1},
        "limit": 20,
        "lsid": {"id": "session"},
        "$db": "snipix",
        "$clusterTime": {"clusterTime": 1},
    }
    shape = query_shape(command, "find")
    assert json.loads(shape) == {
        "filter": {
            "owner": "<string>",
            "_id": "<objectId>",
            "deletedAt": "<null>",
            "updatedAt": {"$gte": "<date>"},
            "$or": [{"archived": "<bool>"}, {"size": {"$gt": "<long>"}}],
            "tags": {"$in": ["<string>", "<string>", "<string>", "<+2 more>"]},
            "blob": "<binData>",
            "score": "<double>",
        },
        "sort": {"updatedAt": "<int>"},
        "limit": "<int>",
    }
    assert SECRET not in shape
    assert "projects" not in shape, "the collection is its own field of the line"


class CountingDocument(dict[str, Any]):
    """A document that counts how many of its fields were visited."""

    visited = 0

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        for item in super().items():
            CountingDocument.visited += 1
            yield item


def test_long_and_deep_shapes_are_cut() -> None:
    """A 1 MB insert or a deeply nested document still gives a short line, cheaply."""
    wide = CountingDocument({f"field{i}": SECRET for i in range(100_000)})
    shape = query_shape({"insert": "timelines", "documents": [wide]}, "insert")
    assert len(shape) == SHAPE_MAX_CHARS
    assert shape.endswith("...")
    assert CountingDocument.visited < 1_000, "the walk stopped; it did not shape 100,000 fields"
    assert SECRET not in shape

    deep: dict[str, Any] = {"v": SECRET}
    for _ in range(30):
        deep = {"a": deep}
    shape = query_shape({"find": "x", "filter": deep}, "find")
    assert "<...>" in shape
    assert SECRET not in shape
