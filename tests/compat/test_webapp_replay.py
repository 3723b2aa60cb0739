"""The original web app's own call sequence, replayed over HTTP against `snipix serve`.

Each request is the one a function of the web app (/tmp/webapp/src) sends, cited next to it:
same path, method, headers (`Authorization: Bearer` from `localStorage.auth_tokens`,
`Content-Type`, the dev server's `Origin`), body as `JSON.stringify` writes it, and a
browser's multipart for the upload. Each answer is checked for every field the web app
then reads, with the types its TypeScript declares (`tests/compat/webapp.py`).
"""

from __future__ import annotations

import copy
import time
from datetime import date
from pathlib import Path

import httpx
import jwt
import pytest

from snipix.media.links import MEDIA_COOKIE
from tests.compat.envelopes import data, failure
from tests.compat.webapp import (
    JWT_SECRET,
    WEB_ORIGIN,
    Json,
    WebApp,
    assert_same,
    check_date,
    check_project,
    check_timeline_document,
    check_tokens,
    check_user,
    convert_to_backend,
    date_now_ms,
    is_number,
    js_value,
    make_video,
    random36,
    shown_auth_error,
    snipix_service,
)
from tests.mail_server import SmtpCatcher
from tests.support import loopback_client

pytestmark = pytest.mark.process

EMAIL = "maya.editor@example.com"
NAME = "Maya Editor"
PASSWORD = "Sunset-Reel-2024"
ROUGH_CUT, FINAL_CUT = "Rough cut", "Final cut"


def sign_in(password: str, *, remember_me: bool = False) -> Json:
    """LoginPage's body (authService.login)."""
    return {"email": EMAIL, "password": password, "remember_me": remember_me}


def expired(access_token: str) -> str:
    """The same access token as the service signed it, 15 minutes later: expired."""
    claims = jwt.decode(access_token, options={"verify_signature": False})
    now = int(time.time())
    claims.update(iat=now - 1_000, exp=now - 100)
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256", headers={"typ": "at+jwt"})


def refreshed_after_expiry(
    web: WebApp, method: str, path: str, where: str
) -> tuple[Json, httpx.Response]:
    """apiService's response interceptor once the access token has expired: the request is
    refused (401, failure envelope), `authService.refreshToken` runs with the refresh token
    in localStorage (its apiClient still sends the expired access token as Bearer), the whole
    answer becomes `localStorage.auth_tokens`, and the request is sent again."""
    assert web.auth_tokens is not None
    web.auth_tokens["access_token"] = expired(web.auth_tokens["access_token"])
    refused = failure(web.api(method, path), 401)
    assert refused["error"], f"{where}: the web app reads `error` from a failure"
    # `parsedTokens.refresh_token || parsedTokens.refreshToken`: without one, /login.
    stored = web.auth_tokens.get("refresh_token")
    assert isinstance(stored, str), f"{where}: no refresh_token stored; the user is signed out"
    assert stored, f"{where}: no refresh_token stored; the user is signed out"
    new_tokens = check_tokens(
        data(web.auth("POST", "/refresh", {"refresh_token": stored})),
        email=EMAIL,
        name=NAME,
        where=f"{where} data",
    )
    assert new_tokens["refresh_token"] != stored, f"{where}: the refresh token must rotate"
    web.auth_tokens = dict(new_tokens)  # localStorage.setItem('auth_tokens', newTokens)
    return new_tokens, web.api(method, path)


def first_edit(project: Json, api_url: str) -> Json:
    """The timeline slice's state after TimelinePage made the main video layer and the user
    split it, faded it in, added a title, a muted music layer, an effect layer and a marker."""
    project_id, length = project["_id"], project["duration"]
    # TimelinePage "Create video layer if no main video layer exists".
    whole: Json = {
        "id": f"video-clip-{project_id}",
        "type": "video",
        "startTime": 0,
        "endTime": length,
        "duration": length,
        "originalStartTime": 0,
        "sourcePath": f"{api_url}/media/{project_id}/video",
        "content": project["name"],
        "properties": {"volume": 1.0, "speed": 1.0, "opacity": 1.0, "easing": "linear"},
        "keyframes": [],
    }
    # splitLayerAtPlayhead at 1.5 s: the first part keeps its endTime, the second is a copy.
    second = {
        **copy.deepcopy(whole),
        "id": f"{whole['id']}_split_{date_now_ms()}",
        "startTime": 1.5,
        "duration": (0 + length) - 1.5,
        "originalStartTime": 0 + (1.5 - 0),
    }
    second["properties"]["volume"] = 0  # the user muted the second half
    first = {**whole, "duration": 1.5 - 0, "originalStartTime": 0}
    # addKeyframe: a fade-in.
    first["keyframes"] = [
        {
            "id": f"keyframe_{date_now_ms()}",
            "time": 0,
            "property": "opacity",
            "value": 0,
            "easing": "ease-in",
        },
        {
            "id": f"keyframe_{date_now_ms() + 1}",
            "time": 1,
            "property": "opacity",
            "value": 1,
            "easing": "ease-out",
        },
    ]
    main: Json = {
        "id": f"video-layer-{project_id}",
        "name": "Video",
        "type": "video",
        "clips": [first, second],
        "isVisible": True,
        "isLocked": False,
        "isMuted": False,
        "order": 0,
        "isMainVideo": True,
    }
    # useTimelineOperations addLayer / addClip (ids `layer_<ms>_<rand9>`, `clip_<ms>_<rand9>`).
    title: Json = {
        "id": f"clip_{date_now_ms()}_{random36()}",
        "type": "text",
        "startTime": 0.5,
        "endTime": 2.0,
        "duration": 1.5,
        "content": "Beach day!",
        "properties": {
            "opacity": 0.9,
            "scale": 1.25,
            "position": {"x": 0, "y": -40},
            "rotation": 0,
            "fontSize": 32,
            "color": "#ffffff",
        },
        "keyframes": [
            {
                "id": f"keyframe_{date_now_ms() + 2}",
                "time": 0.5,
                "property": "position",
                "value": {"x": 0, "y": -40},
                "easing": "linear",
            },
        ],
    }
    text: Json = {
        "id": f"layer_{date_now_ms()}_{random36()}",
        "name": "Text Layer",
        "type": "text",
        "clips": [title],
        "isVisible": True,
        "isLocked": False,
        "isMuted": False,
        "order": 1,
    }
    music: Json = {
        "id": f"layer_{date_now_ms() + 3}_{random36()}",
        "name": "Audio Layer",
        "type": "audio",
        "clips": [],
        "isVisible": True,
        "isLocked": True,
        "isMuted": True,
        "order": 2,
    }
    # TimelineToolbar handleAddLayer('effect'): id `layer_<ms>`, order 0 (sorted stably).
    effect: Json = {
        "id": f"layer_{date_now_ms() + 4}",
        "name": "Effect Layer",
        "type": "effect",
        "clips": [],
        "isVisible": True,
        "isLocked": False,
        "isMuted": False,
        "order": 0,
    }
    layers = sorted([main, text, music, effect], key=lambda layer: layer["order"])
    return {
        "layers": layers,
        "playheadTime": 1.5,
        "zoom": 2,
        # recalculateDuration: the sum of the main video's clip durations.
        "duration": first["duration"] + second["duration"],
        "markers": [
            {
                "id": f"marker_{date_now_ms()}_{random36()}",
                "time": 1.5,
                "label": "Cut here",
                "color": "#ef4444",
            },
        ],
        "selectedClips": [second["id"]],
        "isPlaying": False,
        "isSnapping": True,
    }


def second_edit(state: Json) -> Json:
    """Then: deleteClipById on the first part (the main video closes the gap), the rest of
    the video sped up, the title moved, the marker removed, zoom reset, snapping off."""
    changed = copy.deepcopy(state)
    main = next(layer for layer in changed["layers"] if layer.get("isMainVideo"))
    deleted = main["clips"].pop(0)
    for clip in main["clips"]:
        if clip["startTime"] > deleted["startTime"]:
            clip["startTime"] -= deleted["duration"]
    last = main["clips"][-1]
    new_duration = last["startTime"] + last["duration"]
    changed["playheadTime"] = min(
        changed["playheadTime"] / changed["duration"] * new_duration, new_duration
    )
    changed["duration"] = new_duration
    changed["selectedClips"] = [c for c in changed["selectedClips"] if c != deleted["id"]]
    last["properties"].update(speed=1.5, volume=0.5)
    title = next(layer for layer in changed["layers"] if layer["type"] == "text")["clips"][0]
    title.update(startTime=0.25, endTime=1.75)
    music = next(layer for layer in changed["layers"] if layer["type"] == "audio")
    music.update(isVisible=False, isMuted=False)
    changed.update(markers=[], zoom=1, isSnapping=False)
    return changed


def trim_segments(state: Json) -> list[Json]:
    """timelineSlice autoTrimVideo: the main video layer's clips as segments."""
    main = next(layer for layer in state["layers"] if layer.get("isMainVideo"))
    return [
        {
            "startTime": clip.get("originalStartTime") or clip["startTime"],
            "duration": clip["duration"],
        }
        for clip in main["clips"]
    ]


def test_the_web_app_signs_up_edits_a_video_and_signs_out(
    tmp_path: Path, mongodb_uri: str, database_name: str
) -> None:
    """Sign-up, upload, two named saves, a restore, two token refreshes, sign-out: all work."""
    video = tmp_path / "beach-day.mp4"
    video_seconds = make_video(video)
    video_bytes = video.read_bytes()
    with (
        SmtpCatcher().start() as smtp,
        snipix_service(
            tmp_path,
            mongodb_uri,
            database_name,
            SMTP_URL=smtp.url,
            SNIPIX_WEB_APP_URL=WEB_ORIGIN,
            SNIPIX_MAIL_RETRY_BASE_MS="50",
        ) as api_url,
        loopback_client(base_url=api_url, timeout=30) as http,
    ):
        web = WebApp(http)

        # --- sign up: SignupPage -> AuthContext.register -> authService.register -----------
        registered = check_tokens(
            data(
                web.auth(
                    "POST",
                    "/register",
                    {
                        "email": EMAIL,
                        "password": PASSWORD,
                        "confirm_password": PASSWORD,
                        "name": NAME,
                        "username": "",  # SignupPage's optional field left empty
                    },
                ),
                201,
            ),
            email=EMAIL,
            name=NAME,
            where="register data",
        )
        user_id = registered["user"]["id"]
        assert registered["user"]["username"] is None  # "" is "no username"
        assert registered["user"]["is_email_verified"] is False

        # --- SignupPage then routes to /verify-email: "Resend verification email" ----------
        # AuthContext saved the tokens; VerifyEmailPage.handleResend -> resendVerification:
        # POST /auth/resend-verification, no body, Bearer from localStorage.
        web.auth_tokens = {
            "access_token": registered["access_token"],
            "refresh_token": registered["refresh_token"],
        }
        assert data(web.auth("POST", "/resend-verification")) is None
        # Two mails: the sign-up's and the resent one; either link verifies.
        sign_up_mail = smtp.wait_for(EMAIL, "Confirm your email address")
        assert sign_up_mail.link.startswith(f"{WEB_ORIGIN}/verify-email?token="), sign_up_mail.link
        smtp.wait_for(EMAIL, "Confirm your email address", count=2)
        # The link opens VerifyEmailPage, which posts searchParams.get('token').
        assert data(web.auth("POST", "/verify-email", {"token": sign_up_mail.token})) is None
        verified = check_user(data(web.auth("GET", "/me")), email=EMAIL, name=NAME, where="me")
        assert verified["is_email_verified"] is True
        # The same link again: the error VerifyEmailPage shows (`message`).
        used = failure(web.auth("POST", "/verify-email", {"token": sign_up_mail.token}), 400)
        assert "invalid" in used["message"], used

        # --- a later visit: LoginPage -> AuthContext.login -> authService.login -----------
        web = WebApp(http)  # a fresh browser: no localStorage, so no Bearer on the login
        login = web.auth(
            "POST", "/login", {"email": EMAIL, "password": PASSWORD, "remember_me": False}
        )
        # The browser keeps the media cookie of this answer when the app's page shares its
        # origin (the backend serving the build, or the dev server's proxy).
        media_cookie = login.cookies.get(MEDIA_COOKIE)
        assert media_cookie, login.headers
        signed_in = check_tokens(
            data(login),
            email=EMAIL,
            name=NAME,
            where="login data",
        )
        assert signed_in["user"]["id"] == user_id
        assert signed_in["user"]["login_count"] == 1
        check_date(signed_in["user"]["last_login"], "login data.user.last_login")
        # AuthContext's effect: localStorage.auth_tokens = {access_token, refresh_token}.
        web.auth_tokens = {
            "access_token": signed_in["access_token"],
            "refresh_token": signed_in["refresh_token"],
        }

        # AuthContext initializeAuth -> authService.verifyToken: GET /auth/me, status 200;
        # authSlice getCurrentUser reads `data` as the user.
        me = web.auth("GET", "/me")
        assert me.status_code == 200, me.text
        check_user(data(me), email=EMAIL, name=NAME, where="me data")

        # --- ProjectListPage -> projectSlice fetchProjects: GET /projects --------------------
        assert data(web.api("GET", "/projects")) == []

        # --- UploadPage.handleUpload -> projectSlice createProject: POST /projects -----------
        description = f"Video uploaded on {date.today():%-m/%-d/%Y}"  # toLocaleDateString()
        created = check_project(
            data(web.api("POST", "/projects", {"name": "beach-day", "description": description})),
            user_id=user_id,
            where="createProject data",
        )
        project_id = created["_id"]  # UploadPage: projectResult?.data?._id
        assert (created["name"], created["description"]) == ("beach-day", description)
        assert created["duration"] is None
        assert created["createdAt"] == created["updatedAt"]

        # --- uploadSlice uploadVideo: FormData file, then project_id ------------------------
        uploaded = web.upload(
            [("file", ("beach-day.mp4", "video/mp4", video_bytes)), ("project_id", project_id)]
        )
        upload = data(uploaded)  # UploadPage only tests `uploadResult` (the envelope)
        assert upload["project_id"] == project_id
        assert upload["file_path"] == f"/media/{project_id}/video"
        assert abs(upload["duration"] - video_seconds) < 0.05, upload

        # --- TimelinePage opens: fetchProjectById, loadTimelineHistory, loadTimeline ---------
        project = check_project(
            data(web.api("GET", f"/projects/{project_id}")),
            user_id=user_id,
            where="fetchProjectById data",
        )
        # TimelinePage: `currentProject.duration` sizes the main video clip and the timeline.
        assert isinstance(project["duration"], float), project
        assert abs(project["duration"] - video_seconds) < 0.05, project
        assert project["video_path"] == f"/media/{project_id}/video"
        assert project["thumbnail"], "ProjectListPage shows a thumbnail only when it is set"
        # ProjectListPage: <img src={`/media/${project._id}/thumbnail`}>, relative to the
        # page, so no Bearer: only the cookie from the sign-in authorises it.
        thumbnail = web.image(f"/media/{project_id}/thumbnail", media_cookie)
        assert thumbnail.status_code == 200, thumbnail.text
        assert thumbnail.headers["content-type"] == "image/jpeg"
        assert thumbnail.content.startswith(b"\xff\xd8\xff"), "a JPEG the <img> can decode"
        assert web.image(f"/media/{project_id}/thumbnail", None).status_code == 401
        assert project["createdAt"] == created["createdAt"]
        assert check_date(project["updatedAt"], "updatedAt") > check_date(
            created["updatedAt"], "updatedAt"
        ), "the upload changed the project: updatedAt must move"
        assert data(web.api("GET", f"/timeline/{project_id}/history")) == []
        empty = check_timeline_document(
            data(web.api("GET", f"/timeline/{project_id}")),
            project_id=project_id,
            user_id=user_id,
            version=0,
            where="loadTimeline data",
        )
        assert empty["timeline_state"]["layers"] == []

        # TimelinePage fetchVideoBlob: fetch(`${API}/media/${id}/video`, Bearer) -> blob.
        whole = web.fetch(f"/media/{project_id}/video")
        assert whole.status_code == 200, whole.text
        assert whole.content == video_bytes
        assert whole.headers["content-type"] == "video/mp4"
        assert whole.headers["accept-ranges"] == "bytes"
        # A <video> element asks for ranges: first `bytes=0-`, then a slice to seek.
        opening = web.fetch(f"/media/{project_id}/video", {"Range": "bytes=0-"})
        assert opening.status_code == 206, opening.text
        assert opening.content == video_bytes
        size = len(video_bytes)
        assert opening.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
        seek = web.fetch(f"/media/{project_id}/video", {"Range": "bytes=1000-1999"})
        assert seek.status_code == 206, seek.text
        assert seek.content == video_bytes[1000:2000]
        assert seek.headers["content-range"] == f"bytes 1000-1999/{size}"

        # --- TimelinePage.handleNamedSave -> saveNamedTimeline, then autoTrimVideo -----------
        first_state = first_edit(project, api_url)
        first_sent = convert_to_backend(first_state)
        saved = web.api(
            "POST",
            "/timeline/",
            {
                "project_id": project_id,
                "timeline_state": first_sent,
                "description": ROUGH_CUT,
                "change_summary": f"Timeline saved as: {ROUGH_CUT}",
            },
        )
        version_1 = check_timeline_document(
            data(saved), project_id=project_id, user_id=user_id, version=1, where="save 1 data"
        )
        assert_same(version_1["timeline_state"], first_sent, "save 1 data.timeline_state")
        trimmed = data(
            web.api(
                "POST",
                "/media/trim-video",
                {"project_id": project_id, "segments": trim_segments(first_state)},
            )
        )  # apiService.trimVideo; the slice logs it and recomputes the duration itself
        assert trimmed["trimmed_video_path"] == f"/media/{project_id}/video/trimmed"
        assert trimmed["new_duration"] > 0, trimmed

        second_state = second_edit(first_state)
        second_sent = convert_to_backend(second_state)
        version_2 = check_timeline_document(
            data(
                web.api(
                    "POST",
                    "/timeline/",
                    {
                        "project_id": project_id,
                        "timeline_state": second_sent,
                        "description": FINAL_CUT,
                        "change_summary": f"Timeline saved as: {FINAL_CUT}",
                    },
                )
            ),
            project_id=project_id,
            user_id=user_id,
            version=2,
            where="save 2 data",
        )
        assert_same(version_2["timeline_state"], second_sent, "save 2 data.timeline_state")
        trimmed = data(
            web.api(
                "POST",
                "/media/trim-video",
                {"project_id": project_id, "segments": trim_segments(second_state)},
            )
        )
        # Stream copy starts a segment at the keyframe at or before it (docs/api.md).
        assert video_seconds - 1.5 - 0.05 <= trimmed["new_duration"] <= video_seconds, trimmed

        # --- loadTimeline: GET /timeline/{id} -------------------------------------------------
        loaded = check_timeline_document(
            data(web.api("GET", f"/timeline/{project_id}")),
            project_id=project_id,
            user_id=user_id,
            version=2,
            where="loadTimeline data",
        )
        assert loaded["is_current"] is True
        assert (loaded["description"], loaded["change_summary"]) == (
            FINAL_CUT,
            f"Timeline saved as: {FINAL_CUT}",
        )
        assert_same(loaded["timeline_state"], second_sent, "loadTimeline data.timeline_state")

        # --- loadTimelineHistory: the restore prompt lists description (v<version>) date ----
        history = data(web.api("GET", f"/timeline/{project_id}/history"))
        assert [item["version"] for item in history] == [2, 1], "history is newest first"
        for item, sent, name in (
            (history[0], second_sent, FINAL_CUT),
            (history[1], first_sent, ROUGH_CUT),
        ):
            where = f"history v{item['version']}"
            check_timeline_document(
                item, project_id=project_id, user_id=user_id, version=item["version"], where=where
            )
            assert (item["description"], item["change_summary"]) == (
                name,
                f"Timeline saved as: {name}",
            ), where
            assert_same(item["timeline_state"], sent, f"{where}.timeline_state")
        assert [item["is_current"] for item in history] == [True, False]
        assert check_date(history[0]["created_at"], "v2") >= check_date(
            history[1]["created_at"], "v1"
        )

        # --- handleRestoreCheckpoint -> restoreTimelineVersion(version 1) --------------------
        restored = check_timeline_document(
            data(web.api("POST", f"/timeline/{project_id}/restore/1")),
            project_id=project_id,
            user_id=user_id,
            version=3,
            where="restore data",
        )
        # The slice loads `data.timeline_state` into the editor: the first save, exactly.
        assert_same(restored["timeline_state"], first_sent, "restore data.timeline_state")
        assert restored["description"] == ROUGH_CUT

        # --- the project is opened again: history, then restore of the newest version --------
        history = data(web.api("GET", f"/timeline/{project_id}/history"))
        newest = max(item["version"] for item in history)
        assert newest == 3
        reopened = check_timeline_document(
            data(web.api("POST", f"/timeline/{project_id}/restore/{newest}")),
            project_id=project_id,
            user_id=user_id,
            version=3,
            where="restore newest data",
        )
        assert_same(reopened["timeline_state"], first_sent, "restore newest data.timeline_state")
        assert len(data(web.api("GET", f"/timeline/{project_id}/history"))) == 3

        # --- ProjectListPage again: the project with its duration and dates -----------------
        listed = data(web.api("GET", "/projects"))
        assert [item["_id"] for item in listed] == [project_id]
        listed_project = check_project(listed[0], user_id=user_id, where="fetchProjects data[0]")
        assert listed_project["duration"] == project["duration"]
        assert listed_project["createdAt"] == created["createdAt"]
        assert check_date(listed_project["updatedAt"], "updatedAt") > check_date(
            project["updatedAt"], "updatedAt"
        ), "the trims changed the project: updatedAt must move"

        # --- the access token expires, twice: apiService's 401 interceptor refreshes ------
        refresh_1, retried = refreshed_after_expiry(web, "GET", "/projects", "refresh 1")
        assert refresh_1["refresh_token"] != signed_in["refresh_token"]
        assert [item["_id"] for item in data(retried)] == [project_id]
        # 15 minutes later: the refresh token stored from refresh 1 must still work.
        refresh_2, retried = refreshed_after_expiry(
            web, "GET", f"/timeline/{project_id}", "refresh 2"
        )
        assert refresh_2["refresh_token"] not in {
            signed_in["refresh_token"],
            refresh_1["refresh_token"],
        }, "refresh 2 must hand out a new refresh token"
        assert data(retried)["version"] == 3
        # AuthContext initializeAuth on the next page load: verifyToken with the newest token.
        check_user(data(web.auth("GET", "/me")), email=EMAIL, name=NAME, where="me after 2")

        # --- the same rotation on a second browser: the newest token after two refreshes
        # works, and an older one is refused afterwards (strict reuse: the sign-in ends) ----
        other = WebApp(http)
        tokens = check_tokens(
            data(
                other.auth(
                    "POST", "/login", {"email": EMAIL, "password": PASSWORD, "remember_me": True}
                )
            ),
            email=EMAIL,
            name=NAME,
            where="login 2 data",
        )
        assert tokens["user"]["login_count"] == 2
        chain = [tokens["refresh_token"]]
        for step in range(3):  # two refreshes, then the newest token is used once more
            other.auth_tokens = {"access_token": tokens["access_token"]}
            tokens = check_tokens(
                data(other.auth("POST", "/refresh", {"refresh_token": chain[-1]})),
                email=EMAIL,
                name=NAME,
                where=f"second browser refresh {step + 1} data",
            )
            assert tokens["refresh_token"] not in chain
            chain.append(tokens["refresh_token"])
        # A dead refresh token is 400 on these paths, never 401: authService's response
        # interceptor answers any 401 — the refresh's own too — with another refresh of the
        # same token, forever; on a 400 its refreshToken() throws and the app signs out.
        old = failure(other.auth("POST", "/refresh", {"refresh_token": chain[1]}), 400)
        assert isinstance(old["error"], str), old
        assert old["error"]
        failure(other.auth("POST", "/refresh", {"refresh_token": chain[-1]}), 400)

        # --- TranscriptPage: transcribeAudio (FormData project_id), then the two removals ----
        transcribed = data(web.form("/media/transcribe", [("project_id", project_id)]))
        # transcriptSlice: `state.words = action.payload.data.transcript || []`.
        assert set(transcribed) == {"transcript", "duration"}, transcribed
        assert abs(transcribed["duration"] - video_seconds) < 0.05, transcribed
        for word in transcribed["transcript"]:  # TranscriptWord
            assert isinstance(word["text"], str), word
            assert is_number(word["start"]), word
            assert is_number(word["end"]), word
            assert is_number(word["confidence"]), word
            assert isinstance(word["isFiller"], bool), word
            assert 0 <= word["start"] <= word["end"] <= video_seconds + 0.05, word
        removed = data(
            web.api(
                "POST", "/media/remove-fillers", {"project_id": project_id, "auto_detect": True}
            )
        )
        # RemoveFillersResponse.
        assert isinstance(removed["processedVideoPath"], str), removed
        for cut in removed["removedSegments"]:
            assert is_number(cut["start"]), cut
            assert is_number(cut["end"]), cut
            assert isinstance(cut["text"], str), cut
        if transcribed["transcript"]:
            first = transcribed["transcript"][0]
            # TranscriptPage's word ids: `${word.start}-${word.end}` (JavaScript numbers).
            selected = [f"{js_value(first['start'])}-{js_value(first['end'])}"]
            chosen = data(
                web.api(
                    "POST",
                    "/media/remove-fillers",
                    {"project_id": project_id, "selectedWords": selected},
                )
            )
            assert chosen["processedVideoPath"] == f"/media/{project_id}/video/trimmed"
            assert [c["text"] for c in chosen["removedSegments"]] == [first["text"]], chosen

        # --- Navigation logout -> AuthContext.logout -> authService.logout ------------------
        signed_out = web.auth("POST", "/logout")  # no body: the Bearer names the session
        assert data(signed_out) is None
        web.auth_tokens = None  # AUTH_LOGOUT: localStorage cleared
        ended = failure(
            web.auth("POST", "/refresh", {"refresh_token": refresh_2["refresh_token"]}), 400
        )
        assert ended["error"]

        # --- signing in again with a typo: the failure envelope LoginPage shows -------------
        typo = failure(
            web.auth(
                "POST", "/login", {"email": EMAIL, "password": PASSWORD + "x", "remember_me": False}
            ),
            401,
        )
        shown = shown_auth_error(typo)
        assert isinstance(shown, str), typo
        assert "incorrect" in shown, f"LoginPage would show {shown!r}"

        # --- a phone is still signed in when the password is forgotten ---------------------
        phone = WebApp(http)
        on_phone = data(
            phone.auth(
                "POST", "/login", {"email": EMAIL, "password": PASSWORD, "remember_me": True}
            )
        )
        phone.auth_tokens = {
            "access_token": on_phone["access_token"],
            "refresh_token": on_phone["refresh_token"],
        }

        # --- ForgotPasswordPage -> forgotPassword(email): POST /auth/forgot-password -------
        asked = web.auth("POST", "/forgot-password", {"email": EMAIL})
        assert data(asked) is None
        stranger = web.auth("POST", "/forgot-password", {"email": "nobody@example.com"})
        assert data(stranger) is None
        assert stranger.json()["message"] == asked.json()["message"]  # no account revealed
        reset_mail = smtp.wait_for(EMAIL, "Reset your Snipix password")
        assert reset_mail.link.startswith(f"{WEB_ORIGIN}/reset-password?token="), reset_mail.link

        # --- ResetPasswordPage (?token=) -> resetPassword(token, new, confirm) ------------
        new_password = "Moonrise-Edit-2025"
        reset_body = {
            "token": reset_mail.token,
            "new_password": new_password,
            "confirm_password": new_password,
        }
        assert data(web.auth("POST", "/reset-password", reset_body)) is None
        again = failure(web.auth("POST", "/reset-password", reset_body), 400)
        assert "invalid" in again["message"], again
        # Every session ended: the phone's access token and its refresh token.
        failure(phone.auth("GET", "/me"), 401)
        failure(phone.auth("POST", "/refresh", {"refresh_token": on_phone["refresh_token"]}), 400)

        # --- ResetPasswordPage navigates to /login: the new password signs in --------------
        failure(
            web.auth(
                "POST", "/login", {"email": EMAIL, "password": PASSWORD, "remember_me": False}
            ),
            401,
        )
        after_reset = check_tokens(
            data(
                web.auth(
                    "POST",
                    "/login",
                    {"email": EMAIL, "password": new_password, "remember_me": False},
                )
            ),
            email=EMAIL,
            name=NAME,
            where="login after reset data",
        )
        assert after_reset["user"]["is_email_verified"] is True
        assert smtp.to("nobody@example.com") == []
