"""What SQLite does with each statement the embedded engine ran: the plan check's eyes.

`StatementTrace` (snipix.db.engine) records every statement the engine executes, with
its parameters bound. Here each one that reads or changes stored data is given to
SQLite's `EXPLAIN QUERY PLAN` against the engine's own data file, and a statement that
visits a whole collection is reported: a table scan, or an index search bounded by the
collection alone (`db_name=? AND coll_name=?`, which is every document of it). The
partial probe indexes are exempt: they hold only documents that break a rule, so a
search of one reads nothing in a healthy collection.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from snipix.db.engine_reads import PROBE_PREFIX

# Tables that grow with a collection's documents.
DATA_TABLES = ("documents", "scalar_index_entries", "multikey_entries")
_DML = re.compile(r"^\s*(SELECT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
_SEARCH = re.compile(
    r"^SEARCH (?P<table>\w+) USING (?:COVERING )?INDEX (?P<index>\S+) \((?P<terms>[^)]*)\)"
)
_SCAN = re.compile(r"^SCAN (?P<table>\w+)\b")
# Only the collection bound: every document of the collection is visited.
# Values, not JSON paths ('$.field...'): two statements differing only in values are one.
_LITERAL = re.compile(r"'(?!\$)(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")
_COLLECTION_ONLY = {"db_name=? AND coll_name=?", "collection_id=?"}


@dataclass(frozen=True, slots=True)
class Scan:
    statement: str
    plan: str

    def __str__(self) -> str:
        return f"{self.plan}\n    {self.statement[:400]}"


def read_trace(path: Path, *, start: int = 0) -> list[str]:
    """The statements recorded in the trace file from byte offset `start`."""
    with path.open(encoding="utf-8") as trace:
        trace.seek(start)
        return [json.loads(line) for line in trace if line.strip()]


def collection_scans(statements: Iterable[str], data_file: Path) -> list[Scan]:
    """Every statement whose plan visits a whole collection, once per shape (its text with
    literals replaced by `?`)."""
    found: list[Scan] = []
    seen: set[str] = set()
    shapes: set[str] = set()
    uri = f"file:{data_file}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        for statement in statements:
            if statement in seen or not _DML.match(statement):
                continue
            seen.add(statement)
            if not any(table in statement for table in DATA_TABLES):
                continue
            rows = conn.execute("EXPLAIN QUERY PLAN " + statement).fetchall()
            details = [str(row[-1]) for row in rows]
            if _ordered_index_walk(statement, details):
                continue
            for detail in details:
                if _visits_collection(detail):
                    shape = _LITERAL.sub("?", " ".join(statement.split()))
                    if shape not in shapes:
                        shapes.add(shape)
                        found.append(Scan(shape, detail))
                    break
    return found


def _ordered_index_walk(statement: str, details: list[str]) -> bool:
    """A read in an index's order (ORDER BY served by the index, no sort step): it stops
    once the page is full, as MongoDB's IXSCAN under a limit does, so a bound by the
    collection alone is not a scan of it."""
    return (
        "ORDER BY" in statement.upper()
        and not any("TEMP B-TREE" in detail for detail in details)
        and all(detail.startswith("SEARCH documents USING INDEX") for detail in details)
    )


def _visits_collection(detail: str) -> bool:
    scan = _SCAN.match(detail)
    if scan is not None:
        return scan.group("table") in DATA_TABLES
    search = _SEARCH.match(detail)
    if search is None or search.group("table") not in DATA_TABLES:
        return False
    if search.group("index").startswith(PROBE_PREFIX):
        return False
    return search.group("terms") in _COLLECTION_ONLY
