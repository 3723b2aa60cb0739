"""/timeline as the original web app calls it: saves come back exactly, and they are the
same history /api/v1 lists, undoes and rolls back."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from tests.compat.envelopes import OWNER, STRANGER, data, failure
from tests.compat.samples import LONG_ID, assert_same, web_app_timeline

DOCUMENT_FIELDS = {
    "_id",
    "project_id",
    "version",
    "is_current",
    "description",
    "created_by",
    "change_summary",
    "created_at",
    "updated_at",
    "timeline_state",
}


async def save(
    client: httpx.AsyncClient,
    project_id: str,
    state: dict[str, Any],
    description: str = "Quick Save",
    change_summary: str | None = "Timeline saved via quick save",
) -> dict[str, Any]:
    """A save exactly as the web app's saveTimeline/saveNamedTimeline sends it."""
    response = await client.post(
        "/timeline/",
        json={
            "project_id": project_id,
            "timeline_state": state,
            "description": description,
            "change_summary": change_summary,
        },
        headers=OWNER,
    )
    document: dict[str, Any] = data(response)
    return document


async def current(client: httpx.AsyncClient, project_id: str) -> dict[str, Any]:
    document: dict[str, Any] = data(await client.get(f"/timeline/{project_id}", headers=OWNER))
    return document


def moved(state: dict[str, Any]) -> dict[str, Any]:
    """The same timeline after the user moved the title and muted the music."""
    changed = copy.deepcopy(state)
    changed["layers"][1]["clips"][0]["start_time"] = 5
    changed["layers"][1]["clips"][0]["end_time"] = 7
    changed["layers"][0]["clips"][0]["properties"]["volume"] = 0
    changed["playhead_time"] = 6.5
    return changed


async def test_a_saved_timeline_reads_back_field_by_field(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """What the web app saves is what it loads: volume, speed, easing, zeros, keyframes,
    markers, selection and view flags."""
    sent = web_app_timeline()
    saved = await save(client, project_id, sent)
    assert set(saved) == DOCUMENT_FIELDS
    assert (saved["version"], saved["is_current"], saved["created_by"]) == (1, True, "web-user")
    assert (saved["description"], saved["change_summary"]) == (
        "Quick Save",
        "Timeline saved via quick save",
    )
    assert_same(saved["timeline_state"], sent)
    loaded = await current(client, project_id)
    assert set(loaded) == DOCUMENT_FIELDS
    assert_same(loaded["timeline_state"], sent)
    clip = loaded["timeline_state"]["layers"][0]["clips"][0]
    assert clip["properties"]["volume"] == 0.8
    assert clip["properties"]["speed"] == 1.5
    assert clip["properties"]["easing"] == "ease-in-out"
    assert clip["keyframes"][1]["value"] == {"x": 10, "y": 20}
    assert loaded["timeline_state"]["layers"][0]["clips"][1]["id"] == LONG_ID
    assert loaded["_id"] == f"{project_id}:1"
    assert loaded["created_at"] == saved["created_at"]


async def test_a_project_never_saved_loads_an_empty_timeline(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """Opening a new project gives the empty timeline (version 0), not an error."""
    loaded = await current(client, project_id)
    assert (loaded["version"], loaded["is_current"], loaded["description"]) == (0, True, None)
    assert loaded["timeline_state"] == {
        "layers": [],
        "playhead_time": 0.0,
        "zoom": 1.0,
        "duration": 0.0,
        "markers": [],
        "selected_clips": [],
        "is_playing": False,
        "is_snapping": True,
    }
    assert data(await client.get(f"/timeline/{project_id}/history", headers=OWNER)) == []


async def test_a_web_app_save_is_in_the_api_v1_history_and_can_be_undone_there(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """Undo in /api/v1 after two web-app saves brings the first one back to the web app."""
    first = web_app_timeline()
    await save(client, project_id, first)
    await save(client, project_id, moved(first), "Title moved", "Timeline saved as: Title moved")
    history = await client.get(f"/api/v1/projects/{project_id}/timeline/history", headers=OWNER)
    items = history.json()["items"]
    assert [(i["version"], i["kind"], i["authorId"]) for i in items] == [
        (2, "save", "web-user"),
        (1, "save", "web-user"),
    ]
    assert items[0]["label"] == "Title moved\nTimeline saved as: Title moved"
    assert items[0]["undoable"] is True
    undone = await client.post(f"/api/v1/projects/{project_id}/timeline/undo", headers=OWNER)
    assert undone.status_code == 200
    loaded = await current(client, project_id)
    assert loaded["version"] == 3
    assert_same(loaded["timeline_state"], first)
    assert loaded["description"].startswith("Undo Title moved")


async def test_history_lists_named_saves_newest_first(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """The restore dialog lists saves newest first with their names and summaries."""
    first = web_app_timeline()
    await save(client, project_id, first, "Rough cut", "Timeline saved as: Rough cut")
    await save(client, project_id, moved(first), "Final", "Timeline saved as: Final")
    history = data(await client.get(f"/timeline/{project_id}/history", headers=OWNER))
    assert [
        (d["version"], d["description"], d["change_summary"], d["is_current"]) for d in history
    ] == [
        (2, "Final", "Timeline saved as: Final", True),
        (1, "Rough cut", "Timeline saved as: Rough cut", False),
    ]
    assert set(history[0]) == DOCUMENT_FIELDS
    assert_same(history[0]["timeline_state"], moved(first))
    assert_same(history[1]["timeline_state"], first)
    paged = data(await client.get(f"/timeline/{project_id}/history?limit=1&skip=1", headers=OWNER))
    assert [d["version"] for d in paged] == [1]
    assert data(await client.get(f"/timeline/{project_id}/history?skip=5", headers=OWNER)) == []


async def test_a_version_can_be_read_and_restored_as_a_new_version(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """Restoring version 1 makes a new version equal to it; the history keeps both saves."""
    first = web_app_timeline()
    await save(client, project_id, first, "Rough cut", "Timeline saved as: Rough cut")
    await save(client, project_id, moved(first), "Final", "Timeline saved as: Final")
    old = data(await client.get(f"/timeline/{project_id}/version/1", headers=OWNER))
    assert (old["version"], old["is_current"], old["description"]) == (1, False, "Rough cut")
    assert_same(old["timeline_state"], first)
    restored = data(await client.post(f"/timeline/{project_id}/restore/1", headers=OWNER))
    assert (restored["version"], restored["is_current"]) == (3, True)
    assert (restored["description"], restored["change_summary"]) == (
        "Rough cut",
        "Restored version 1",
    )
    assert_same(restored["timeline_state"], first)
    assert_same((await current(client, project_id))["timeline_state"], first)
    kinds = await client.get(f"/api/v1/projects/{project_id}/timeline/history", headers=OWNER)
    assert [i["kind"] for i in kinds.json()["items"]] == ["rollback", "save", "save"]
    failure(await client.get(f"/timeline/{project_id}/version/9", headers=OWNER), 404)


async def test_restoring_the_current_version_adds_nothing(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """The web app restores the newest version each time it opens a project: no new version."""
    await save(client, project_id, web_app_timeline())
    again = data(await client.post(f"/timeline/{project_id}/restore/1", headers=OWNER))
    assert (again["version"], again["is_current"]) == (1, True)
    assert_same(again["timeline_state"], web_app_timeline())
    history = data(await client.get(f"/timeline/{project_id}/history", headers=OWNER))
    assert [d["version"] for d in history] == [1]


async def test_an_api_v1_edit_shows_in_the_web_app(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """A clip's volume changed by an autosave patch reads back in the clip's properties."""
    sent = web_app_timeline()
    await save(client, project_id, sent)
    patched = await client.patch(
        f"/api/v1/projects/{project_id}/timeline",
        json=[{"op": "replace", "path": "/clips/0/volume", "value": 0.25}],
        headers={**OWNER, "If-Match": '"1"', "Content-Type": "application/json-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    clip = (await current(client, project_id))["timeline_state"]["layers"][0]["clips"][0]
    expected = sent["layers"][0]["clips"][0]
    assert clip["properties"] == {**expected["properties"], "volume": 0.25}
    assert (clip["start_time"], clip["end_time"], clip["duration"]) == (0, 12.5, 4.25)


async def test_a_web_app_save_keeps_transcript_cuts_made_through_api_v1(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """Cut segments the web app cannot see survive its next save."""
    await save(client, project_id, web_app_timeline())
    cut = await client.patch(
        f"/api/v1/projects/{project_id}/timeline",
        json=[
            {
                "op": "add",
                "path": "/segments/-",
                "value": {"id": "cut1", "start": 1, "end": 2, "kind": "cut"},
            }
        ],
        headers={**OWNER, "If-Match": '"1"', "Content-Type": "application/json-patch+json"},
    )
    assert cut.status_code == 200, cut.text
    await save(client, project_id, moved(web_app_timeline()))
    state = (await client.get(f"/api/v1/projects/{project_id}/timeline", headers=OWNER)).json()
    assert state["version"] == 3
    assert [s["id"] for s in state["state"]["segments"]] == ["cut1"]


async def test_a_timeline_snipix_cannot_hold_is_refused_naming_the_web_apps_field(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """A 422 in the failure envelope points at the layer the web app sent; nothing is saved."""
    sent = web_app_timeline()
    sent["layers"][1]["id"] = "has spaces"
    response = await client.post(
        "/timeline/", json={"project_id": project_id, "timeline_state": sent}, headers=OWNER
    )
    body = failure(response, 422)
    assert "timeline_state.layers.1.id" in body["error"]
    assert (await current(client, project_id))["version"] == 0


async def test_another_users_timeline_is_not_found(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """Someone else's project's timeline can be neither read nor saved."""
    await save(client, project_id, web_app_timeline())
    for method, path in (
        ("GET", f"/timeline/{project_id}"),
        ("GET", f"/timeline/{project_id}/history"),
        ("GET", f"/timeline/{project_id}/version/1"),
        ("POST", f"/timeline/{project_id}/restore/0"),
    ):
        failure(await client.request(method, path, headers=STRANGER), 404)
    response = await client.post(
        "/timeline/",
        json={"project_id": project_id, "timeline_state": {"layers": []}},
        headers=STRANGER,
    )
    failure(response, 404)
    assert (await current(client, project_id))["version"] == 1


async def test_a_save_name_with_a_line_break_is_refused(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """A save's name is one line (it shares the history label with the summary)."""
    response = await client.post(
        "/timeline/",
        json={
            "project_id": project_id,
            "timeline_state": {"layers": []},
            "description": "two\nlines",
        },
        headers=OWNER,
    )
    body = failure(response, 422)
    assert body["details"][0]["loc"][-1] == "description"
    only_summary = await client.post(
        "/timeline",
        json={"project_id": project_id, "timeline_state": {}, "change_summary": "Auto"},
        headers=OWNER,
    )
    saved = data(only_summary)
    assert (saved["description"], saved["change_summary"]) == (None, "Auto")
