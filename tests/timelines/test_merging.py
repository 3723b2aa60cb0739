"""Two devices or editors on one timeline: a stale autosave that touches nothing saved
since is merged (and says so), one that collides is 412 naming what collided, and undo,
redo and retries stay exact."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from snipix.app import create_app
from snipix.settings import Settings
from tests.support import running_app
from tests.timelines.test_endpoints import OWNER, PATCH_TYPE, STATE, new_project, patch, save


async def timeline(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await client.get(path, headers=OWNER)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def two_revisions_since(client: httpx.AsyncClient, path: str) -> None:
    """Version 1 is STATE; another device saves versions 2 (moves c2) and 3 (a marker)."""
    assert (await save(client, path, STATE, 0)).status_code == 200
    other = [{"op": "replace", "path": "/clips/1/start", "value": 6.0}]
    assert (await patch(client, path, other, 1)).status_code == 200
    marker = {"id": "m0", "time": 0.5, "label": "Cold open", "color": ""}
    assert (
        await patch(client, path, [{"op": "add", "path": "/markers/0", "value": marker}], 2)
    ).status_code == 200


async def test_a_stale_autosave_of_other_things_is_merged_and_undo_stays_exact(
    client: httpx.AsyncClient,
) -> None:
    """Saved on version 1 after 2 and 3 moved a clip and inserted a marker in front: the
    change lands (on the marker it meant, now second), `X-Merged-Over: 2-3`, ETag 4; undo
    gives version 3's state exactly, redo the merged one."""
    path = await new_project(client)
    await two_revisions_since(client, path)
    head = await timeline(client, path)

    mine: list[dict[str, Any]] = [
        {"op": "replace", "path": "/clips/2/volume", "value": 0.5},
        {"op": "replace", "path": "/markers/0/label", "value": "Intro (tight)"},
    ]
    merged = await patch(client, path, mine, 1)

    assert merged.status_code == 200, merged.text
    assert merged.headers["X-Merged-Over"] == "2-3"
    assert merged.headers["ETag"] == '"4"'
    state = merged.json()["state"]
    assert [(m["id"], m["label"]) for m in state["markers"]] == [
        ("m0", "Cold open"),
        ("m1", "Intro (tight)"),
    ]
    assert state["clips"][1]["start"] == 6.0  # the other device's move is kept
    assert state["clips"][2]["volume"] == 0.5
    assert (await timeline(client, path))["state"] == state

    undone = await client.post(f"{path}/undo", headers=OWNER)
    assert undone.status_code == 200, undone.text
    assert undone.json()["state"] == head["state"]
    redone = await client.post(f"{path}/redo", headers=OWNER)
    assert redone.json()["state"] == state


async def test_a_retried_merged_autosave_replays_its_first_answer(
    client: httpx.AsyncClient,
) -> None:
    """The same Idempotency-Key again (`Prefer: return=minimal`): the first answer's ETag
    and `X-Merged-Over`, and still one revision for it."""
    path = await new_project(client)
    await two_revisions_since(client, path)
    mine = [{"op": "replace", "path": "/clips/0/name", "value": "Opening"}]
    headers = {"Idempotency-Key": "autosave-17", "Prefer": "return=minimal"}

    first = await patch(client, path, mine, 1, **headers)
    again = await patch(client, path, mine, 1, **headers)

    assert first.status_code == again.status_code == 204, (first.text, again.text)
    for answer in (first, again):
        assert answer.headers["ETag"] == '"4"'
        assert answer.headers["X-Merged-Over"] == "2-3"
    history = (await client.get(f"{path}/history", headers=OWNER)).json()["items"]
    assert [item["version"] for item in history] == [4, 3, 2, 1]


async def test_what_collides_is_412_naming_paths_and_revisions_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    """The clip the other device moved (same field), a marker it replaced (removed target),
    a merge that would overlap two clips, and a whole-state PUT: each 412, nothing saved."""
    path = await new_project(client)
    await two_revisions_since(client, path)
    before = await timeline(client, path)

    same_field = await patch(
        client, path, [{"op": "replace", "path": "/clips/1/start", "value": 7.0}], 1
    )
    assert same_field.status_code == 412, same_field.text
    error = same_field.json()["error"]
    assert error["code"] == "version_mismatch"
    assert error["details"] == {
        "currentVersion": 3,
        "baseVersion": 1,
        "conflicts": [{"path": "/clips/1/start", "revision": 2, "revisionPath": "/clips/1/start"}],
    }

    replaced = [{"op": "remove", "path": "/markers/0"}]
    assert (await patch(client, path, replaced, 3)).status_code == 200  # version 4
    removed_target = await patch(
        client, path, [{"op": "replace", "path": "/markers/0/color", "value": "red"}], 3
    )
    assert removed_target.status_code == 412, removed_target.text
    assert removed_target.json()["error"]["details"]["conflicts"] == [
        {"path": "/markers/0/color", "revision": 4, "revisionPath": "/markers/0"}
    ]

    # c1 ends at 2.0 and c2 now starts at 6.0: moving c1 to 5.0 was free on version 1,
    # merged it would overlap c2 (the result is validated as always).
    overlapping = await patch(
        client, path, [{"op": "replace", "path": "/clips/0/start", "value": 5.0}], 1
    )
    assert overlapping.status_code == 412, overlapping.text
    assert "overlap" in overlapping.json()["error"]["message"]

    whole = copy.deepcopy(before["state"])
    whole["fps"] = 25.0
    put = await client.put(path, json={"state": whole}, headers={**OWNER, "If-Match": '"3"'})
    assert put.status_code == 412, put.text

    after = await timeline(client, path)
    assert after["version"] == 4
    assert after["state"]["clips"] == before["state"]["clips"]


@pytest.fixture
async def narrow(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app merging over at most 2 revisions."""
    async with running_app(
        create_app(settings.model_copy(update={"timeline_merge_window": 2}))
    ) as http:
        yield http


async def test_a_patch_further_behind_than_the_merge_window_is_412(
    narrow: httpx.AsyncClient,
) -> None:
    """Window 2: based on version 1 with 2 and 3 since it merges; on version 1 with 2, 3
    and 4 since it is 412, saying how far behind it is."""
    path = await new_project(narrow)
    await two_revisions_since(narrow, path)
    edit = [{"op": "replace", "path": "/clips/2/volume", "value": 0.5}]
    assert (await patch(narrow, path, edit, 1)).headers.get("X-Merged-Over") == "2-3"

    too_far = await patch(narrow, path, [{"op": "replace", "path": "/fps", "value": 25.0}], 1)

    assert too_far.status_code == 412, too_far.text
    assert "3 versions behind" in too_far.json()["error"]["message"]
    assert too_far.json()["error"]["details"] == {"currentVersion": 4}


ROUNDS = 20


async def test_two_editors_autosaving_different_clips_lose_nothing(
    client: httpx.AsyncClient,
) -> None:
    """Two editors on one timeline at once, each autosaving from the version it last got
    back: A renames clip c1 and prepends a marker now and then, B retimes clip c3 and
    relabels its marker wherever A's markers pushed it. Every save is accepted (stale
    ones merged) and the final state holds both editors' last edits and every marker."""
    path = await new_project(client)
    assert (await save(client, path, STATE, 0)).status_code == 200
    statuses: list[int] = []
    merges: list[str] = []

    async def editor(edit: Any) -> None:
        seen = await timeline(client, path)
        for number in range(ROUNDS):
            operations = edit(seen["state"], number)
            response = await client.patch(
                path,
                content=json.dumps(operations),
                headers={**OWNER, **PATCH_TYPE, "If-Match": f'"{seen["version"]}"'},
            )
            statuses.append(response.status_code)
            if "X-Merged-Over" in response.headers:
                merges.append(response.headers["X-Merged-Over"])
            if response.status_code == 200:
                seen = response.json()

    def a(state: dict[str, Any], number: int) -> list[dict[str, Any]]:
        operations: list[dict[str, Any]] = [
            {"op": "replace", "path": "/clips/0/name", "value": f"a{number}"}
        ]
        if number % 4 == 0:
            marker = {"id": f"a{number}", "time": 0.0, "label": "A", "color": ""}
            operations.append({"op": "add", "path": "/markers/0", "value": marker})
        return operations

    def b(state: dict[str, Any], number: int) -> list[dict[str, Any]]:
        mine = next(i for i, m in enumerate(state["markers"]) if m["id"] == "m1")
        return [
            {"op": "replace", "path": "/clips/2/start", "value": 0.1 * number},
            {"op": "replace", "path": f"/markers/{mine}/label", "value": f"b{number}"},
        ]

    await asyncio.gather(editor(a), editor(b))

    assert statuses == [200] * (2 * ROUNDS)
    assert merges, "the editors never saved over each other"
    final = (await timeline(client, path))["state"]
    assert final["clips"][0]["name"] == f"a{ROUNDS - 1}"
    assert final["clips"][2]["start"] == pytest.approx(0.1 * (ROUNDS - 1))
    assert [m["id"] for m in final["markers"]] == [
        *(f"a{n}" for n in reversed(range(0, ROUNDS, 4))),
        "m1",
    ]
    assert final["markers"][-1]["label"] == f"b{ROUNDS - 1}"
    # B's relabels followed its marker as A's pushed it back, never landing on one of A's.
    assert {m["label"] for m in final["markers"][:-1]} == {"A"}
