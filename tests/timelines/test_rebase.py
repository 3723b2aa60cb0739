"""Rebasing a stale patch over the revisions saved since: positions follow inserts and
removals, and anything both sides touched is a conflict, never a silent overwrite."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snipix.timelines.patches import Operation, apply_patch, diff
from snipix.timelines.rebase import Concurrent, Rebased, Refused, rebase

BASE: dict[str, Any] = {
    "clips": [
        {"id": "a", "start": 0.0, "effects": [{"type": "blur"}, {"type": "fade"}]},
        {"id": "b", "start": 5.0, "effects": []},
        {"id": "c", "start": 9.0, "effects": []},
        {"id": "d", "start": 12.0, "effects": []},
    ],
    "markers": [{"id": "m1", "time": 1.0}],
    "fps": 30.0,
}


def revisions(base: Any, *patches: list[Operation]) -> tuple[Any, list[Concurrent]]:
    """The head after `patches` (versions 2, 3, ...) and the revisions as stored."""
    state, stored = copy.deepcopy(base), []
    for number, forward in enumerate(patches, start=2):
        applied = apply_patch(state, forward)
        stored.append(Concurrent(number, forward, applied.inverse))
        state = applied.document
    return state, stored


def merged(base: Any, theirs: list[list[Operation]], mine: list[Operation]) -> Any:
    """The state after their revisions and then mine, rebased (fails if refused)."""
    head, stored = revisions(base, *theirs)
    result = rebase(head, stored, mine)
    assert isinstance(result, Rebased), result
    return apply_patch(head, result.operations).document


def refused(base: Any, theirs: list[list[Operation]], mine: list[Operation]) -> Refused:
    head, stored = revisions(base, *theirs)
    result = rebase(head, stored, mine)
    assert isinstance(result, Refused), result
    return result


def ids(state: Any) -> list[str]:
    return [clip["id"] for clip in state["clips"]]


def clip(state: Any, clip_id: str) -> dict[str, Any]:
    return next(found for found in state["clips"] if found["id"] == clip_id)


def test_an_edit_after_a_removal_in_the_same_array_follows_its_clip() -> None:
    """Their removal of clip a shifts clip c from index 2 to 1: my edit still lands on c."""
    state = merged(
        BASE,
        [[{"op": "remove", "path": "/clips/0"}]],
        [{"op": "replace", "path": "/clips/2/start", "value": 10.0}],
    )
    assert ids(state) == ["b", "c", "d"]
    assert clip(state, "c")["start"] == 10.0


def test_an_edit_before_an_insert_keeps_its_index_and_one_after_moves_up() -> None:
    """Their insert at index 2 leaves b (index 1) where it was and moves d up."""
    state = merged(
        BASE,
        [[{"op": "add", "path": "/clips/2", "value": {"id": "x", "start": 7.0, "effects": []}}]],
        [
            {"op": "replace", "path": "/clips/1/start", "value": 4.0},
            {"op": "replace", "path": "/clips/3/start", "value": 13.0},
        ],
    )
    assert ids(state) == ["a", "b", "x", "c", "d"]
    assert clip(state, "b")["start"] == 4.0
    assert clip(state, "d")["start"] == 13.0


def test_two_appends_keep_both_clips_in_server_order() -> None:
    """Both editors append a clip: both are kept, theirs (saved first) before mine."""
    state = merged(
        BASE,
        [[{"op": "add", "path": "/clips/-", "value": {"id": "x", "start": 20.0}}]],
        [
            {"op": "add", "path": "/clips/4", "value": {"id": "y", "start": 30.0}},
            {"op": "add", "path": "/clips/-", "value": {"id": "z", "start": 40.0}},
            {"op": "replace", "path": "/clips/4/start", "value": 31.0},
        ],
    )
    assert ids(state) == ["a", "b", "c", "d", "x", "y", "z"]
    assert clip(state, "y")["start"] == 31.0


def test_inserts_at_the_same_position_go_after_the_one_saved_first() -> None:
    """Both insert before c: theirs stays first, mine follows it, c after both."""
    state = merged(
        BASE,
        [[{"op": "add", "path": "/clips/2", "value": {"id": "x"}}]],
        [{"op": "add", "path": "/clips/2", "value": {"id": "y"}}],
    )
    assert ids(state) == ["a", "b", "x", "y", "c", "d"]


def test_nested_arrays_shift_inside_the_clip_that_moved() -> None:
    """Their insert of a clip in front moves clip a; my removal of a's second effect follows."""
    state = merged(
        BASE,
        [[{"op": "add", "path": "/clips/0", "value": {"id": "x"}}]],
        [{"op": "remove", "path": "/clips/0/effects/1"}],
    )
    assert ids(state) == ["x", "a", "b", "c", "d"]
    assert clip(state, "a")["effects"] == [{"type": "blur"}]


def test_their_nested_insert_shifts_my_nested_edit_in_the_same_array() -> None:
    """Their effect inserted first on clip a: my change of a's fade still hits the fade."""
    state = merged(
        BASE,
        [[{"op": "add", "path": "/clips/0/effects/0", "value": {"type": "glow"}}]],
        [{"op": "replace", "path": "/clips/0/effects/1/type", "value": "dissolve"}],
    )
    assert clip(state, "a")["effects"] == [
        {"type": "glow"},
        {"type": "blur"},
        {"type": "dissolve"},
    ]


def test_a_move_shifts_paths_by_both_its_halves() -> None:
    """Their move of a to the end, and mine across it: my edits find b and a again."""
    state = merged(
        BASE,
        [[{"op": "move", "from": "/clips/0", "path": "/clips/3"}]],
        [
            {"op": "replace", "path": "/clips/1/start", "value": 6.0},
            {"op": "move", "from": "/clips/3", "path": "/clips/2"},
        ],
    )
    assert ids(state) == ["b", "d", "c", "a"]
    assert clip(state, "b")["start"] == 6.0


def test_a_copy_reads_its_source_where_it_moved() -> None:
    """My copy of clip c's effects onto d reads c after their insert moved it."""
    state = merged(
        BASE,
        [[{"op": "add", "path": "/clips/0", "value": {"id": "x"}}]],
        [{"op": "copy", "from": "/clips/0/effects", "path": "/clips/3/effects"}],
    )
    assert clip(state, "d")["effects"] == BASE["clips"][0]["effects"]


def test_disjoint_fields_of_other_objects_merge() -> None:
    """Their fps change and my marker edit touch different things: both kept."""
    state = merged(
        BASE,
        [[{"op": "replace", "path": "/fps", "value": 25.0}]],
        [{"op": "replace", "path": "/markers/0/time", "value": 2.0}],
    )
    assert state["fps"] == 25.0
    assert state["markers"][0]["time"] == 2.0


@pytest.mark.parametrize(
    ("theirs", "mine", "path", "their_path"),
    [
        # the same field
        (
            [{"op": "replace", "path": "/clips/1/start", "value": 1.0}],
            [{"op": "replace", "path": "/clips/1/start", "value": 2.0}],
            "/clips/1/start",
            "/clips/1/start",
        ),
        # my target removed
        (
            [{"op": "remove", "path": "/clips/1"}],
            [{"op": "replace", "path": "/clips/1/start", "value": 2.0}],
            "/clips/1/start",
            "/clips/1",
        ),
        # its parent replaced
        (
            [{"op": "replace", "path": "/clips/1", "value": {"id": "b2"}}],
            [{"op": "add", "path": "/clips/1/name", "value": "B"}],
            "/clips/1/name",
            "/clips/1",
        ),
        # I replace what they changed inside
        (
            [{"op": "replace", "path": "/clips/2/effects", "value": [{"type": "x"}]}],
            [{"op": "remove", "path": "/clips/2"}],
            "/clips/2",
            "/clips/2/effects",
        ),
        # my test reads what they changed
        (
            [{"op": "replace", "path": "/clips/0/start", "value": 1.0}],
            [
                {"op": "test", "path": "/clips/0", "value": BASE["clips"][0]},
                {"op": "replace", "path": "/fps", "value": 24.0},
            ],
            "/clips/0",
            "/clips/0/start",
        ),
        # I replace the whole array they inserted into
        (
            [{"op": "add", "path": "/clips/-", "value": {"id": "x"}}],
            [{"op": "replace", "path": "/clips", "value": []}],
            "/clips",
            "/clips/-",
        ),
        # I insert before the clip they removed
        (
            [{"op": "remove", "path": "/clips/2"}],
            [{"op": "add", "path": "/clips/2", "value": {"id": "y"}}],
            "/clips/2",
            "/clips/2",
        ),
        # both move the same clip
        (
            [{"op": "move", "from": "/clips/0", "path": "/clips/3"}],
            [{"op": "move", "from": "/clips/0", "path": "/clips/1"}],
            "/clips/0",
            "/clips/0",
        ),
        # their whole-state replace touches everything
        (
            [{"op": "replace", "path": "", "value": BASE}],
            [{"op": "replace", "path": "/fps", "value": 24.0}],
            "/fps",
            "",
        ),
    ],
)
def test_what_both_touched_is_a_conflict_naming_both_paths(
    theirs: list[Operation], mine: list[Operation], path: str, their_path: str
) -> None:
    """Same field, removed target, replaced parent, changed test: refused, naming them."""
    result = refused(BASE, [theirs], mine)
    assert [(c.path, c.version, c.revision_path) for c in result.clashes] == [(path, 2, their_path)]


def test_every_clashing_path_is_named_with_its_revision() -> None:
    """Two fields each changed by another revision: both clashes, each with its version."""
    result = refused(
        BASE,
        [
            [{"op": "replace", "path": "/clips/0/start", "value": 1.0}],
            [{"op": "replace", "path": "/fps", "value": 25.0}],
        ],
        [
            {"op": "replace", "path": "/clips/0/start", "value": 2.0},
            {"op": "replace", "path": "/fps", "value": 24.0},
        ],
    )
    assert [c.as_json() for c in result.clashes] == [
        {"path": "/clips/0/start", "revision": 2, "revisionPath": "/clips/0/start"},
        {"path": "/fps", "revision": 3, "revisionPath": "/fps"},
    ]


def test_a_patch_that_does_not_fit_its_own_version_is_refused() -> None:
    """A patch naming a clip its base never had cannot be placed: refused, not guessed."""
    result = refused(
        BASE,
        [[{"op": "replace", "path": "/fps", "value": 25.0}]],
        [{"op": "replace", "path": "/clips/9/start", "value": 1.0}],
    )
    assert "does not apply" in result.reason


def test_revisions_with_defaults_filled_in_by_the_service_still_replay() -> None:
    """The stored head is the validated state (defaults added to a clip their patch
    added); a later revision made on it (an effect on that clip) still replays."""
    forward: list[Operation] = [{"op": "add", "path": "/clips/-", "value": {"id": "x"}}]
    applied = apply_patch(BASE, forward)
    normalised = copy.deepcopy(applied.document)
    normalised["clips"][-1]["effects"] = []  # what validation fills in
    second: list[Operation] = [{"op": "add", "path": "/clips/4/effects/-", "value": {"t": 1}}]
    applied2 = apply_patch(normalised, second)
    stored = [Concurrent(2, forward, applied.inverse), Concurrent(3, second, applied2.inverse)]
    result = rebase(
        applied2.document, stored, [{"op": "replace", "path": "/clips/3/start", "value": 1.0}]
    )
    assert isinstance(result, Rebased)
    assert result.operations == [{"op": "replace", "path": "/clips/3/start", "value": 1.0}]


def test_a_full_save_in_between_is_replayed_from_its_diff() -> None:
    """A whole-state save in between (stored as a diff, moves included): my edit of a
    field it did not change lands on the same clip after its reordering."""
    after = copy.deepcopy(BASE)
    after["clips"] = [after["clips"][3], *after["clips"][:3]]
    after["fps"] = 25.0
    forward, inverse = diff(BASE, after)
    result = rebase(
        after,
        [Concurrent(2, forward, inverse)],
        [{"op": "replace", "path": "/clips/1/start", "value": 6.0}],
    )
    assert isinstance(result, Rebased), result
    state = apply_patch(after, result.operations).document
    assert ids(state) == ["d", "a", "b", "c"]
    assert clip(state, "b")["start"] == 6.0


# --- property: a merge, when accepted, is the two edits applied in server order -----------
#
# Edits are drawn as intents on clip ids ("set a field of clip X", "insert before clip Y",
# "remove X", "move X before Y", "append a mark to X", ...), turned into index-based
# operations against the state the editor sees, as an editor does. Applying the second
# editor's intents by id on the state the first one left is the server-order result.

FIELDS = ("start", "name")
END = "END"


def intent_ops(state: dict[str, Any], intent: tuple[Any, ...]) -> list[Operation] | None:
    """`intent` as operations on `state`, or None when its clips are not there."""
    order = ids(state)
    kind, target = intent[0], intent[1]
    if kind == "fps":
        return [{"op": "replace", "path": "/fps", "value": intent[2]}]
    if kind == "insert":
        if target != END and target not in order:
            return None
        position = len(order) if target == END else order.index(target)
        token = "-" if target == END and intent[3] else str(position)
        return [{"op": "add", "path": f"/clips/{token}", "value": intent[2]}]
    if target not in order:
        return None
    index = order.index(target)
    if kind == "set":
        return [{"op": "replace", "path": f"/clips/{index}/{intent[2]}", "value": intent[3]}]
    if kind == "test-set":
        field, value = intent[2], intent[3]
        if state["clips"][index][field] != intent[4]:
            return None
        return [
            {"op": "test", "path": f"/clips/{index}/{field}", "value": intent[4]},
            {"op": "replace", "path": f"/clips/{index}/{field}", "value": value},
        ]
    if kind == "remove":
        return [{"op": "remove", "path": f"/clips/{index}"}]
    if kind == "mark":
        return [{"op": "add", "path": f"/clips/{index}/marks/-", "value": intent[2]}]
    if kind == "unmark":
        marks = state["clips"][index]["marks"]
        if intent[2] not in marks:
            return None
        return [{"op": "remove", "path": f"/clips/{index}/marks/{marks.index(intent[2])}"}]
    if kind == "move":
        before = intent[2]
        rest = [clip_id for clip_id in order if clip_id != target]
        if before != END and before not in rest:
            return None
        to = len(rest) if before == END else rest.index(before)
        return [{"op": "move", "from": f"/clips/{index}", "path": f"/clips/{to}"}]
    raise AssertionError(kind)


def applied_intents(state: dict[str, Any], intents: list[tuple[Any, ...]]) -> Any:
    """The state after `intents` by id, with the operations they became; None if one of
    them names a clip that is not there."""
    state = copy.deepcopy(state)
    operations: list[Operation] = []
    for intent in intents:
        found = intent_ops(state, intent)
        if found is None:
            return None, None
        state = apply_patch(state, found).document
        operations += found
    return state, operations


def touched(intents: list[tuple[Any, ...]]) -> set[str]:
    """The clip ids (and "fps") an editor's intents act on or place next to."""
    names: set[str] = set()
    for intent in intents:
        if intent[0] == "fps":
            names.add("fps")
        elif intent[0] == "insert":
            names.add(intent[1])
            names.add(intent[2]["id"])
        elif intent[0] == "move":
            names.update({intent[1], intent[2]})
        else:
            names.add(intent[1])
    names.discard(END)
    return names


@st.composite
def editor(draw: st.DrawFn, clip_ids: list[str], side: str) -> list[tuple[Any, ...]]:
    known = [*clip_ids]
    intents: list[tuple[Any, ...]] = []
    for number in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                ["set", "set", "test-set", "insert", "remove", "mark", "unmark", "move", "fps"]
            )
        )
        target = draw(st.sampled_from(known)) if known else END
        if kind == "fps":
            intents.append(("fps", "fps", draw(st.sampled_from([24.0, 25.0, 60.0]))))
        elif kind == "insert" or not known:
            new_id = f"{side}{number}"
            anchor = draw(st.sampled_from([*known, END]))
            value = {"id": new_id, "start": float(number), "name": side, "marks": []}
            intents.append(("insert", anchor, value, draw(st.booleans())))
            known.append(new_id)
        elif kind == "set":
            field = draw(st.sampled_from(FIELDS))
            intents.append(("set", target, field, f"{side}{number}"))
        elif kind == "test-set":
            intents.append(("test-set", target, "name", f"{side}{number}", f"n-{target}"))
        elif kind == "remove":
            intents.append(("remove", target))
            known.remove(target)
        elif kind == "mark":
            intents.append(("mark", target, draw(st.integers(0, 3))))
        elif kind == "unmark":
            intents.append(("unmark", target, draw(st.integers(0, 3))))
        else:
            intents.append(("move", target, draw(st.sampled_from([*known, END]))))
    return intents


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_an_accepted_merge_equals_both_edits_in_server_order(data: st.DataObject) -> None:
    """Random concurrent edits of one state: a merge, when accepted, gives exactly the
    first editor's edits then the second's by clip; one whose clip the first removed is
    refused; and edits of different clips are always merged."""
    count = data.draw(st.integers(0, 5))
    clip_ids = [f"c{index}" for index in range(count)]
    base = {
        "clips": [
            {
                "id": clip_id,
                "start": float(index),
                "name": f"n-{clip_id}",
                "marks": data.draw(st.lists(st.integers(0, 3), max_size=3)),
            }
            for index, clip_id in enumerate(clip_ids)
        ],
        "fps": 30.0,
    }
    first = data.draw(editor(clip_ids, "a"))
    second = data.draw(editor(clip_ids, "b"))
    head, first_ops = applied_intents(base, first)
    _, second_ops = applied_intents(base, second)
    if head is None or second_ops is None:
        return  # an editor's own intents did not fit (e.g. unmark of a missing mark)
    stored = revisions(base, first_ops)[1]
    result = rebase(head, stored, second_ops)
    expected, _ = applied_intents(head, second)
    if isinstance(result, Rebased):
        assert expected is not None, "merged an edit whose clip the first editor removed"
        assert apply_patch(head, result.operations).document == expected
    if not (touched(first) & touched(second)):
        assert isinstance(result, Rebased), result
