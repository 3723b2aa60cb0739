"""/projects as the original web app calls it: its envelope and shapes, over the same
projects /api/v1 serves."""

from __future__ import annotations

from datetime import datetime

import httpx

from tests.compat.envelopes import OWNER, STRANGER, data, failure

PROJECT_FIELDS = {
    "_id",
    "name",
    "description",
    "user_id",
    "thumbnail",
    "video_path",
    "trimmed_video_path",
    "duration",
    "trimmed_duration",
    "status",
    "tags",
    "is_deleted",
    "deleted_at",
    "created_at",
    "updated_at",
    "createdAt",
    "updatedAt",
    "version",
}


async def test_a_created_project_has_the_original_shape_with_both_date_spellings(
    client: httpx.AsyncClient,
) -> None:
    """The upload page's new project comes back with `_id` and both createdAt and created_at."""
    response = await client.post(
        "/projects",
        json={"name": "Beach trip", "description": "Video uploaded on 1/2/2025", "extra": 1},
        headers=OWNER,
    )
    project = data(response)
    assert set(project) == PROJECT_FIELDS
    assert project["name"] == "Beach trip"
    assert project["description"] == "Video uploaded on 1/2/2025"
    assert project["user_id"] == "web-user"
    assert project["status"] == "active"
    assert project["is_deleted"] is False
    assert project["deleted_at"] is None
    assert project["createdAt"] == project["created_at"]
    assert project["updatedAt"] == project["updated_at"]
    assert project["created_at"].endswith("Z")
    datetime.fromisoformat(project["created_at"])
    same = await client.get(f"/api/v1/projects/{project['_id']}", headers=OWNER)
    assert same.status_code == 200
    assert same.json()["name"] == "Beach trip"


async def test_the_list_is_newest_update_first_with_or_without_a_trailing_slash(
    client: httpx.AsyncClient,
) -> None:
    """The project list shows the most recently changed project first."""
    ids = [
        data(await client.post("/projects/", json={"name": n}, headers=OWNER))["_id"] for n in "ABC"
    ]
    renamed = await client.put(f"/projects/{ids[0]}", json={"name": "A2"}, headers=OWNER)
    assert data(renamed)["name"] == "A2"
    for path in ("/projects", "/projects/"):
        listed = data(await client.get(path, headers=OWNER))
        assert [p["_id"] for p in listed] == [ids[0], ids[2], ids[1]]
    assert data(await client.get("/projects", headers=STRANGER)) == []


async def test_a_put_changes_the_video_fields_of_the_projects_media(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """Video path, durations and thumbnail land in the project's media; others stay."""
    response = await client.put(
        f"/projects/{project_id}",
        json={
            "video_path": "uploads/a.mp4",
            "duration": 0,
            "thumbnail": "thumbs/a.jpg",
            "trimmed_video_path": "uploads/a-trim.mp4",
            "trimmed_duration": 12.5,
            "_id": "ignored",
        },
        headers=OWNER,
    )
    project = data(response)
    assert (project["video_path"], project["duration"], project["thumbnail"]) == (
        "uploads/a.mp4",
        0,
        "thumbs/a.jpg",
    )
    assert (project["trimmed_video_path"], project["trimmed_duration"]) == (
        "uploads/a-trim.mp4",
        12.5,
    )
    assert project["name"] == "Wedding"
    assert project["version"] == 2
    media = (await client.get(f"/api/v1/projects/{project_id}", headers=OWNER)).json()["media"]
    assert media["source"] == "uploads/a.mp4"
    assert media["durationSec"] == 0
    assert media["trimmedDurationSec"] == 12.5
    again = data(await client.put(f"/projects/{project_id}", json={"name": "W"}, headers=OWNER))
    assert (again["name"], again["video_path"], again["duration"]) == ("W", "uploads/a.mp4", 0)
    unchanged = data(await client.put(f"/projects/{project_id}", json={}, headers=OWNER))
    assert unchanged["version"] == again["version"]


async def test_a_bad_value_is_refused_in_the_web_apps_failure_envelope(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """A negative duration is a 422 naming the web app's field."""
    response = await client.put(f"/projects/{project_id}", json={"duration": -1}, headers=OWNER)
    body = failure(response, 422)
    assert "duration" in body["error"]
    assert body["details"][0]["loc"] == ["body", "duration"]


async def test_another_users_project_is_not_found(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """Someone else's project is a 404 in the failure envelope, for reads and changes."""
    for method, path in (
        ("GET", f"/projects/{project_id}"),
        ("PUT", f"/projects/{project_id}"),
        ("DELETE", f"/projects/{project_id}"),
        ("POST", f"/projects/{project_id}/restore"),
    ):
        response = await client.request(method, path, json={"name": "x"}, headers=STRANGER)
        body = failure(response, 404)
        assert body["code"] == "not_found"
    assert data(await client.get(f"/projects/{project_id}", headers=OWNER))["name"] == "Wedding"


async def test_a_deleted_project_can_be_restored(
    client: httpx.AsyncClient, project_id: str
) -> None:
    """Delete hides the project (and lists it no more); restore brings it back."""
    assert data(await client.delete(f"/projects/{project_id}", headers=OWNER)) is None
    failure(await client.get(f"/projects/{project_id}", headers=OWNER), 404)
    assert data(await client.get("/projects", headers=OWNER)) == []
    assert data(await client.post(f"/projects/{project_id}/restore", headers=OWNER)) is None
    back = data(await client.get(f"/projects/{project_id}", headers=OWNER))
    assert back["is_deleted"] is False
    assert back["deleted_at"] is None
