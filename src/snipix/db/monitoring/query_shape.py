"""A command's *shape* for slow-query lines: field names and operators, no values.

Every value is replaced by its BSON type (`{"owner": "<string>"}`), recursively, so no
document content ever reaches a log; the walk is bounded in depth, nodes and characters so
a 1 MB insert costs no more to shape than a small one.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.dbref import DBRef

# Keys the driver adds to every command: bookkeeping, not the query.
_DRIVER_KEYS = frozenset(
    {
        "lsid",
        "$clusterTime",
        "$db",
        "$readPreference",
        "txnNumber",
        "autocommit",
        "startTransaction",
        "readConcern",
        "writeConcern",
        "apiVersion",
        "apiStrict",
        "apiDeprecationErrors",
        "signature",
    }
)
SHAPE_MAX_CHARS = 1_000
_SHAPE_MAX_DEPTH = 12
# Nodes visited before the rest is elided: an insert of a 1 MB timeline stays cheap to shape.
_SHAPE_MAX_NODES = 400
# A list shows the shapes of its first few elements and how many more there were.
_LIST_SHOWN = 3
_ELIDED = "<...>"

_TYPE_NAMES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    # bool before int: bool is an int subclass. Names are MongoDB's $type aliases.
    (bool, "bool"),
    (Int64, "long"),
    (int, "int"),
    (float, "double"),
    (str, "string"),
    (ObjectId, "objectId"),
    (datetime, "date"),
    ((bytes, Binary, uuid.UUID), "binData"),
    ((Decimal128, Decimal), "decimal"),
    ((Regex, re.Pattern), "regex"),
    (Timestamp, "timestamp"),
    (Code, "javascript"),
    (DBRef, "dbPointer"),
    (MinKey, "minKey"),
    (MaxKey, "maxKey"),
)


def _placeholder(value: Any) -> str:
    if value is None:
        return "<null>"
    for kinds, name in _TYPE_NAMES:
        if isinstance(value, kinds):
            return f"<{name}>"
    # An unexpected type: its class name, never its value.
    return f"<{type(value).__name__}>"


class _Budget:
    __slots__ = ("left",)

    def __init__(self, nodes: int) -> None:
        self.left = nodes


def _shape(value: Any, depth: int, budget: _Budget) -> Any:
    budget.left -= 1
    if budget.left < 0 or depth > _SHAPE_MAX_DEPTH:
        return _ELIDED
    if isinstance(value, Mapping):
        # Keys are field names and operators ($gt, $set, ...): kept. Values: replaced.
        shaped: dict[str, Any] = {}
        for key, item in value.items():
            if budget.left <= 0:
                # Stop walking (a 1 MB document costs no more than a small one).
                shaped[_ELIDED] = _ELIDED
                break
            shaped[str(key)] = _shape(item, depth + 1, budget)
        return shaped
    if isinstance(value, list | tuple):
        shown = [_shape(item, depth + 1, budget) for item in value[:_LIST_SHOWN]]
        if len(value) > _LIST_SHOWN:
            shown.append(f"<+{len(value) - _LIST_SHOWN} more>")
        return shown
    return _placeholder(value)


def query_shape(command: Mapping[str, Any], command_name: str) -> str:
    """The command without its values: `{"filter": {"owner": "<string>"}, "limit": "<int>"}`.

    Field names and operators stay (they say which index a query needs); every value becomes
    its BSON type, recursively, so a filter on a token or an inserted document's text never
    reaches the log. The command-name key (its value is the collection, logged on its own)
    and the driver's bookkeeping keys are dropped. Long shapes are cut at SHAPE_MAX_CHARS.
    """
    budget = _Budget(_SHAPE_MAX_NODES)
    body = {
        str(key): _shape(value, 1, budget)
        for key, value in command.items()
        if key != command_name and key not in _DRIVER_KEYS
    }
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    if len(text) > SHAPE_MAX_CHARS:
        text = text[: SHAPE_MAX_CHARS - 3] + "..."
    return text
