"""Index-narrowed reads for the embedded engine (mongoeco's SQLite engine).

mongoeco 4.11 keeps each compound index as a SQLite expression index on its `documents`
table, `(db_name, coll_name, type(f1), value(f1), type(f2), value(f2), ...)`, but compiles
every multi-document read to SQL whose WHERE and ORDER BY use other expressions, so SQLite
can use only the `(db_name, coll_name)` prefix: every list, range and text read decodes
and matches every document of the collection. This mixin answers the read shapes the
service runs from that same physical index:

- an equality prefix of the index (strings, booleans, numbers, dates, ObjectIds) narrows
  the candidates to one index range;
- when the sort's first key is the index field right after that prefix, candidates come
  in sort order and reading stops once the page is full (ties on that key are sorted in
  Python by the whole sort, so later sort keys may hold any types);
- a range on that field (also the upper bound a keyset page's `$or` implies) narrows it
  further;
- `_id` equality or `$in` reads each candidate by primary key;
- a `$text` query is scored only over the candidates of an equality prefix (the owner).

Safety rests on two facts, each proved per query rather than assumed:

1. **A narrowing only ever drops documents that cannot match.** It is a superset of the
   answer: mongoeco's own exact filter is still applied to every candidate, so a wrong
   narrowing could only cost time, never return a wrong document. Equality on a field is
   a superset only when no document of the collection holds an array along the field's
   path (an array would match by its elements), and, for numbers, when no document holds
   a tagged value there (Int64/Decimal128 equal to an int). Both are answered by partial
   "probe" indexes over the documents that would break the rule: they are empty in a
   healthy collection, so the proof costs one index seek. The array probes use the exact
   predicate mongoeco's own planner probes with, so those probes (run again after every
   write, when the engine clears its feature cache) become index seeks too.
2. **Index order is the sort order** only within one type: across types SQLite's order
   (by type tag name, NULL < numbers < text) is not BSON's. Before streaming in index
   order, the first and last entries of the prefix range are read (two index seeks): the
   same type tag, and for untagged values the same SQLite class with no booleans or plain
   objects at that path (a probe again), prove every entry in between is of that type.

Anything the mixin cannot prove falls back to mongoeco's own path, unchanged.

Everything here relies on mongoeco's private internals (the physical index layout, the
reader protocol, the codec's tags); `tests/db/test_engine_contract.py` pins each of them
so an upgrade that changes one fails loudly instead of reading wrongly.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bson import ObjectId
from mongoeco.core.codec import DocumentCodec
from mongoeco.core.query_plan import (
    AndCondition,
    EqualsCondition,
    GreaterThanCondition,
    GreaterThanOrEqualCondition,
    InCondition,
    LessThanCondition,
    LessThanOrEqualCondition,
    OrCondition,
    QueryNode,
)
from mongoeco.core.sorting import sort_documents
from mongoeco.engines._sqlite_reader import _serialized_document_size_estimate
from mongoeco.engines.semantic_core import (
    EngineFindSemantics,
    iter_filtered_documents,
    stream_finalize_documents,
)
from mongoeco.engines.sqlite_query import (
    json_path_for_field,
    type_expression_sql,
    value_expression_sql,
)

Document = dict[str, Any]

# Prefix of every SQLite index this module adds (never one of mongoeco's own names).
PROBE_PREFIX = "snipix_probe_"
# mongoeco deletes a document's multikey entries by (collection, storage key) on every
# write, and indexes that table only by (collection, index, key...): without this index
# each write scans the entries of every collection.
MULTIKEY_STORAGE_INDEX = (
    "CREATE INDEX IF NOT EXISTS snipix_multikey_entries_storage "
    "ON multikey_entries (collection_id, storage_key)"
)
_ARRAY = "array"
_MIXED = "mixed"

# SQLite's class of an untagged value read from the index (json_extract's result).
_NUMBER, _TEXT, _NULL = "number", "text", "null"


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _path_prefixes(field: str) -> list[str]:
    """`a`, `a.b`, `a.b.c` for `a.b.c`: an array at any of them changes what matches."""
    parts = field.split(".")
    return [".".join(parts[: index + 1]) for index in range(len(parts))]


def array_probe_predicate(path: str) -> str:
    """The partial predicate of the documents holding an array at `path`.

    Byte for byte the predicate mongoeco's planner probes with
    (`_field_traverses_array_in_collection`), so SQLite answers its probes from the index.
    """
    return f"json_type(document, {_sql_literal(json_path_for_field(path))}) = 'array'"


def mixed_probe_predicate(field: str) -> str:
    """Documents whose value at `field` is an object (a plain one, or a tagged BSON value
    such as Int64, Decimal128 or a date) or a boolean: values whose index order or
    equality differs from BSON's among untagged numbers and strings."""
    return (
        f"json_type(document, {_sql_literal(json_path_for_field(field))}) "
        "IN ('object', 'true', 'false')"
    )


def probe_index_name(kind: str, path: str) -> str:
    digest = hashlib.sha1(f"{kind}:{path}".encode(), usedforsecurity=False).hexdigest()[:16]
    return f"{PROBE_PREFIX}{kind}_{digest}"


def probe_index_sql(kind: str, path: str) -> str:
    predicate = array_probe_predicate(path) if kind == _ARRAY else mixed_probe_predicate(path)
    name = probe_index_name(kind, path)
    return (
        f'CREATE INDEX IF NOT EXISTS "{name}" ON documents (db_name, coll_name) WHERE {predicate}'
    )


def _plain_field(field: str) -> bool:
    """A path the index expressions address the way the query does (no array positions,
    no operators)."""
    return bool(field) and all(part and not part.isdigit() for part in field.split("."))


@dataclass(frozen=True, slots=True)
class _Key:
    """One index field's (type tag, value) pair as the physical index stores it."""

    tag: str
    value: Any


def _equality_key(value: Any) -> tuple[_Key, bool] | None:
    """The index key an equality on `value` reads, and whether it needs the "no tagged
    values" proof (numbers); None when the value's equality is not one index key."""
    if isinstance(value, bool):
        # Stored as JSON true/false, read back by json_extract as 1/0. Numbers 1/0 share
        # the key: a superset, removed by the exact filter.
        return _Key("", int(value)), False
    if isinstance(value, int | float):
        return _Key("", value), True
    if type(value) is str:
        return _Key("", value), False
    if isinstance(value, datetime | ObjectId):
        encoded = DocumentCodec.encode(value)
        if not DocumentCodec._is_tagged_value(encoded):
            return None
        payload = encoded[DocumentCodec._MARKER]
        return _Key(payload[DocumentCodec._TYPE], payload[DocumentCodec._VALUE]), False
    return None


def _range_key(value: Any) -> tuple[str, str | None, Any] | None:
    """(tag, untagged class, index value) of a range bound, or None if not comparable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "", _NUMBER, value
    if type(value) is str:
        return "", _TEXT, value
    if isinstance(value, datetime):
        key = _equality_key(value)
        return None if key is None else (key[0].tag, None, key[0].value)
    return None


def _conjuncts(plan: QueryNode) -> tuple[QueryNode, ...]:
    return plan.clauses if isinstance(plan, AndCondition) else (plan,)


def _bounds(plan: QueryNode, field: str) -> tuple[Any, Any] | None:
    """Inclusive (low, high) bounds on `field` that every match satisfies (None = open),
    or None when the plan does not constrain it in a way we can state."""
    if isinstance(plan, EqualsCondition) and plan.field == field:
        return (plan.value, plan.value)
    if isinstance(plan, GreaterThanCondition | GreaterThanOrEqualCondition):
        return (plan.value, None) if plan.field == field else None
    if isinstance(plan, LessThanCondition | LessThanOrEqualCondition):
        return (None, plan.value) if plan.field == field else None
    if isinstance(plan, AndCondition):
        low: Any = None
        high: Any = None
        found = False
        for clause in plan.clauses:
            bound = _bounds(clause, field)
            if bound is None:
                continue
            found = True
            # Mixed-type bounds are left to the exact filter: keep the first of each side.
            low = bound[0] if low is None else low
            high = bound[1] if high is None else high
        return (low, high) if found else None
    if isinstance(plan, OrCondition) and plan.clauses:
        branches = [_bounds(clause, field) for clause in plan.clauses]
        if any(branch is None for branch in branches):
            return None
        lows = [branch[0] for branch in branches if branch is not None]
        highs = [branch[1] for branch in branches if branch is not None]
        return (_hull(lows, min), _hull(highs, max))
    return None


def _hull(values: list[Any], pick: Any) -> Any:
    """The loosest bound of OR branches: open if any branch is open on that side."""
    if any(value is None for value in values):
        return None
    try:
        return pick(values)
    except TypeError:
        return None


@dataclass(slots=True)
class _Narrowing:
    """A read from one physical index: its SQL and what it proves about order."""

    sql: str
    params: list[Any]
    # The sort (one field, direction) the rows come in, or None.
    ordered_by: tuple[str, int] | None


class IndexNarrowedReads:
    """Mixin for `SQLiteEngine`: index-narrowed multi-document reads (see module doc).

    Must come before `SQLiteEngine` in the bases; every method falls back to the stock
    implementation when a query is not one of the proven shapes.
    """

    _probe_lock = threading.Lock()

    # -- probe indexes -------------------------------------------------------------

    def _snipix_probe_names(self) -> set[str]:
        names: set[str] | None = getattr(self, "_snipix_probes", None)
        if names is None:
            conn = self._require_connection()  # type: ignore[attr-defined]
            rows = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'snipix_%'"
            ).fetchall()
            names = {str(row[0]) for row in rows}
            self._snipix_probes = names
        return names

    def ensure_support_indexes(self) -> list[str]:
        """Create the probe indexes every ordered index's fields need (and the multikey
        entries' storage index); return the names created.

        Run at start-up and after an index is created. Each probe is a partial index
        holding only the documents that break a narrowing rule, so it stays empty (and
        costs one predicate per write) in a collection the service wrote.
        """
        conn = self._require_connection()  # type: ignore[attr-defined]
        rows = conn.execute("SELECT DISTINCT fields FROM indexes").fetchall()
        wanted: dict[str, str] = {"snipix_multikey_entries_storage": MULTIKEY_STORAGE_INDEX}
        for (fields_json,) in rows:
            for field in _json_list(fields_json):
                if not _plain_field(field):
                    continue
                for prefix in _path_prefixes(field):
                    wanted[probe_index_name(_ARRAY, prefix)] = probe_index_sql(_ARRAY, prefix)
                wanted[probe_index_name(_MIXED, field)] = probe_index_sql(_MIXED, field)
        with self._probe_lock:
            existing = self._snipix_probe_names()
            created = [name for name in wanted if name not in existing]
            if created:
                had_transaction = conn.in_transaction
                for name in created:
                    conn.execute(wanted[name])
                # As mongoeco's own index DDL: commit only what this call opened.
                if not had_transaction and conn.in_transaction:
                    conn.commit()
                existing.update(created)
        return created

    def _probe_empty(
        self, conn: sqlite3.Connection, db_name: str, coll_name: str, kind: str, path: str
    ) -> bool:
        """True when no document of the collection breaks the rule; False when one does
        or the probe index is missing (nothing is assumed without its index)."""
        name = probe_index_name(kind, path)
        if name not in self._snipix_probe_names():
            return False
        predicate = array_probe_predicate(path) if kind == _ARRAY else mixed_probe_predicate(path)
        row = conn.execute(
            f'SELECT 1 FROM documents INDEXED BY "{name}" '
            f"WHERE db_name = ? AND coll_name = ? AND {predicate} LIMIT 1",
            (db_name, coll_name),
        ).fetchone()
        return row is None

    def _no_arrays_along(
        self, conn: sqlite3.Connection, db_name: str, coll_name: str, field: str
    ) -> bool:
        return all(
            self._probe_empty(conn, db_name, coll_name, _ARRAY, prefix)
            for prefix in _path_prefixes(field)
        )

    # -- planning ------------------------------------------------------------------

    def _narrow(
        self,
        conn: sqlite3.Connection,
        db_name: str,
        coll_name: str,
        semantics: EngineFindSemantics,
    ) -> _Narrowing | None:
        """The index read that narrows this query, or None to use the stock path."""
        if semantics.collation is not None:
            return None
        plan = semantics.query_plan
        terms = _conjuncts(plan)
        id_read = self._primary_key_read(db_name, coll_name, terms)
        if id_read is not None:
            return id_read
        index = self._choose_index(db_name, coll_name, semantics, terms)
        if index is None:
            return None
        keys: list[tuple[str, int]] = [(str(f), int(d)) for f, d in index["key"]]
        equalities = {
            term.field: term.value
            for term in terms
            if isinstance(term, EqualsCondition) and not term.null_matches_undefined
        }
        where = ["db_name = ?", "coll_name = ?"]
        params: list[Any] = [db_name, coll_name]
        prefix = 0
        for field, _direction in keys:
            if field not in equalities or not _plain_field(field):
                break
            key = _equality_key(equalities[field])
            if key is None:
                break
            index_key, needs_untagged = key
            if not self._no_arrays_along(conn, db_name, coll_name, field):
                break
            if needs_untagged and not self._probe_empty(conn, db_name, coll_name, _MIXED, field):
                break
            where += [f"{type_expression_sql(field)} = ?", f"{value_expression_sql(field)} = ?"]
            params += [index_key.tag, index_key.value]
            prefix += 1
        ordered_by: tuple[str, int] | None = None
        order_sql = ""
        if prefix < len(keys):
            next_field = keys[prefix][0]
            ordered_by, order_sql = self._order_and_range(
                conn, db_name, coll_name, index, where, params, next_field, semantics
            )
        if prefix == 0 and len(where) == 2 and ordered_by is None:
            return None  # neither an equality, a range nor the order narrows anything
        physical = str(index["physical_name"])
        sql = (
            f'SELECT document FROM documents INDEXED BY "{physical}" '
            f"WHERE {' AND '.join(where)}{order_sql}"
        )
        return _Narrowing(sql, params, ordered_by)

    def _primary_key_read(
        self, db_name: str, coll_name: str, terms: tuple[QueryNode, ...]
    ) -> _Narrowing | None:
        """`_id` equal to, or in, string/ObjectId ids: one primary-key read each."""
        for term in terms:
            if isinstance(term, EqualsCondition) and term.field == "_id":
                ids: tuple[Any, ...] = (term.value,)
            elif isinstance(term, InCondition) and term.field == "_id":
                ids = term.values
            else:
                continue
            if not ids or not all(type(i) is str or isinstance(i, ObjectId) for i in ids):
                continue
            keys = list(dict.fromkeys(str(self._storage_key(i)) for i in ids))  # type: ignore[attr-defined]
            placeholders = ", ".join("?" for _ in keys)
            return _Narrowing(
                "SELECT document FROM documents WHERE db_name = ? AND coll_name = ? "
                f"AND storage_key IN ({placeholders})",
                [db_name, coll_name, *keys],
                None,
            )
        return None

    def _choose_index(
        self,
        db_name: str,
        coll_name: str,
        semantics: EngineFindSemantics,
        terms: tuple[QueryNode, ...],
    ) -> Any:
        """The hinted ordered index, or (no hint) the ordered index with the longest
        equality prefix in the filter; None when none applies."""
        indexes = self._load_indexes(db_name, coll_name)  # type: ignore[attr-defined]
        ordered = [
            index
            for index in indexes
            if index.get("physical_name")
            and all(isinstance(d, int) and d in (1, -1) for _, d in index["key"])
        ]
        hint = semantics.hint
        if hint is not None:
            for index in ordered:
                if isinstance(hint, str) and index["name"] == hint:
                    return index
                if not isinstance(hint, str) and _same_keys(hint, index["key"]):
                    return index
            return None
        equal_fields = {term.field for term in terms if isinstance(term, EqualsCondition)}
        best, best_len = None, 0
        for index in ordered:
            if index.get("hidden"):
                continue
            length = 0
            for field, _direction in index["key"]:
                if field not in equal_fields:
                    break
                length += 1
            if length > best_len:
                best, best_len = index, length
        return best

    def _order_and_range(
        self,
        conn: sqlite3.Connection,
        db_name: str,
        coll_name: str,
        index: Any,
        where: list[str],
        params: list[Any],
        field: str,
        semantics: EngineFindSemantics,
    ) -> tuple[tuple[str, int] | None, str]:
        """Index order and range on the field after the equality prefix, when proven."""
        sort = list(semantics.sort or [])
        wants_order = bool(sort) and sort[0][0] == field and sort[0][1] in (1, -1)
        bound = _bounds(semantics.query_plan, field)
        if not (wants_order or bound is not None) or not _plain_field(field):
            return None, ""
        uniform = self._uniform_type(conn, index, where, params, field, db_name, coll_name)
        if uniform is None:
            return None, ""
        tag, kind = uniform
        t_expr, v_expr = type_expression_sql(field), value_expression_sql(field)
        if bound is not None:
            for value, operator in ((bound[0], ">="), (bound[1], "<=")):
                if value is None:
                    continue
                key = _range_key(value)
                if key is None or key[0] != tag or (tag == "" and key[1] != kind):
                    continue
                where.append(f"{t_expr} = ? AND {v_expr} {operator} ?")
                params += [tag, key[2]]
        if not wants_order:
            return None, ""
        direction = "ASC" if sort[0][1] == 1 else "DESC"
        return (field, int(sort[0][1])), f" ORDER BY {t_expr} {direction}, {v_expr} {direction}"

    def _uniform_type(
        self,
        conn: sqlite3.Connection,
        index: Any,
        where: list[str],
        params: list[Any],
        field: str,
        db_name: str,
        coll_name: str,
    ) -> tuple[str, str | None] | None:
        """(tag, untagged class) shared by every entry of the prefix range at `field`, or
        None if they differ (or may: arrays, booleans, plain objects)."""
        if not self._no_arrays_along(conn, db_name, coll_name, field):
            return None
        t_expr, v_expr = type_expression_sql(field), value_expression_sql(field)
        physical = str(index["physical_name"])
        ends = []
        for direction in ("ASC", "DESC"):
            row = conn.execute(
                f'SELECT {t_expr}, {v_expr} FROM documents INDEXED BY "{physical}" '
                f"WHERE {' AND '.join(where)} "
                f"ORDER BY {t_expr} {direction}, {v_expr} {direction} LIMIT 1",
                params,
            ).fetchone()
            if row is None:
                return ("", _NULL)  # nothing in range: any order is right
            ends.append(row)
        (low_tag, low_value), (high_tag, high_value) = ends
        if low_tag != high_tag:
            return None
        if low_tag != "":
            return (str(low_tag), None)
        low_kind, high_kind = _kind(low_value), _kind(high_value)
        if low_kind != high_kind or low_kind is None:
            return None
        if not self._probe_empty(conn, db_name, coll_name, _MIXED, field):
            return None
        return ("", low_kind)

    # -- execution -----------------------------------------------------------------

    def _open_scan_documents_sync(self, reader: Any) -> Any:
        semantics: EngineFindSemantics = reader.semantics
        if self._is_profile_namespace(reader.coll_name):  # type: ignore[attr-defined]
            return super()._open_scan_documents_sync(reader)  # type: ignore[misc]
        if semantics.hint is not None and semantics.text_query is None:
            # Refuses, as the stock path does, a hint the query cannot use (a partial index
            # the filter does not cover, a text index without `$text`), before any
            # narrowing takes the hint at its word. (A `$text` query resolves its hint
            # through the text index, as the stock path does.)
            self._resolve_hint_index(  # type: ignore[attr-defined]
                reader.db_name,
                reader.coll_name,
                semantics.hint,
                plan=semantics.query_plan,
                dialect=semantics.dialect,
                collation=semantics.collation,
            )
        conn = self._require_connection(reader.context)  # type: ignore[attr-defined]
        try:
            narrowing = self._narrow(conn, reader.db_name, reader.coll_name, semantics)
        except (sqlite3.OperationalError, NotImplementedError, TypeError):
            narrowing = None
        if narrowing is None:
            return super()._open_scan_documents_sync(reader)  # type: ignore[misc]
        cursor = conn.execute(narrowing.sql, narrowing.params)
        reader.own(cursor)
        rows: Iterable[Any] = cursor
        if not reader.owns_connection and semantics.limit != 1:
            rows = self._capture_shared_read_source(cursor, reader, payloads=True)  # type: ignore[attr-defined]
            cursor.close()
        documents: Iterable[Document]
        if semantics.projection is None and self._codec is DocumentCodec:  # type: ignore[attr-defined]
            # The stock scan's size estimate from the stored text, attached as its own path
            # attaches it; without it the reader walks every document to size its batch.
            documents = (
                reader.attach_size_hint(
                    self._deserialize_document(payload),  # type: ignore[attr-defined]
                    _serialized_document_size_estimate(payload),
                )
                for (payload,) in rows
            )
        else:
            documents = (self._deserialize_document(payload) for (payload,) in rows)  # type: ignore[attr-defined]
        python_semantics = replace(semantics, compiled_query=None)
        if semantics.text_query is not None:
            scored = self._iter_documents_for_classic_text_query_sync(  # type: ignore[attr-defined]
                reader.db_name,
                reader.coll_name,
                documents,
                semantics=python_semantics,
                context=reader.context,
            )
            reader.own(scored)
            return self._finalize_scan_source(scored, python_semantics)  # type: ignore[attr-defined]
        if semantics.sort is None:
            return iter(
                stream_finalize_documents(
                    iter_filtered_documents(documents, python_semantics), python_semantics
                )
            )
        matched = iter_filtered_documents(documents, python_semantics)
        unsorted = replace(python_semantics, sort=None)
        if narrowing.ordered_by is None:
            return self._finalize_scan_source(matched, python_semantics)  # type: ignore[attr-defined]
        ordered = _sorted_by_ties(matched, narrowing.ordered_by[0], python_semantics)
        return iter(stream_finalize_documents(ordered, unsorted))


def _kind(value: Any) -> str | None:
    if value is None:
        return _NULL
    if isinstance(value, int | float):
        return _NUMBER
    if isinstance(value, str):
        return _TEXT
    return None


def _same_keys(hint: Any, keys: Any) -> bool:
    try:
        pairs = list(hint.items()) if isinstance(hint, dict) else list(hint)
        return [(str(f), int(d)) for f, d in pairs] == [(str(f), int(d)) for f, d in keys]
    except (TypeError, ValueError):
        return False


def _json_list(text: Any) -> list[str]:
    import json

    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return []
    return [str(item) for item in value] if isinstance(value, list) else []


def _sorted_by_ties(
    documents: Iterable[Document], field: str, semantics: EngineFindSemantics
) -> Iterator[Document]:
    """Documents already in order by `field` (one type, proven), with each run of equal
    `field` values sorted by the whole sort: the full order, streamed."""
    from mongoeco.core.paths import get_document_value

    group: list[Document] = []
    group_key: Any = None
    for document in documents:
        key = get_document_value(document, field)
        if group and key != group_key:
            yield from _sort(group, semantics)
            group = []
        group_key = key
        group.append(document)
    if group:
        yield from _sort(group, semantics)


def _sort(group: list[Document], semantics: EngineFindSemantics) -> list[Document]:
    if len(group) == 1:
        return group
    return list(
        sort_documents(
            group, semantics.sort, dialect=semantics.dialect, collation=semantics.collation
        )
    )
