"""The timeline through HTTP: save, load, autosave patches, idempotency, history, undo/redo,
rollback — what the editor relies on to never lose work."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import opentimelineio as otio
import pytest
from pymongo import MongoClient

from snipix.app import create_app
from snipix.settings import Settings
from snipix.timelines.service import STORE_EVERY
from tests.support import running_app
from tests.timelines.recorded import recorded

OWNER = {"X-User-Id": "editor-1"}
PATCH_TYPE = {"Content-Type": "application/json-patch+json"}


def clip(clip_id: str, start: float, length: float = 2.0, track: str = "v1") -> dict[str, Any]:
    return {
        "id": clip_id,
        "trackId": track,
        "mediaRef": "media/interview.mp4",
        "start": start,
        "sourceIn": 10.0,
        "sourceOut": 10.0 + length,
    }


STATE: dict[str, Any] = {
    "tracks": [{"id": "v1", "kind": "video", "name": "Main"}, {"id": "a1", "kind": "audio"}],
    "clips": [clip("c1", 0.0), clip("c2", 3.0), clip("c3", 0.0, track="a1")],
    "markers": [{"id": "m1", "time": 1.5, "label": "Intro", "color": "red"}],
}


@pytest.fixture
async def app_settings_small(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a 4 KB timeline size limit."""
    small = settings.model_copy(update={"timeline_max_bytes": 4_096})
    async with running_app(create_app(small)) as http:
        yield http


async def new_project(client: httpx.AsyncClient, headers: dict[str, str] = OWNER) -> str:
    created = await client.post("/api/v1/projects", json={"name": "Cut"}, headers=headers)
    assert created.status_code == 201
    return f"{created.headers['Location']}/timeline"


async def save(
    client: httpx.AsyncClient, path: str, state: dict[str, Any], version: int
) -> httpx.Response:
    return await client.put(
        path, json={"state": state}, headers={**OWNER, "If-Match": f'"{version}"'}
    )


async def patch(
    client: httpx.AsyncClient,
    path: str,
    operations: list[dict[str, Any]],
    version: int | str,
    **headers: str,
) -> httpx.Response:
    return await client.patch(
        path,
        content=json.dumps(operations),
        headers={**OWNER, **PATCH_TYPE, "If-Match": f'"{version}"', **headers},
    )


async def test_a_new_project_has_an_empty_timeline_at_version_zero(
    client: httpx.AsyncClient,
) -> None:
    """Before the first save the timeline is empty, version 0, ETag "0"."""
    path = await new_project(client)
    response = await client.get(path, headers=OWNER)
    assert response.status_code == 200
    assert response.headers["ETag"] == '"0"'
    body = response.json()
    assert body["version"] == 0
    assert body["state"]["clips"] == []


async def test_save_then_load_returns_exactly_what_was_saved(client: httpx.AsyncClient) -> None:
    """A full save is read back identically (with defaults filled in), version 1."""
    path = await new_project(client)
    saved = await save(client, path, STATE, 0)
    assert saved.status_code == 200, saved.text
    assert saved.headers["ETag"] == '"1"'
    loaded = await client.get(path, headers=OWNER)
    assert loaded.json()["state"] == saved.json()["state"]
    assert [c["id"] for c in loaded.json()["state"]["clips"]] == ["c1", "c2", "c3"]
    assert loaded.json()["durationSec"] == 5.0


async def test_patch_autosave_applies_and_bumps_the_version(client: httpx.AsyncClient) -> None:
    """A small patch moves a clip; the state and version follow."""
    path = await new_project(client)
    await save(client, path, STATE, 0)
    response = await patch(
        client, path, [{"op": "replace", "path": "/clips/1/start", "value": 7.5}], 1
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    loaded = (await client.get(path, headers=OWNER)).json()
    assert loaded["state"]["clips"][1]["start"] == 7.5
    assert loaded["state"] == response.json()["state"]


async def test_a_stale_patch_is_refused_and_changes_nothing(client: httpx.AsyncClient) -> None:
    """A patch based on an old version that changes what was changed since gets 412 with
    the current version; nothing changes."""
    path = await new_project(client)
    await save(client, path, STATE, 0)
    await patch(client, path, [{"op": "replace", "path": "/clips/0/start", "value": 0.5}], 1)
    before = (await client.get(path, headers=OWNER)).json()

    stale = await patch(client, path, [{"op": "remove", "path": "/clips/0"}], 1)

    assert stale.status_code == 412
    assert stale.json()["error"]["details"]["currentVersion"] == 2
    assert (await client.get(path, headers=OWNER)).json() == before


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "replace", "path": "/clips/1/start", "value": 1.0}],  # overlaps c1
        [{"op": "replace", "path": "/clips/0/sourceOut", "value": 5.0}],  # out before in
        [{"op": "add", "path": "/clips/-", "value": clip("c1", 20.0)}],  # duplicate id
        [{"op": "replace", "path": "/clips/0/trackId", "value": "nope"}],
        [{"op": "replace", "path": "/clips/0/start", "value": -1}],
        [{"op": "add", "path": "/clips/0/$where", "value": 1}],
        [{"op": "remove", "path": "/clips/9"}],
        [{"op": "jump", "path": "/clips"}],
    ],
)
async def test_an_invalid_result_is_refused_and_stores_nothing(
    client: httpx.AsyncClient,
    mongo: MongoClient[dict[str, Any]],
    settings: Settings,
    operations: list[dict[str, Any]],
) -> None:
    """A patch whose result breaks a rule (overlap, trim order, ids, negative time, unsafe
    keys) or that does not apply gets 422; no revision, same state."""
    path = await new_project(client)
    await save(client, path, STATE, 0)
    response = await patch(client, path, operations, 1)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    loaded = await client.get(path, headers=OWNER)
    assert loaded.headers["ETag"] == '"1"'
    assert len(recorded(mongo[settings.database_name])) == 1


async def test_a_repeated_idempotency_key_applies_once(
    client: httpx.AsyncClient, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """A retried autosave with the same Idempotency-Key gets the first response and adds
    no second revision; the same key with another patch is refused."""
    path = await new_project(client)
    await save(client, path, STATE, 0)
    move = [{"op": "replace", "path": "/clips/1/start", "value": 9.0}]
    first = await patch(client, path, move, 1, **{"Idempotency-Key": "autosave-42"})
    again = await patch(client, path, move, 1, **{"Idempotency-Key": "autosave-42"})
    assert first.status_code == again.status_code == 200
    assert again.json()["state"] == first.json()["state"]
    assert again.headers["ETag"] == first.headers["ETag"] == '"2"'
    assert len(recorded(mongo[settings.database_name])) == 2
    other = [{"op": "replace", "path": "/clips/1/start", "value": 11.0}]
    reused = await patch(client, path, other, 1, **{"Idempotency-Key": "autosave-42"})
    assert reused.status_code == 422


async def test_a_key_sent_many_times_at_once_applies_once(
    client: httpx.AsyncClient, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """Eight copies of one keyed autosave at once (a client retrying over a flaky
    network), with `If-Match: *` so no version check stops a second application: one
    revision; each copy gets that change's answer (a copy whose commit lost to another
    finds the key on the head that won)."""
    path = await new_project(client)
    await save(client, path, STATE, 0)
    add = [{"op": "add", "path": "/clips/-", "value": clip("c9", 30.0)}]
    key = {"Idempotency-Key": "autosave-burst", "If-Match": "*"}
    answers = await asyncio.gather(*(patch(client, path, add, 1, **key) for _ in range(8)))
    assert {answer.status_code for answer in answers} == {200}, [a.text for a in answers]
    assert {answer.headers["ETag"] for answer in answers} == {'"2"'}
    assert len({json.dumps(answer.json(), sort_keys=True) for answer in answers}) == 1
    assert len(recorded(mongo[settings.database_name])) == 2
    again = await patch(client, path, add, 1, **key)
    assert again.status_code == 200, again.text
    assert again.headers["ETag"] == '"2"'
    assert [c["id"] for c in again.json()["state"]["clips"]].count("c9") == 1


async def test_a_replica_saving_after_another_starts_from_the_head_they_wrote(
    client: httpx.AsyncClient,
    settings: Settings,
    mongo: MongoClient[dict[str, Any]],
) -> None:
    """Two replicas on one database, one editor moving between them. Each replica starts
    its next change from the head it committed last; a head the other replica (or a
    restore) moved on is read afresh: the change applies to the database's state, the
    client's current version is accepted and a stale one is 412."""
    path = await new_project(client)
    await save(client, path, STATE, 0)
    move = [{"op": "replace", "path": "/clips/1/start", "value": 9.0}]
    assert (await patch(client, path, move, 1)).status_code == 200  # this replica: v2
    async with running_app(create_app(settings)) as other:
        add = [{"op": "add", "path": "/clips/-", "value": clip("c9", 30.0)}]
        assert (await patch(other, path, add, 2)).status_code == 200  # the other: v3
    marker = [{"op": "replace", "path": "/markers/0/label", "value": "Opening"}]
    saved = await patch(client, path, marker, 3)
    assert saved.status_code == 200, saved.text
    assert saved.headers["ETag"] == '"4"'
    assert [c["id"] for c in saved.json()["state"]["clips"]] == ["c1", "c2", "c3", "c9"]
    stale = await patch(client, path, marker, 3)  # the label version 4 changed
    assert stale.status_code == 412, stale.text

    # Rewritten outside the service at the same version (a restore of another copy).
    heads = mongo[settings.database_name]["timelines"]
    head = heads.find_one({"version": 4}) or {}
    heads.update_one(
        {"_id": head["_id"]},
        {"$set": {"state.markers.0.label": "Restored", "updatedAt": datetime.now(UTC)}},
    )
    colour = [{"op": "replace", "path": "/markers/0/color", "value": "blue"}]
    recoloured = await patch(client, path, colour, 4)
    assert recoloured.status_code == 200, recoloured.text
    assert recoloured.json()["state"]["markers"][0]["label"] == "Restored"


async def test_a_key_on_someone_elses_project_is_not_found(
    client: httpx.AsyncClient, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """An Idempotency-Key another user sends on this project is a 404, as every request on
    a project not theirs: not "already used", which would tell them it exists."""
    path = await new_project(client)
    await save(client, path, STATE, 0)
    move = [{"op": "replace", "path": "/clips/1/start", "value": 9.0}]
    key = {"Idempotency-Key": "autosave-7"}
    assert (await patch(client, path, move, 1, **key)).status_code == 200
    store = mongo[settings.database_name]
    heads = store["timelines"]
    before = (len(recorded(store)), heads.find_one({}))
    stranger = await client.patch(
        path,
        content=json.dumps([{"op": "replace", "path": "/clips/1/start", "value": 1.0}]),
        headers={"X-User-Id": "stranger", **PATCH_TYPE, "If-Match": '"2"', **key},
    )
    assert stranger.status_code == 404, stranger.text
    assert (len(recorded(store)), store["timelines"].find_one({})) == before


async def test_an_empty_patch_answers_the_current_state_and_records_nothing(
    client: httpx.AsyncClient, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """`[]` changes nothing: 200 with the current state and ETag, no revision (so undo
    still undoes the last real change), and a stale If-Match is still 412."""
    path = await new_project(client)
    await save(client, path, STATE, 0)
    database = mongo[settings.database_name]
    assert len(recorded(database)) == 1
    empty = await patch(client, path, [], 1)
    assert empty.status_code == 200, empty.text
    assert empty.headers["ETag"] == '"1"'
    assert empty.json() == (await client.get(path, headers=OWNER)).json()
    assert len(recorded(database)) == 1
    assert (await patch(client, path, [], 0)).status_code == 412
    history = await client.get(f"{path}/history", headers=OWNER)
    assert [item["version"] for item in history.json()["items"]] == [1]


async def test_twenty_edits_undone_and_redone_give_the_exact_states(
    client: httpx.AsyncClient,
) -> None:
    """20 edits, undone one by one back to the start, then redone to the end: every state
    in between is exactly the one the editor had; history lists all 63 versions."""
    path = await new_project(client)
    version = int((await save(client, path, STATE, 0)).headers["ETag"].strip('"'))
    states = [(await client.get(path, headers=OWNER)).json()["state"]]
    for step in range(20):
        operations: list[dict[str, Any]]
        if step % 4 == 0:
            operations = [
                {"op": "add", "path": "/clips/-", "value": clip(f"n{step}", 100.0 + step * 3)}
            ]
        elif step % 4 == 1:
            operations = [{"op": "remove", "path": "/clips/0"}]
        elif step % 4 == 2:
            operations = [{"op": "replace", "path": "/markers/0/label", "value": f"Take {step}"}]
        else:
            operations = [
                {"op": "add", "path": "/markers/-", "value": {"id": f"m{step}", "time": step}}
            ]
        response = await patch(client, path, operations, version)
        assert response.status_code == 200, response.text
        version += 1
        states.append(response.json()["state"])

    for expected in reversed(states[:-1]):
        undone = await client.post(f"{path}/undo", headers=OWNER)
        assert undone.status_code == 200, undone.text
        assert undone.json()["state"] == expected
    # The first save is a change too: undoing it gives the empty timeline; then nothing.
    empty = await client.post(f"{path}/undo", headers=OWNER)
    assert empty.json()["state"]["clips"] == []
    nothing = await client.post(f"{path}/undo", headers=OWNER)
    assert nothing.status_code == 409
    for expected in states:
        redone = await client.post(f"{path}/redo", headers=OWNER)
        assert redone.status_code == 200, redone.text
        assert redone.json()["state"] == expected
    final = await client.get(path, headers=OWNER)
    assert final.json()["state"] == states[-1]
    assert final.json()["canRedo"] is False
    assert (await client.post(f"{path}/redo", headers=OWNER)).status_code == 409

    history = await client.get(f"{path}/history", params={"limit": "200"}, headers=OWNER)
    items = history.json()["items"]
    assert [item["version"] for item in items] == list(range(63, 0, -1))
    assert {item["kind"] for item in items} == {"save", "patch", "undo", "redo"}

    for version_number, expected in ((1, states[0]), (11, states[10]), (21, states[20])):
        past = await client.get(f"{path}/versions/{version_number}", headers=OWNER)
        assert past.json()["state"] == expected


async def test_rollback_makes_a_new_version_equal_to_an_old_one(client: httpx.AsyncClient) -> None:
    """Rolling back to version 1 gives a new version with version 1's state; versions in
    between stay readable."""
    path = await new_project(client)
    first = (await save(client, path, STATE, 0)).json()["state"]
    await patch(client, path, [{"op": "remove", "path": "/clips/2"}], 1)
    await patch(client, path, [{"op": "replace", "path": "/markers/0/label", "value": "X"}], 2)

    rolled = await client.post(f"{path}/rollback", json={"version": 1}, headers=OWNER)

    assert rolled.status_code == 200, rolled.text
    assert rolled.headers["ETag"] == '"4"'
    assert rolled.json()["state"] == first
    second = await client.get(f"{path}/versions/2", headers=OWNER)
    assert len(second.json()["state"]["clips"]) == 2
    undone = await client.post(f"{path}/undo", headers=OWNER)
    assert undone.json()["state"]["markers"][0]["label"] == "X"  # the rollback is undoable


async def test_writes_need_a_version_and_star_means_any(client: httpx.AsyncClient) -> None:
    """Without If-Match a save or patch is 428; `If-Match: *` saves over any version."""
    path = await new_project(client)
    missing = await client.put(path, json={"state": STATE}, headers=OWNER)
    assert missing.status_code == 428
    missing_patch = await client.patch(path, content="[]", headers={**OWNER, **PATCH_TYPE})
    assert missing_patch.status_code == 428
    star = await client.put(path, json={"state": STATE}, headers={**OWNER, "If-Match": "*"})
    assert star.status_code == 200
    assert star.headers["ETag"] == '"1"'


async def test_another_users_timeline_is_not_found(client: httpx.AsyncClient) -> None:
    """User B can neither read nor change user A's timeline: 404, and A's stays as it was."""
    path = await new_project(client)
    await save(client, path, STATE, 0)
    intruder = {"X-User-Id": "someone-else"}
    assert (await client.get(path, headers=intruder)).status_code == 404
    put = await client.put(path, json={"state": {}}, headers={**intruder, "If-Match": "*"})
    assert put.status_code == 404
    assert (await client.post(f"{path}/undo", headers=intruder)).status_code == 404
    assert (await client.get(f"{path}/history", headers=intruder)).status_code == 404
    assert (await client.get(path, headers=OWNER)).headers["ETag"] == '"1"'


async def test_an_oversized_state_is_413_and_stores_nothing(
    app_settings_small: httpx.AsyncClient,
) -> None:
    """A save past SNIPIX_TIMELINE_MAX_BYTES gets 413 with a clear message."""
    client = app_settings_small
    path = await new_project(client)
    big = {**STATE, "markers": [{"id": f"m{n}", "time": n, "label": "x" * 400} for n in range(40)]}
    response = await save(client, path, big, 0)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]
    assert (await client.get(path, headers=OWNER)).headers["ETag"] == '"0"'


async def test_history_pages_newest_first(client: httpx.AsyncClient) -> None:
    """History pages walk every revision once, newest first, with labels and authors."""
    path = await new_project(client)
    await save(client, path, STATE, 0)
    for version in range(1, 5):
        await patch(
            client,
            path,
            [{"op": "replace", "path": "/markers/0/time", "value": float(version)}],
            version,
            **{"X-Change-Label": f"nudge {version}"},
        )
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{path}/history", params=params, headers=OWNER)).json()
        seen += [item["version"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [5, 4, 3, 2, 1]
    newest = (await client.get(f"{path}/history", headers=OWNER)).json()["items"][0]
    assert newest["label"] == "nudge 4"
    assert newest["authorId"] == "editor-1"
    assert newest["undoable"] is True
    assert newest["opCount"] == 1


async def test_otio_export_is_a_valid_document_and_imports_back(
    client: httpx.AsyncClient,
) -> None:
    """Export gives an OpenTimelineIO document that the otio library reads (tracks, clips,
    trims); importing it into another project reproduces the same state."""
    path = await new_project(client)
    saved = (await save(client, path, STATE, 0)).json()["state"]

    exported = await client.get(f"{path}/export", params={"format": "otio"}, headers=OWNER)

    assert exported.status_code == 200
    timeline = otio.adapters.read_from_string(exported.text, "otio_json")
    assert len(timeline.tracks) >= 2
    clips = list(timeline.find_clips())
    assert len(clips) == 3
    assert clips[0].source_range.start_time.to_seconds() == pytest.approx(10.0)
    old = await client.get(f"{path}/export", params={"version": "0"}, headers=OWNER)
    assert list(otio.adapters.read_from_string(old.text, "otio_json").find_clips()) == []

    other = await new_project(client)
    imported = await client.post(
        f"{other}/import", content=exported.content, headers={**OWNER, "If-Match": '"0"'}
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["timeline"]["state"] == saved
    assert imported.json()["unmapped"] == []
    history = (await client.get(f"{other}/history", headers=OWNER)).json()["items"]
    assert history[0]["kind"] == "import"


async def test_a_broken_otio_file_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    """Importing something that is not OTIO gets 422 and the timeline stays at version 0."""
    path = await new_project(client)
    response = await client.post(f"{path}/import", content=b'{"not": "otio"}', headers=OWNER)
    assert response.status_code == 422
    assert (await client.get(path, headers=OWNER)).headers["ETag"] == '"0"'


async def test_edl_export_parses_back_and_says_what_it_could_not_carry(
    client: httpx.AsyncClient,
) -> None:
    """An EDL of a video + audio timeline: the video cuts at the same frames, read back by
    the same adapter; the audio track it cannot hold is named in X-Unmapped."""
    path = await new_project(client)
    await save(client, path, STATE, 0)

    exported = await client.get(f"{path}/export", params={"format": "edl"}, headers=OWNER)

    assert exported.status_code == 200, exported.text
    assert exported.headers["Content-Disposition"].endswith('-v1.edl"')
    back = otio.adapters.read_from_string(exported.text, "cmx_3600", rate=30)
    assert [
        (c.range_in_parent().start_time.value, c.range_in_parent().duration.value)
        for c in back.find_clips()
    ] == [(0, 60), (90, 60)]
    unmapped = json.loads(exported.headers["X-Unmapped"])
    assert "audio track #2 with 1 clip(s): an EDL holds one video track" in unmapped
    assert exported.headers["X-Unmapped-Count"] == str(len(unmapped))


async def test_fcp_xml_round_trips_through_the_api(client: httpx.AsyncClient) -> None:
    """Final Cut Pro 7 XML out of one project and into another by its Content-Type: the
    same tracks and clips at the same times."""
    path = await new_project(client)
    saved = (await save(client, path, STATE, 0)).json()["state"]
    exported = await client.get(f"{path}/export", params={"format": "fcp-xml"}, headers=OWNER)
    assert exported.status_code == 200
    assert exported.headers["Content-Type"].startswith("application/xml")

    other = await new_project(client)
    imported = await client.post(
        f"{other}/import",
        content=exported.content,
        headers={**OWNER, "Content-Type": "application/xml", "If-Match": '"0"'},
    )

    assert imported.status_code == 200, imported.text
    state = imported.json()["timeline"]["state"]
    assert [t["kind"] for t in state["tracks"]] == ["video", "audio"]
    assert [(c["start"], c["sourceIn"], c["sourceOut"]) for c in state["clips"]] == [
        (c["start"], c["sourceIn"], c["sourceOut"]) for c in saved["clips"]
    ]
    history = (await client.get(f"{other}/history", headers=OWNER)).json()["items"]
    assert history[0]["label"] == "Import from Final Cut Pro 7 XML"


async def test_a_file_of_another_format_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    """An EDL posted as Final Cut X XML, and broken XML: 422 naming the format and where;
    the timeline stays at version 0."""
    path = await new_project(client)
    edl = b"TITLE: cut\n001  AX V C 00:00:00:00 00:00:01:00 00:00:00:00 00:00:01:00\n"

    wrong = await client.post(
        f"{path}/import", params={"format": "fcpxml"}, content=edl, headers=OWNER
    )
    broken = await client.post(
        f"{path}/import",
        content=b"<xmeml version='5'>\n<sequence>",
        headers={**OWNER, "Content-Type": "text/xml"},
    )

    assert wrong.status_code == 422
    assert "Final Cut Pro X XML" in wrong.json()["error"]["message"]
    assert "line 1" in wrong.json()["error"]["message"]
    assert broken.status_code == 422
    assert "Final Cut Pro 7 XML" in broken.json()["error"]["message"]
    assert "line 2" in broken.json()["error"]["message"]
    assert (await client.get(path, headers=OWNER)).headers["ETag"] == '"0"'


async def test_purging_a_project_removes_its_timeline_history(
    client: httpx.AsyncClient, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """A purged project's timeline, revisions and snapshots are gone for good."""
    path = await new_project(client)
    await save(client, path, STATE, 0)
    await patch(client, path, [{"op": "remove", "path": "/clips/0"}], 1)
    project = path.removesuffix("/timeline")
    await client.delete(project, headers=OWNER)
    admin = {"X-User-Id": "ops", "X-User-Roles": "admin"}
    purged = await client.delete(
        project.replace("/api/v1/projects", "/api/v1/admin/projects"), headers=admin
    )
    assert purged.status_code == 200, purged.text
    # The save's revision was stored; the autosave's was still carried by the head.
    assert purged.json()["deleted"]["timeline_revisions"] == 1
    assert purged.json()["deleted"]["timelines"] == 1
    database = mongo[settings.database_name]
    for collection in ("timelines", "timeline_revisions", "timeline_snapshots"):
        assert database[collection].count_documents({}) == 0


async def test_an_autosave_can_skip_the_state_in_its_answer(client: httpx.AsyncClient) -> None:
    """With `Prefer: return=minimal` an autosave answers 204 with the new ETag only."""
    path = await new_project(client)
    await save(client, path, STATE, 0)
    move = [{"op": "replace", "path": "/clips/1/start", "value": 8.0}]
    response = await patch(client, path, move, 1, Prefer="return=minimal")
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["ETag"] == '"2"'
    assert response.headers["Preference-Applied"] == "return=minimal"
    loaded = await client.get(path, headers=OWNER)
    assert loaded.json()["state"]["clips"][1]["start"] == 8.0


async def test_autosaves_are_stored_in_batches_and_history_never_misses_one(
    client: httpx.AsyncClient, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """A whole-state save's revision is stored at once; autosaves' stay in the head until
    `STORE_EVERY` of them go to the revision collection in one batch. History, versions and
    undo see every one of them at every step."""
    database = mongo[settings.database_name]
    path = await new_project(client)
    await save(client, path, STATE, 0)
    assert database["timeline_revisions"].count_documents({}) == 1
    for version in range(1, STORE_EVERY + 1):
        start = 5.0 + version
        moved = await patch(
            client, path, [{"op": "replace", "path": "/clips/1/start", "value": start}], version
        )
        assert moved.status_code == 200, moved.text
        history = (await client.get(f"{path}/history", headers=OWNER)).json()
        assert [item["version"] for item in history["items"]] == list(range(version + 1, 0, -1))
        rebuilt = await client.get(f"{path}/versions/{version + 1}", headers=OWNER)
        assert rebuilt.json()["state"]["clips"][1]["start"] == start
        stored = database["timeline_revisions"].count_documents({})
        assert stored == (1 if version < STORE_EVERY else STORE_EVERY + 1)
    undone = await client.post(
        f"{path}/undo", headers={**OWNER, "If-Match": f'"{STORE_EVERY + 1}"'}
    )
    assert undone.status_code == 200, undone.text
    assert undone.json()["state"]["clips"][1]["start"] == 5.0 + STORE_EVERY - 1
    head = database["timelines"].find_one({})
    assert head is not None
    assert [revision["version"] for revision in head["recent"]] == [STORE_EVERY + 2]
