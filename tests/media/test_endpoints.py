"""Media through HTTP, as the original web app uses it: upload, play (with seeking), trim.

Every test runs the real app on its own database and its own media root; videos are real
files made by ffmpeg (`conftest.videos`), and what the service writes is checked on disk and
with ffprobe.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from pymongo import MongoClient

from snipix.app import create_app
from snipix.cli.retention import sweep as cli_retention
from snipix.media import upload as upload_module
from snipix.media.schemas import MAX_SEGMENTS
from snipix.settings import Settings
from tests.media.conftest import DURATION_SEC, Videos, probe
from tests.support import running_app, wait_until

Json = dict[str, Any]
ALICE = "alice"
BOB = "bob"
# Uploads: the probed duration of a 4 s clip; trims: audio frames overhang a cut by ~23 ms.
TOLERANCE_SEC = 0.1


def who(user: str = ALICE, **extra: str) -> dict[str, str]:
    return {"X-User-Id": user, **extra}


async def create_project(client: httpx.AsyncClient, user: str = ALICE) -> str:
    response = await client.post("/api/v1/projects", json={"name": "Clip"}, headers=who(user))
    assert response.status_code == 201, response.text
    project_id: str = response.json()["id"]
    return project_id


async def project(client: httpx.AsyncClient, project_id: str, user: str = ALICE) -> Json:
    response = await client.get(f"/api/v1/projects/{project_id}", headers=who(user))
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def multipart(fields: list[tuple[str, bytes, str | None]]) -> tuple[bytes, str]:
    """A multipart/form-data body with parts in the given order (name, content, filename)."""
    boundary = f"snipix-test-{uuid.uuid4().hex}"
    body = b""
    for name, content, filename in fields:
        disposition = f'form-data; name="{name}"'
        headers = f"Content-Disposition: {disposition}"
        if filename is not None:
            headers += f'; filename="{filename}"\r\nContent-Type: video/mp4'
        body += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def chunks(body: bytes, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def upload(
    client: httpx.AsyncClient,
    project_id: str,
    content: bytes,
    *,
    user: str = ALICE,
    filename: str = "holiday.mp4",
    streamed: bool = True,
) -> httpx.Response:
    """Upload as the web app does: `file` first, then `project_id` (FormData order)."""
    body, content_type = multipart(
        [("file", content, filename), ("project_id", project_id.encode(), None)]
    )
    # Streamed: chunked, no Content-Length, so the size limit must hold while reading.
    payload: bytes | AsyncIterator[bytes] = chunks(body) if streamed else body
    return await client.post(
        "/media/upload",
        content=payload,
        headers={**who(user), "Content-Type": content_type},
    )


async def uploaded(client: httpx.AsyncClient, videos: Videos, user: str = ALICE) -> str:
    project_id = await create_project(client, user)
    response = await upload(client, project_id, videos.mp4.read_bytes(), user=user)
    assert response.status_code == 200, response.text
    return project_id


async def trim(
    client: httpx.AsyncClient, project_id: str, segments: list[tuple[float, float]], **kw: str
) -> httpx.Response:
    body = {
        "project_id": project_id,
        "segments": [{"startTime": start, "duration": length} for start, length in segments],
    }
    return await client.post("/media/trim-video", json=body, headers=who(**kw))


def stored_files(settings: Settings) -> list[Path]:
    root = settings.media_root
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def media_files(settings: Settings) -> list[Path]:
    """Stored media, without the link-signing key."""
    return [p for p in stored_files(settings) if not p.name.startswith(".url-signing-key")]


def assert_envelope_error(response: httpx.Response, status: int, code: str) -> Json:
    assert response.status_code == status, response.text
    body: Json = response.json()
    assert body["success"] is False
    assert body["code"] == code
    assert body["error"]
    return body


@pytest.fixture
def no_ffmpeg_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "ffmpeg_path": str(tmp_path / "missing" / "ffmpeg"),
            "ffprobe_path": str(tmp_path / "missing" / "ffprobe"),
        }
    )


# --- upload ------------------------------------------------------------------------------


@pytest.mark.process
async def test_upload_then_the_project_shows_the_video(
    client: httpx.AsyncClient, videos: Videos, settings: Settings
) -> None:
    """After an upload the project has the video's duration, size, picture and a thumbnail."""
    project_id = await create_project(client)
    content = videos.mp4.read_bytes()

    response = await upload(client, project_id, content)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["error"] is None
    data = body["data"]
    assert data["project_id"] == project_id
    assert data["file_path"] == f"/media/{project_id}/video"
    assert data["duration"] == pytest.approx(DURATION_SEC, abs=TOLERANCE_SEC)

    shown = await project(client, project_id)
    media = shown["media"]
    assert shown["version"] == 2
    assert media["source"] == f"/media/{project_id}/video"
    assert media["durationSec"] == pytest.approx(DURATION_SEC, abs=TOLERANCE_SEC)
    assert media["sizeBytes"] == len(content)
    assert media["mimeType"] == "video/mp4"
    assert (media["width"], media["height"], media["fps"]) == (160, 120, 25)
    assert media["thumbnail"] == f"/media/{project_id}/thumbnail"
    assert media["sourceFile"].startswith(f"{project_id}/")
    # The file is stored whole, under a new name, in the project's folder of the media root.
    stored = settings.media_root / media["sourceFile"]
    assert stored.read_bytes() == content
    assert stored.name != "holiday.mp4"
    assert list((settings.media_root / ".incoming").iterdir()) == []

    audit = await client.get(f"/api/v1/projects/{project_id}/audit", headers=who())
    actions = [entry["action"] for entry in audit.json()["items"]]
    assert actions[0] == "project.updated"


@pytest.mark.process
async def test_the_video_and_thumbnail_are_served_to_the_owner(
    client: httpx.AsyncClient, videos: Videos
) -> None:
    """The owner gets the exact uploaded bytes back, and a JPEG thumbnail."""
    project_id = await uploaded(client, videos)

    video = await client.get(f"/media/{project_id}/video", headers=who())
    assert video.status_code == 200
    assert video.content == videos.mp4.read_bytes()
    assert video.headers["content-type"] == "video/mp4"
    assert video.headers["accept-ranges"] == "bytes"

    thumbnail = await client.get(f"/media/{project_id}/thumbnail", headers=who())
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert thumbnail.content[:3] == b"\xff\xd8\xff"


@pytest.mark.process
async def test_upload_in_any_field_order_works(client: httpx.AsyncClient, videos: Videos) -> None:
    """A client that sends project_id before the file (httpx, curl -F) works too."""
    project_id = await create_project(client)
    response = await client.post(
        "/media/upload",
        data={"project_id": project_id},
        files={"file": ("clip.mp4", videos.mp4.read_bytes(), "video/mp4")},
        headers=who(),
    )
    assert response.status_code == 200, response.text
    assert (await project(client, project_id))["media"]["sizeBytes"] == videos.mp4.stat().st_size


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "declared-length"])
async def test_upload_over_the_limit_is_413_and_nothing_is_kept(
    settings: Settings, videos: Videos, streamed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A video over SNIPIX_MEDIA_MAX_BYTES is refused and no partial file stays behind."""
    # Write to disk every 4 KiB (not 1 MiB), so the refused upload has started a file.
    monkeypatch.setattr(upload_module, "_FLUSH_BYTES", 4_096)
    started: list[Path] = []
    create = upload_module._create

    def spy(path: Path) -> IO[bytes]:
        started.append(path)
        return create(path)

    monkeypatch.setattr(upload_module, "_create", spy)
    limited = settings.model_copy(update={"media_max_bytes": 20_000})
    async with running_app(create_app(limited)) as client:
        project_id = await create_project(client)
        response = await upload(client, project_id, videos.mp4.read_bytes(), streamed=streamed)

        body = assert_envelope_error(response, 413, "too_large")
        assert body["details"] == {"maxBytes": 20_000}
        # Streamed: a partial file was being written, and is gone. With a Content-Length
        # over the limit, nothing was even read.
        assert len(started) == (1 if streamed else 0)
        assert media_files(limited) == []
        shown = await project(client, project_id)
        assert shown["media"] is None
        assert shown["version"] == 1


async def test_a_text_file_named_mp4_is_415_and_nothing_is_stored(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """The name and declared type do not make a video: the content decides."""
    project_id = await create_project(client)
    text = b"Dear diary, today I renamed a text file to .mp4.\n" * 200

    response = await upload(client, project_id, text, filename="movie.mp4")

    assert_envelope_error(response, 415, "unsupported_media_type")
    assert media_files(settings) == []
    assert (await project(client, project_id))["media"] is None


@pytest.mark.process
async def test_an_audio_only_file_is_415(
    client: httpx.AsyncClient, videos: Videos, settings: Settings
) -> None:
    """An MP4 holding only sound passes the container check but has no picture: 415."""
    project_id = await create_project(client)
    response = await upload(client, project_id, videos.audio_mp4.read_bytes())
    body = assert_envelope_error(response, 415, "unsupported_media_type")
    assert "no video stream" in body["error"]
    assert media_files(settings) == []


@pytest.mark.parametrize(
    ("parts", "status", "code"),
    [
        pytest.param([("project_id", b"x", None)], 422, "validation_error", id="no-file"),
        pytest.param([("file", b"", "a.mp4")], 415, "unsupported_media_type", id="empty-file"),
        pytest.param(
            [("file", b"x", "a.mp4"), ("title", b"x", None)],
            415,
            "unsupported_media_type",
            id="not-a-video-first",
        ),
        pytest.param(
            [("project_id", b"p", None), ("title", b"x", None)],
            422,
            "validation_error",
            id="unknown-field",
        ),
    ],
)
async def test_malformed_uploads_are_refused(
    client: httpx.AsyncClient,
    settings: Settings,
    parts: list[tuple[str, bytes, str | None]],
    status: int,
    code: str,
) -> None:
    """Missing file, empty file or unexpected fields: a clear error, nothing stored."""
    body, content_type = multipart(parts)
    response = await client.post(
        "/media/upload", content=body, headers={**who(), "Content-Type": content_type}
    )
    assert_envelope_error(response, status, code)
    assert media_files(settings) == []


async def test_upload_without_multipart_is_415(client: httpx.AsyncClient) -> None:
    """A raw body (not multipart/form-data) is refused with what to send instead."""
    response = await client.post(
        "/media/upload", content=b"\x00" * 100, headers={**who(), "Content-Type": "video/mp4"}
    )
    body = assert_envelope_error(response, 415, "unsupported_media_type")
    assert "multipart/form-data" in body["error"]


async def test_upload_to_someone_elses_project_is_404_and_nothing_is_kept(
    client: httpx.AsyncClient, videos: Videos, settings: Settings
) -> None:
    """Bob cannot attach a video to Alice's project, nor learn that it exists."""
    project_id = await create_project(client, ALICE)
    response = await upload(client, project_id, videos.mp4.read_bytes(), user=BOB)
    assert_envelope_error(response, 404, "not_found")
    assert media_files(settings) == []
    assert (await project(client, project_id))["media"] is None


async def test_upload_needs_an_identity(client: httpx.AsyncClient, videos: Videos) -> None:
    """An anonymous upload is 401 before a byte of it is stored."""
    body, content_type = multipart([("file", videos.mp4.read_bytes(), "a.mp4")])
    response = await client.post(
        "/media/upload", content=body, headers={"Content-Type": content_type}
    )
    assert_envelope_error(response, 401, "unauthorized")


# --- playing -----------------------------------------------------------------------------


@pytest.mark.process
async def test_range_requests_get_exactly_the_bytes_asked_for(
    client: httpx.AsyncClient, videos: Videos
) -> None:
    """Seeking works: a byte range answers 206 with exactly those bytes and Content-Range."""
    project_id = await uploaded(client, videos)
    content = videos.mp4.read_bytes()
    size = len(content)
    url = f"/media/{project_id}/video"

    middle = await client.get(url, headers=who(Range="bytes=1000-1999"))
    assert middle.status_code == 206
    assert middle.content == content[1000:2000]
    assert middle.headers["content-range"] == f"bytes 1000-1999/{size}"
    assert middle.headers["content-length"] == "1000"

    tail = await client.get(url, headers=who(Range="bytes=-100"))
    assert tail.status_code == 206
    assert tail.content == content[-100:]

    open_ended = await client.get(url, headers=who(Range=f"bytes={size - 10}-"))
    assert open_ended.status_code == 206
    assert open_ended.content == content[-10:]

    beyond = await client.get(url, headers=who(Range=f"bytes={size}-{size + 100}"))
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"


@pytest.mark.process
async def test_another_user_gets_404_for_video_thumbnail_and_links(
    client: httpx.AsyncClient, videos: Videos
) -> None:
    """Bob cannot read Alice's video, thumbnail or links; the answer does not confirm them."""
    project_id = await uploaded(client, videos, ALICE)
    for path in ("video", "video/trimmed", "thumbnail", "links"):
        response = await client.get(f"/media/{project_id}/{path}", headers=who(BOB))
        assert_envelope_error(response, 404, "not_found")
    trimmed = await trim(client, project_id, [(0, 1)], user=BOB)
    assert_envelope_error(trimmed, 404, "not_found")


@pytest.mark.process
async def test_files_of_another_project_cannot_be_pointed_at(
    client: httpx.AsyncClient, videos: Videos
) -> None:
    """Writing another project's file name into your own media serves nothing."""
    alices = await uploaded(client, videos, ALICE)
    stolen = (await project(client, alices))["media"]["sourceFile"]
    bobs = await create_project(client, BOB)
    response = await client.patch(
        f"/api/v1/projects/{bobs}",
        json={"media": {"sourceFile": stolen}},
        headers=who(BOB, **{"If-Match": '"1"'}),
    )
    assert response.status_code == 200, response.text
    served = await client.get(f"/media/{bobs}/video", headers=who(BOB))
    assert_envelope_error(served, 404, "not_found")


async def test_a_project_without_a_video_is_404(client: httpx.AsyncClient) -> None:
    """Before any upload there is nothing to play, trim or show."""
    project_id = await create_project(client)
    for path in ("video", "video/trimmed", "thumbnail"):
        response = await client.get(f"/media/{project_id}/{path}", headers=who())
        assert_envelope_error(response, 404, "not_found")
    assert_envelope_error(await trim(client, project_id, [(0, 1)]), 404, "not_found")


@pytest.mark.process
async def test_signed_links_play_without_a_header(
    client: httpx.AsyncClient, videos: Videos
) -> None:
    """A <video src> can play a signed link with no Authorization header, and only that."""
    project_id = await uploaded(client, videos)
    other = await uploaded(client, videos)
    response = await client.get(f"/media/{project_id}/links", headers=who())
    assert response.status_code == 200, response.text
    links = response.json()["data"]
    assert links["trimmed_video_url"] is None
    video_url = links["video_url"]
    assert video_url.startswith(f"/media/{project_id}/video?token=")

    played = await client.get(video_url, headers={"Range": "bytes=0-99"})
    assert played.status_code == 206
    assert played.content == videos.mp4.read_bytes()[:100]
    thumbnail = await client.get(links["thumbnail_url"])
    assert thumbnail.status_code == 200

    token = video_url.split("token=", 1)[1]
    wrong_project = await client.get(f"/media/{other}/video?token={token}")
    assert_envelope_error(wrong_project, 401, "unauthorized")
    forged = await client.get(f"/media/{project_id}/video?token={token[:-4]}AAAA")
    assert_envelope_error(forged, 401, "unauthorized")
    anonymous = await client.get(f"/media/{project_id}/video")
    assert_envelope_error(anonymous, 401, "unauthorized")


# --- trimming ----------------------------------------------------------------------------


@pytest.mark.process
async def test_trim_makes_a_playable_video_of_the_kept_segments(
    client: httpx.AsyncClient, videos: Videos, tmp_path: Path
) -> None:
    """Keeping seconds 0-1 and 2-3.5 gives a 2.5 s video that plays; the original stays."""
    project_id = await uploaded(client, videos)

    response = await trim(client, project_id, [(0, 1), (2, 1.5)])

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["trimmed_video_path"] == f"/media/{project_id}/video/trimmed"
    assert data["new_duration"] == pytest.approx(2.5, abs=TOLERANCE_SEC)

    rendered = await client.get(data["trimmed_video_path"], headers=who())
    assert rendered.status_code == 200
    assert rendered.headers["accept-ranges"] == "bytes"
    copy = tmp_path / "trimmed.mp4"
    copy.write_bytes(rendered.content)
    duration, streams = probe(copy)
    assert duration == pytest.approx(2.5, abs=TOLERANCE_SEC)
    assert "video" in streams

    media = (await project(client, project_id))["media"]
    assert media["trimmedSource"] == f"/media/{project_id}/video/trimmed"
    assert media["trimmedDurationSec"] == pytest.approx(2.5, abs=TOLERANCE_SEC)
    original = await client.get(f"/media/{project_id}/video", headers=who())
    assert original.content == videos.mp4.read_bytes()


@pytest.mark.process
async def test_a_new_trim_replaces_the_previous_render(
    client: httpx.AsyncClient, videos: Videos, settings: Settings
) -> None:
    """Trimming again (the web app does it on every save) keeps one render, the newest."""
    project_id = await uploaded(client, videos)
    assert (await trim(client, project_id, [(0, 3)])).status_code == 200
    first = (await project(client, project_id))["media"]["trimmedFile"]
    second = await trim(client, project_id, [(1, 1)])
    assert second.json()["data"]["new_duration"] == pytest.approx(1, abs=TOLERANCE_SEC)
    media = (await project(client, project_id))["media"]
    assert media["trimmedFile"] != first
    assert not (settings.media_root / first).exists()
    assert (settings.media_root / media["trimmedFile"]).exists()


@pytest.mark.process
async def test_concurrent_trims_of_different_projects_do_not_interfere(
    client: httpx.AsyncClient, videos: Videos, tmp_path: Path
) -> None:
    """Two trims at once each produce their own project's cut, of its own length."""
    first = await uploaded(client, videos)
    second = await uploaded(client, videos)

    one, three = await asyncio.gather(
        trim(client, first, [(1, 1)]),
        trim(client, second, [(0, 1), (1, 1), (3, 1)]),
    )

    assert one.status_code == 200, one.text
    assert three.status_code == 200, three.text
    assert one.json()["data"]["new_duration"] == pytest.approx(1, abs=TOLERANCE_SEC)
    assert three.json()["data"]["new_duration"] == pytest.approx(3, abs=TOLERANCE_SEC)
    for project_id, expected in ((first, 1), (second, 3)):
        rendered = await client.get(f"/media/{project_id}/video/trimmed", headers=who())
        copy = tmp_path / f"{project_id}.mp4"
        copy.write_bytes(rendered.content)
        assert probe(copy)[0] == pytest.approx(expected, abs=TOLERANCE_SEC)


@pytest.mark.parametrize(
    ("segments", "where"),
    [
        pytest.param([(3.5, 2)], "segments.0", id="past-the-end"),
        pytest.param([(0, 1), (5, 1)], "segments.1", id="second-past-the-end"),
        pytest.param([(-1, 1)], "segments.0.startTime", id="negative-start"),
        pytest.param([(0, 0)], "segments.0.duration", id="empty-segment"),
        pytest.param([], "segments", id="no-segments"),
        pytest.param([(0, 0.001)] * (MAX_SEGMENTS + 1), "segments", id="too-many"),
    ],
)
@pytest.mark.process
async def test_invalid_segments_are_422(
    client: httpx.AsyncClient,
    videos: Videos,
    settings: Settings,
    segments: list[tuple[float, float]],
    where: str,
) -> None:
    """Segments must be positive, inside the video and not absurdly many."""
    project_id = await uploaded(client, videos)
    before = media_files(settings)
    response = await trim(client, project_id, segments)
    body = assert_envelope_error(response, 422, "validation_error")
    assert where in body["error"]
    assert media_files(settings) == before


@pytest.mark.process
async def test_a_trim_that_takes_too_long_is_stopped_and_leaves_nothing(
    settings: Settings, videos: Videos
) -> None:
    """Past SNIPIX_MEDIA_JOB_TIMEOUT_S ffmpeg is killed: 503, no file, the project unchanged."""
    async with running_app(create_app(settings)) as client:
        project_id = await uploaded(client, videos)
        before = await project(client, project_id)
    impatient = settings.model_copy(update={"media_job_timeout_s": 0.001})
    async with running_app(create_app(impatient)) as client:
        response = await trim(client, project_id, [(0, 2)])
        body = assert_envelope_error(response, 503, "media_timeout")
        assert "longer than" in body["error"]
        assert await project(client, project_id) == before
    incoming = settings.media_root / ".incoming"
    assert [p.name for p in incoming.iterdir()] == []


# --- without ffmpeg ----------------------------------------------------------------------


async def test_without_ffmpeg_uploads_work_and_trimming_is_501(
    no_ffmpeg_settings: Settings, videos: Videos
) -> None:
    """No ffmpeg on the server: the upload is kept with a null duration; trim says why not."""
    async with running_app(create_app(no_ffmpeg_settings)) as client:
        project_id = await create_project(client)
        response = await upload(client, project_id, videos.mp4.read_bytes())
        assert response.status_code == 200, response.text
        assert response.json()["data"]["duration"] is None

        media = (await project(client, project_id))["media"]
        assert media["durationSec"] is None
        assert media["thumbnail"] is None
        assert media["sizeBytes"] == videos.mp4.stat().st_size
        played = await client.get(f"/media/{project_id}/video", headers=who())
        assert played.content == videos.mp4.read_bytes()
        no_thumbnail = await client.get(f"/media/{project_id}/thumbnail", headers=who())
        assert_envelope_error(no_thumbnail, 404, "not_found")
        assert [p.name for p in (no_ffmpeg_settings.media_root / ".incoming").iterdir()] == []

        trimmed = await trim(client, project_id, [(0, 1)])
        body = assert_envelope_error(trimmed, 501, "not_implemented")
        assert "ffmpeg" in body["error"]


async def test_speech_routes_refuse_bad_input_in_the_envelope(client: httpx.AsyncClient) -> None:
    """The web app's transcription calls: a clear error for what they cannot work on."""
    no_form = await client.post("/media/transcribe", json={"project_id": "x"}, headers=who())
    assert "project_id" in assert_envelope_error(no_form, 422, "validation_error")["error"]
    project_id = await create_project(client)
    nothing = await client.post(
        "/media/remove-fillers", json={"project_id": project_id}, headers=who()
    )
    assert "selectedWords" in assert_envelope_error(nothing, 422, "validation_error")["error"]
    no_transcript = await client.post(
        "/media/remove-fillers", json={"project_id": project_id, "auto_detect": True}, headers=who()
    )
    assert_envelope_error(no_transcript, 404, "not_found")
    no_video = await client.post(
        "/media/transcribe", data={"project_id": project_id}, headers=who()
    )
    assert "upload" in assert_envelope_error(no_video, 409, "conflict")["error"]


# --- purge -------------------------------------------------------------------------------


@pytest.mark.process
async def test_purging_a_project_removes_its_media_files(
    client: httpx.AsyncClient, videos: Videos, settings: Settings
) -> None:
    """An admin purge deletes the project's video, thumbnail and trims; others' files stay."""
    doomed = await uploaded(client, videos)
    kept = await uploaded(client, videos)
    assert (await trim(client, doomed, [(0, 1)])).status_code == 200
    assert (settings.media_root / doomed).is_dir()

    deleted = await client.delete(f"/api/v1/projects/{doomed}", headers=who())
    assert deleted.status_code == 204
    assert (settings.media_root / doomed).is_dir()  # restorable until purged
    purged = await client.delete(
        f"/api/v1/admin/projects/{doomed}", headers=who("root", **{"X-User-Roles": "admin"})
    )
    assert purged.status_code == 200, purged.text

    assert not (settings.media_root / doomed).exists()
    assert (await client.get(f"/media/{kept}/video", headers=who())).status_code == 200


@pytest.mark.process
async def test_retention_purges_media_files_too(
    settings: Settings, videos: Videos, mongo: MongoClient[dict[str, Any]]
) -> None:
    """The service's retention sweep removes an expired project's media files."""
    sweeping = settings.model_copy(update={"retention_interval_s": 1, "retention_days": 1})
    async with running_app(create_app(settings)) as client:
        project_id = await uploaded(client, videos)
        assert (await client.delete(f"/api/v1/projects/{project_id}", headers=who())).is_success
    long_ago = datetime.now(UTC) - timedelta(days=2)
    mongo[settings.database_name]["projects"].update_one(
        {"_id": project_id}, {"$set": {"deletedAt": long_ago}}
    )
    folder = sweeping.media_root / project_id
    assert folder.is_dir()
    async with running_app(create_app(sweeping)):
        await asyncio.to_thread(
            wait_until, lambda: not folder.exists(), timeout_s=30, what="the retention sweep"
        )


async def test_openapi_documents_the_media_routes(client: httpx.AsyncClient) -> None:
    """The API description lists the media routes, the upload as a multipart body."""
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/media/upload",
        "/media/trim-video",
        "/media/{project_id}/video",
        "/media/{project_id}/video/trimmed",
        "/media/{project_id}/thumbnail",
        "/media/{project_id}/links",
    ):
        assert path in paths, path
    upload_body = paths["/media/upload"]["post"]["requestBody"]["content"]
    assert set(upload_body["multipart/form-data"]["schema"]["required"]) == {"file", "project_id"}
    assert "206" in paths["/media/{project_id}/video"]["get"]["responses"]


@pytest.mark.process
async def test_snipix_retention_run_purges_media_files_too(
    client: httpx.AsyncClient,
    settings: Settings,
    videos: Videos,
    mongo: MongoClient[dict[str, Any]],
) -> None:
    """`snipix retention run` removes an expired project's media files with it."""
    project_id = await uploaded(client, videos)
    assert (await client.delete(f"/api/v1/projects/{project_id}", headers=who())).is_success
    long_ago = datetime.now(UTC) - timedelta(days=settings.retention_days + 1)
    mongo[settings.database_name]["projects"].update_one(
        {"_id": project_id}, {"$set": {"deletedAt": long_ago}}
    )

    report = await cli_retention(settings, dry_run=False)

    assert report is not None
    assert [p["id"] for p in report.projects] == [project_id]
    assert not (settings.media_root / project_id).exists()
