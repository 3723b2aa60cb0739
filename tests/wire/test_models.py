"""The bounds walk every request body and imported document goes through."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snipix.wire.models import MAX_ARRAY_ITEMS, MAX_INT, MAX_STRING_CHARS, _walk, json_problem

KEYS = st.sampled_from(["a", "name", "$where", "a.b", "x\x00", "clips", "0"]) | st.text(max_size=4)
LEAVES = (
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.text(max_size=8)
)
JSON = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON, max_depth=st.integers(min_value=0, max_value=6))
def test_the_verdict_is_the_located_walks(value: Any, max_depth: int) -> None:
    """The quick verdict and the walk that names the place agree on every input: a body
    is refused exactly when the walk finds a problem, and the problem named is its first."""
    assert json_problem(value, max_depth=max_depth) == _walk(value, (), 0, max_depth)


class Text(str):
    pass


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ({"clips": [{"text": "x" * (MAX_STRING_CHARS + 1)}]}, "string_too_long"),
        ({"ids": list(range(MAX_ARRAY_ITEMS + 1))}, "too_long"),
        ({"n": [MAX_INT + 1]}, "int_too_large"),
        ({"n": {"$gt": 1}}, "unsafe_key"),
        ({1: {"a.b": 1}}, "unsafe_key"),
        ({"k" * (MAX_STRING_CHARS + 1): 1}, "string_too_long"),
        ([Text("x" * (MAX_STRING_CHARS + 1))], "string_too_long"),
    ],
)
def test_each_bound_is_named(value: Any, kind: str) -> None:
    problem = json_problem(value)
    assert problem is not None
    assert problem[0] == kind


def test_a_large_clean_document_passes() -> None:
    words = [
        {"id": f"w{i}", "text": "word", "start": i * 0.5, "end": i * 0.5 + 0.4}
        for i in range(MAX_ARRAY_ITEMS)
    ]
    assert json_problem({"words": words, "flags": [True, None, 1.5, -MAX_INT, MAX_INT]}) is None
