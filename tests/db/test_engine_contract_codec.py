"""Contracts with mongoeco's document codec that `snipix.db.engine_codec` relies on.

`single_pass_encode` replaces `DocumentCodec.encode` process-wide, so it must give exactly
what the stock function gives, and raise exactly what it raises, for every value mongoeco
can be handed. These tests compare the two on every BSON type and on generated documents,
and name the private names the replacement uses; each fails with the assumption in its
message when a mongoeco release changes it.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import decimal
import inspect
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mongoeco.engines._sqlite_modify_ops
import mongoeco.engines.results
import mongoeco.engines.sqlite
import pytest
from bson import SON, Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex
from bson import Timestamp as BsonTimestamp
from hypothesis import given, settings
from hypothesis import strategies as st
from mongoeco import MongoClient as EmbeddedClient
from mongoeco._types.writes import UpdateResult
from mongoeco.core import codec as mongoeco_codec
from mongoeco.core.bson_scalars import (
    INT64_MAX,
    INT64_MIN,
    BsonDouble,
    BsonInt32,
    BsonInt64,
    validate_bson_value,
)
from mongoeco.core.codec import DocumentCodec

from snipix.db.engine import DurableSQLiteEngine
from snipix.db.engine_codec import (
    COPYING_MODULES,
    STOCK_DEEPCOPY,
    STOCK_ENCODE,
    STOCK_OUTCOME_POST_INIT,
    STOCK_WIRE_DECODE,
    STOCK_WIRE_ENCODE,
    document_copy,
    install_document_copy,
    install_owning_outcomes,
    install_wire_values,
    single_pass_encode,
    wire_decode,
    wire_encode,
)

UTC = datetime.UTC
MARKER = DocumentCodec._MARKER


def outcome(encode: Callable[[Any], Any], value: Any) -> tuple[str, str]:
    """What `DocumentCodec.encode(value)` gives with `encode` in that name (the stock
    encode recurses through it), comparable even with NaN inside: its repr, or the error."""
    installed = inspect.getattr_static(DocumentCodec, "encode")
    DocumentCodec.encode = staticmethod(encode)  # type: ignore[method-assign,assignment]
    try:
        return ("value", repr(DocumentCodec.encode(value)))
    except Exception as error:  # noqa: BLE001 - the error is the outcome compared
        return (type(error).__name__, str(error))
    finally:
        DocumentCodec.encode = installed  # type: ignore[method-assign]


def assert_same(value: Any) -> None:
    stock, ours = outcome(STOCK_ENCODE, value), outcome(single_pass_encode, value)
    assert ours == stock, f"single_pass_encode differs from mongoeco's encode for {value!r}"


# --- names and shapes the replacement relies on ------------------------------------------


def test_the_stock_encode_validates_a_document_first_and_recurses_by_name() -> None:
    """`single_pass_encode` repeats the stock encode's first step for a document (one
    `validate_bson_value` over its subtree) and relies on its recursion going through the
    class attribute it replaces, so documents inside SON or arrays come back to it."""
    source = inspect.getsource(STOCK_ENCODE)
    assert "if isinstance(data, dict):\n            validate_bson_value(data)" in source, (
        "the stock encode no longer validates a dict's subtree before encoding it"
    )
    recursion = "the stock encode no longer recurses through DocumentCodec.encode"
    assert "DocumentCodec.encode(v)" in source, recursion
    assert "DocumentCodec.encode(value)" in source, recursion
    # The per-scalar check `validate_once` falls back to is the one the stock encode calls.
    assert mongoeco_codec.validate_bson_value is validate_bson_value  # type: ignore[attr-defined]
    assert isinstance(inspect.getattr_static(DocumentCodec, "_is_tagged_value"), staticmethod)
    assert isinstance(inspect.getattr_static(DocumentCodec, "_tagged_value"), staticmethod)
    assert (INT64_MIN, INT64_MAX) == (-(2**63), 2**63 - 1)


def test_building_the_engine_installs_the_single_pass_encode(tmp_path: Path) -> None:
    """mongoeco calls `DocumentCodec.encode` (through `self._codec`) on every write; after
    the engine is built that name is ours, and a stored document reads back as written."""
    engine = DurableSQLiteEngine(str(tmp_path / "engine.sqlite"))
    assert inspect.getattr_static(DocumentCodec, "encode").__func__ is single_pass_encode
    client = EmbeddedClient(engine=engine)
    try:
        collection = client["contract"]["codec"]
        document = {
            "_id": ObjectId(),
            "at": datetime.datetime(2024, 5, 1, 12, 0, 0, 123000),
            "words": [{"w": "hello", "s": 0.5, "n": 2**40}, {"w": "world", "tags": ("a",)}],
            "money": Decimal128("1.10"),
        }
        collection.insert_one(document)
        assert collection.find_one({"_id": document["_id"]}) == {
            **document,
            "words": [{"w": "hello", "s": 0.5, "n": 2**40}, {"w": "world", "tags": ["a"]}],
        }
    finally:
        client.close()


# --- the same result, the same errors -----------------------------------------------------

EVERY_TYPE: list[Any] = [
    "text",
    "",
    0,
    -1,
    2**31,
    INT64_MAX,
    INT64_MIN,
    1.5,
    float("nan"),
    float("inf"),
    -0.0,
    True,
    False,
    None,
    datetime.datetime(2024, 5, 1, 12, 0, 0, 123456),
    datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
    ObjectId("68bece27fe5513fae995ff01"),
    Decimal128("12.50"),
    decimal.Decimal("3.14"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Binary(b"\x00\x01", 0),
    Binary(b"\x02", 5),
    b"raw",
    bytearray(b"array"),
    Regex("^a", "i"),
    re.compile("b+", re.IGNORECASE | re.MULTILINE),
    BsonTimestamp(1_700_000_000, 3),
    MinKey(),
    MaxKey(),
    Code("function () {}"),
    Code("f(x)", {"x": 1}),
    DBRef("projects", "p1", "db", extra={"k": [1, 2]}),
    Int64(7),
    BsonInt32(5),
    BsonInt64(6),
    BsonDouble(2.5),
    SON([("b", 1), ("a", {"c": 2})]),
    (1, "two", {"three": 3}),
    {MARKER: {"type": "datetime", "value": "looks tagged"}},
    {MARKER: {"type": "x"}},
]


@pytest.mark.parametrize("value", EVERY_TYPE, ids=lambda value: type(value).__name__)
def test_every_bson_type_encodes_as_mongoeco_encodes_it(value: Any) -> None:
    assert_same(value)
    assert_same({"v": value})
    assert_same({"outer": [{"inner": value}, value], "n": 1})
    assert_same([value, {"v": value}])


def test_mongoeco_s_own_immutable_documents_encode_as_mongoeco_encodes_them() -> None:
    """What `to_internal` made (stored documents, command arguments) is encoded again on
    every write; it is a dict subclass the replacement treats as a document."""
    internal = DocumentCodec.to_internal(
        {"a": [{"b": 1, "c": datetime.datetime(2024, 1, 1)}], "d": Decimal128("1")}
    )
    assert_same(internal)


@pytest.mark.parametrize(
    "value",
    [
        {"a": {"b": [1, {2: "not a string key"}]}},
        {"a": [1, {"b": {1, 2}}]},
        {"a": {"b": 2**63}},
        {"a": [-(2**63) - 1]},
        # Two bad values: the first one the stock walk meets decides the error.
        {"first": {1: "x"}, "second": [2**64]},
        {"first": [2**64], "second": {frozenset(): "x"}},
        {"a": [{"b": {3}}, {"c": 2**70}]},
        {"a": decimal.Decimal("1e7000")},
        {"a": [decimal.Decimal("NaN"), 2**64]},
        {"ok": 1, "set": {"x"}},
        [2**64, {1, 2}],
        [{"a": 1}, {1: "b"}],
    ],
    ids=str,
)
def test_a_value_mongoeco_refuses_raises_the_same_error(value: Any) -> None:
    stock = outcome(STOCK_ENCODE, value)
    assert stock[0] != "value", f"mongoeco now accepts {value!r}: re-check the replacement"
    assert_same(value)


SCALARS = st.one_of(
    st.text(max_size=8),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.datetimes(),
    st.decimals(allow_nan=False, places=3, min_value=-(10**6), max_value=10**6),
    st.binary(max_size=4),
    st.sampled_from(EVERY_TYPE),
    st.frozensets(st.integers(), max_size=1),
)
KEYS = st.one_of(st.text(max_size=4), st.sampled_from([MARKER, "type", "value"]), st.integers())
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(KEYS, children, max_size=4),
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_generated_documents_encode_as_mongoeco_encodes_them(document: dict[Any, Any]) -> None:
    assert_same(document)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "value"]), VALUES, min_size=2))
def test_values_shaped_like_mongoeco_s_own_tags_encode_as_it_encodes_them(
    payload: dict[str, Any],
) -> None:
    """A user document that looks like the codec's tagged form must still be escaped."""
    assert_same({MARKER: payload})
    assert_same({"x": [{MARKER: payload}]})


# --- copying documents --------------------------------------------------------------------


def test_the_copying_modules_call_deepcopy_by_their_own_name() -> None:
    """`install_document_copy` replaces the `deepcopy` each module imported from `copy`;
    a module that no longer calls it by that name would silently keep the stock copy."""
    for module in COPYING_MODULES:
        assert "deepcopy(" in inspect.getsource(module), (
            f"{module.__name__} no longer calls deepcopy: update COPYING_MODULES"
        )
        assert getattr(module, "deepcopy", None) in (STOCK_DEEPCOPY, document_copy), (
            f"{module.__name__}.deepcopy is no longer copy.deepcopy"
        )


def test_installing_refuses_a_module_whose_deepcopy_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = COPYING_MODULES[0]
    monkeypatch.setattr(module, "deepcopy", copy.copy)
    with pytest.raises(RuntimeError, match=module.__name__):
        install_document_copy()


def test_building_the_engine_installs_the_document_copy(tmp_path: Path) -> None:
    """After the engine is built every copying module copies with `document_copy`, and a
    document the caller gets back from a write is its own: changing it changes nothing
    stored (what the stock copies guaranteed)."""
    engine = DurableSQLiteEngine(str(tmp_path / "engine.sqlite"))
    assert all(module.deepcopy is document_copy for module in COPYING_MODULES)
    client = EmbeddedClient(engine=engine)
    try:
        collection = client["contract"]["copies"]
        collection.insert_one({"_id": 1, "clips": [{"id": "a", "start": 0.5}], "n": 0})
        returned = collection.find_one_and_update(
            {"_id": 1}, {"$inc": {"n": 1}}, return_document=True
        )
        assert returned == {"_id": 1, "clips": [{"id": "a", "start": 0.5}], "n": 1}
        returned["clips"][0]["start"] = 99
        returned["clips"].append({"id": "b"})
        collection.update_one({"_id": 1}, {"$set": {"clips.0.id": "c"}})
        assert collection.find_one({"_id": 1}) == {
            "_id": 1,
            "clips": [{"id": "c", "start": 0.5}],
            "n": 1,
        }
    finally:
        client.close()


def test_every_sqlite_outcome_is_handed_images_copied_for_it() -> None:
    """`install_owning_outcomes` skips the outcome's own copies because every SQLite path
    that builds one hands it fresh copies (or, through `dataclasses.replace`, its own)."""
    source = inspect.getsource(mongoeco.engines._sqlite_modify_ops)
    images = re.findall(r"(before_document|after_document)=([^\n]+)", source)
    assert images, "no MutationOutcome images found: re-read _sqlite_modify_ops"
    for name, value in images:
        assert value.strip().startswith("deepcopy("), f"{name}={value.strip()} is not a copy"
    sqlite_source = inspect.getsource(mongoeco.engines.sqlite)
    built = re.findall(r"MutationOutcome\(", sqlite_source)
    assert not built, "the engine module now builds outcomes itself: check their images"


def test_the_stock_outcome_copies_and_checks_its_images(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the override keeps (the checks) and what it skips (two copies per outcome)."""
    results = mongoeco.engines.results
    image = {"_id": 1, "clips": [{"id": "a"}]}
    copies: list[Any] = []

    def counting(value: Any) -> Any:
        copies.append(value)
        return STOCK_DEEPCOPY(value)

    monkeypatch.setattr(results, "deepcopy", counting)
    monkeypatch.setattr(results.MutationOutcome, "__post_init__", STOCK_OUTCOME_POST_INIT)
    stock = results.MutationOutcome(
        result=UpdateResult(matched_count=1, modified_count=1),
        before_document=image,
        after_document=image,
    )
    assert stock.after_document == image
    assert stock.after_document is not image
    assert len(copies) == 2
    with pytest.raises(ValueError, match="non-matching"):
        results.MutationOutcome(
            result=UpdateResult(matched_count=0, modified_count=0),
            after_document=image,
        )


def test_owning_outcomes_keep_their_images_and_their_checks(tmp_path: Path) -> None:
    """Installed (as building the engine does): the images are the ones handed in, also
    after `dataclasses.replace`, and an inconsistent outcome is still refused. (A document
    returned from a write stays the caller's own: the document-copy test above.)"""

    DurableSQLiteEngine(str(tmp_path / "engine.sqlite"))
    results = mongoeco.engines.results
    install_owning_outcomes()
    before, after = {"_id": 1, "n": 0}, {"_id": 1, "n": 1}
    made = results.MutationOutcome(
        result=UpdateResult(matched_count=1, modified_count=1),
        before_document=before,
        after_document=after,
    )
    assert made.before_document is before
    assert made.after_document is after
    sequenced = dataclasses.replace(made, commit_sequence=7)
    assert sequenced.after_document is after
    assert sequenced.commit_sequence == 7
    with pytest.raises(ValueError, match="non-matching"):
        results.MutationOutcome(
            result=UpdateResult(matched_count=0, modified_count=0),
            after_document=after,
        )
    with pytest.raises(ValueError, match="upsert"):
        results.MutationOutcome(
            result=UpdateResult(matched_count=0, modified_count=0, upserted_id=1, did_upsert=True),
        )


def _containers(value: Any) -> list[Any]:
    """Every list and dict inside `value` (itself included), depth first."""
    found: list[Any] = []
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            found.append(current)
            pending.extend(current.values())
        elif isinstance(current, list | tuple):
            if isinstance(current, list):
                found.append(current)
            pending.extend(current)
    return found


def assert_copied_as_deepcopy_copies(value: Any) -> None:
    ours, stock = document_copy(value), STOCK_DEEPCOPY(value)
    assert repr(ours) == repr(stock), f"document_copy differs from deepcopy for {value!r}"
    assert type(ours) is type(stock)
    shared = {id(item) for item in _containers(value)} & {id(item) for item in _containers(ours)}
    assert not shared, f"document_copy shares a mutable container with {value!r}"


@pytest.mark.parametrize("value", EVERY_TYPE, ids=lambda value: type(value).__name__)
def test_every_bson_type_copies_as_deepcopy_copies_it(value: Any) -> None:
    assert_copied_as_deepcopy_copies(value)
    assert_copied_as_deepcopy_copies({"v": value, "in": [value, {"deeper": value}]})


def test_mongoeco_s_own_immutable_documents_copy_as_deepcopy_copies_them() -> None:
    internal = DocumentCodec.to_public(
        DocumentCodec.decode(DocumentCodec.encode({"a": [1, {"b": 2}]}))
    )
    assert_copied_as_deepcopy_copies(internal)
    assert_copied_as_deepcopy_copies({"doc": internal})


def test_a_copy_with_a_memo_is_the_stock_copy() -> None:
    shared = [1, 2]
    memo: dict[int, Any] = {}
    copied = document_copy({"a": shared, "b": shared}, memo)
    assert copied["a"] is copied["b"], "deepcopy's memo keeps sharing"


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_generated_documents_copy_as_deepcopy_copies_them(document: dict[Any, Any]) -> None:
    assert_copied_as_deepcopy_copies(document)


# --- wire values --------------------------------------------------------------------------


def test_the_wire_conversions_are_looked_up_by_name_where_we_replace_them() -> None:
    """The bridge recurses through its own module-level names, and the protocol and raw
    cursor batches call them by the names they imported: those are the names replaced."""
    from mongoeco.api._async import raw_batch_cursor
    from mongoeco.wire import bson_bridge, protocol

    encode_source = inspect.getsource(STOCK_WIRE_ENCODE)
    decode_source = inspect.getsource(STOCK_WIRE_DECODE)
    assert "encode_wire_value(item)" in encode_source, "encode no longer recurses by name"
    assert "decode_wire_value(item)" in decode_source, "decode no longer recurses by name"
    assert "encode_wire_value(document)" in inspect.getsource(protocol)
    assert "decode_wire_value(BSON(" in inspect.getsource(protocol)
    assert "encode_wire_value(document)" in inspect.getsource(raw_batch_cursor)
    for module, name in (
        (bson_bridge, "encode_wire_value"),
        (bson_bridge, "decode_wire_value"),
        (protocol, "encode_wire_value"),
        (protocol, "decode_wire_value"),
        (raw_batch_cursor, "encode_wire_value"),
    ):
        assert getattr(module, name) in (
            STOCK_WIRE_ENCODE,
            STOCK_WIRE_DECODE,
            wire_encode,
            wire_decode,
        ), f"{module.__name__}.{name} is no longer mongoeco's function"


def test_installing_refuses_a_wire_name_that_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    from mongoeco.wire import protocol

    monkeypatch.setattr(protocol, "encode_wire_value", repr)
    with pytest.raises(RuntimeError, match=r"protocol\.encode_wire_value"):
        install_wire_values()


def test_building_the_engine_routes_the_wire_through_ours(tmp_path: Path) -> None:
    from mongoeco.wire import bson_bridge, protocol

    DurableSQLiteEngine(str(tmp_path / "engine.sqlite"))
    assert protocol.encode_wire_value is wire_encode  # type: ignore[attr-defined]
    assert protocol.decode_wire_value is wire_decode  # type: ignore[attr-defined]
    assert bson_bridge.encode_wire_value is wire_encode
    assert bson_bridge.decode_wire_value is wire_decode


def converted(convert: Callable[[Any], Any], value: Any) -> tuple[str, str]:
    """What a conversion gives for `value`: the repr and type names of the result (the
    stock functions recurse through the installed names, so compare at the top), or the
    error."""
    try:
        result = convert(value)
    except Exception as error:  # noqa: BLE001 - the error is the outcome compared
        return (type(error).__name__, str(error))
    return (type(result).__name__, repr(result) + repr(_type_tree(result)))


def _type_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return (type(value).__name__, {key: _type_tree(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_type_tree(item) for item in value])
    return type(value).__name__


def stock_converted(stock: Callable[[Any], Any], value: Any) -> tuple[str, str]:
    """`converted` with mongoeco's own functions under their names, so the stock one's
    recursion stays stock even after an engine was built in this process."""
    from mongoeco.wire import bson_bridge

    installed = (bson_bridge.encode_wire_value, bson_bridge.decode_wire_value)
    bson_bridge.encode_wire_value = STOCK_WIRE_ENCODE
    bson_bridge.decode_wire_value = STOCK_WIRE_DECODE
    try:
        return converted(stock, value)
    finally:
        bson_bridge.encode_wire_value, bson_bridge.decode_wire_value = installed


def assert_wire_same(value: Any) -> None:
    for stock, ours in ((STOCK_WIRE_ENCODE, wire_encode), (STOCK_WIRE_DECODE, wire_decode)):
        assert converted(ours, value) == stock_converted(stock, value), (
            f"{ours.__name__} differs from mongoeco's {stock.__name__} for {value!r}"
        )


@pytest.mark.parametrize("value", EVERY_TYPE, ids=lambda value: type(value).__name__)
def test_every_bson_type_crosses_the_wire_as_mongoeco_converts_it(value: Any) -> None:
    assert_wire_same(value)
    assert_wire_same({"v": value, "in": [value, {"deeper": value}]})


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=4), VALUES, max_size=5))
def test_generated_documents_cross_the_wire_as_mongoeco_converts_them(
    document: dict[str, Any],
) -> None:
    assert_wire_same(document)
