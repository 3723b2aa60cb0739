"""JSON Patch with computed inverses: undo must restore exactly what was there."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from snipix.errors import Conflict, ValidationFailed
from snipix.timelines.patches import apply_patch, diff, mongo_update

BASE: dict[str, Any] = {
    "tracks": [{"id": "v1", "kind": "video"}, {"id": "a1", "kind": "audio"}],
    "clips": [
        {"id": "c1", "trackId": "v1", "start": 0.0, "params": {"x": 1}},
        {"id": "c2", "trackId": "v1", "start": 5.0, "params": {}},
        {"id": "c3", "trackId": "a1", "start": 1.0, "params": {"gain": 0.5}},
    ],
    "markers": [],
    "fps": 30.0,
}


def apply_plain(document: Any, operations: list[dict[str, Any]]) -> Any:
    return apply_patch(document, operations).document


def test_inverse_of_index_shifting_removals_restores_the_original() -> None:
    """Two removals in one patch shift indices; the inverse still puts both clips back."""
    operations: list[dict[str, Any]] = [
        {"op": "remove", "path": "/clips/0"},
        {"op": "remove", "path": "/clips/0"},
        {"op": "add", "path": "/clips/-", "value": {"id": "c9", "trackId": "a1", "start": 2.0}},
        {"op": "replace", "path": "/clips/0/start", "value": 3.0},
    ]
    applied = apply_patch(BASE, operations)
    assert [c["id"] for c in applied.document["clips"]] == ["c3", "c9"]
    assert apply_plain(applied.document, applied.inverse) == BASE


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "add", "path": "/clips/1/params/y", "value": 2}],
        [{"op": "add", "path": "/clips/0/params/x", "value": 9}],  # add over an existing key
        [{"op": "move", "from": "/clips/0", "path": "/clips/2"}],
        [{"op": "move", "from": "/clips/2/params/gain", "path": "/clips/0/params/gain"}],
        [{"op": "copy", "from": "/clips/0", "path": "/clips/-"}],
        [{"op": "replace", "path": "", "value": {"tracks": [], "clips": []}}],
        [{"op": "test", "path": "/fps", "value": 30.0}, {"op": "remove", "path": "/markers"}],
    ],
)
def test_every_operation_kind_has_an_exact_inverse(operations: list[dict[str, Any]]) -> None:
    """add, remove, replace, move, copy and test each undo exactly."""
    applied = apply_patch(BASE, operations)
    assert apply_plain(applied.document, applied.inverse) == BASE


def test_random_patches_round_trip() -> None:
    """Hundreds of random multi-op patches: applying the inverse always gives back the
    state the patch was applied to, and the original is never modified."""
    rng = random.Random(6902)  # noqa: S311 - reproducible test data
    original = copy.deepcopy(BASE)
    for _ in range(300):
        state = copy.deepcopy(BASE)
        operations: list[dict[str, Any]] = []
        probe = copy.deepcopy(state)
        for _ in range(rng.randint(1, 6)):
            clips = probe["clips"]
            op: dict[str, Any]
            choice = rng.choice(["add", "remove", "replace", "move", "param"])
            if choice == "add" or not clips:
                index = rng.randint(0, len(clips))
                op = {
                    "op": "add",
                    "path": f"/clips/{index}",
                    "value": {"id": f"n{rng.random()}", "params": {}},
                }
            elif choice == "remove":
                op = {"op": "remove", "path": f"/clips/{rng.randrange(len(clips))}"}
            elif choice == "replace":
                op = {
                    "op": "replace",
                    "path": f"/clips/{rng.randrange(len(clips))}/id",
                    "value": f"r{rng.random()}",
                }
            elif choice == "move":
                op = {
                    "op": "move",
                    "from": f"/clips/{rng.randrange(len(clips))}",
                    "path": f"/clips/{rng.randrange(len(clips))}",
                }
            else:
                op = {
                    "op": "add",
                    "path": f"/clips/{rng.randrange(len(clips))}/params/k{rng.randint(0, 2)}",
                    "value": rng.random(),
                }
            probe = apply_plain(probe, [op])
            operations.append(op)
        applied = apply_patch(state, operations)
        assert applied.document == probe
        assert apply_plain(applied.document, applied.inverse) == state
    assert original == BASE


def test_a_patch_that_does_not_apply_is_refused_whole() -> None:
    """A bad op anywhere refuses the whole patch; a failed `test` is a conflict."""
    with pytest.raises(ValidationFailed, match="operation 1"):
        apply_patch(BASE, [{"op": "remove", "path": "/clips/0"}, {"op": "remove", "path": "/nope"}])
    with pytest.raises(ValidationFailed):
        apply_patch(BASE, [{"op": "jump", "path": "/fps"}])
    with pytest.raises(Conflict):
        apply_patch(BASE, [{"op": "test", "path": "/fps", "value": 24}])


@pytest.mark.parametrize("op", ["remove", "add", "replace"])
def test_an_index_of_other_digits_is_a_bad_patch_not_a_crash(op: str) -> None:
    """`²` passes `str.isdigit` but is no array index: 422 like any missing element."""
    with pytest.raises(ValidationFailed, match=r"no array element|does not exist"):
        apply_patch(BASE, [{"op": op, "path": "/clips/\u00b2", "value": {}}])


def test_mongo_update_touches_only_the_changed_places() -> None:
    """Replacing two fields sets two paths; inserting into an array sets that array."""
    applied = apply_patch(
        BASE,
        [
            {"op": "replace", "path": "/clips/1/start", "value": 6.0},
            {"op": "add", "path": "/clips/2/params/gain", "value": 0.7},
        ],
    )
    sets, unsets = mongo_update("state", applied.roots, applied.document)
    assert sets == {"state.clips.1.start": 6.0, "state.clips.2.params.gain": 0.7}
    assert unsets == []

    applied = apply_patch(
        BASE,
        [
            {"op": "replace", "path": "/clips/1/start", "value": 6.0},
            {"op": "remove", "path": "/clips/0"},
            {"op": "remove", "path": "/clips/1/params/gain"},
            {"op": "remove", "path": "/markers"},
        ],
    )
    sets, unsets = mongo_update("state", applied.roots, applied.document)
    assert sets == {"state.clips": applied.document["clips"]}
    assert unsets == ["state.markers"]


def test_diff_gives_forward_and_inverse() -> None:
    """A full save's revision stores a diff both ways."""
    after = copy.deepcopy(BASE)
    after["clips"][0]["start"] = 9.0
    del after["markers"]
    forward, inverse = diff(BASE, after)
    assert apply_plain(BASE, forward) == after
    assert apply_plain(after, inverse) == BASE
