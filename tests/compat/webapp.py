"""The original web app as a client: its requests byte for byte, and its reads of the answers.

`WebApp` sends what `/tmp/webapp/src/services/apiService.ts` and `authService.ts` send (their
axios instances: `Content-Type: application/json` on bodies, `Authorization: Bearer` from
`localStorage.auth_tokens`, bodies serialised like `JSON.stringify`, a browser's multipart
for files, the dev server's `Origin`) to a real `snipix serve` process over loopback. The
`convert_to_backend` port of `timelineSlice.ts`'s `convertToBackendTimelineState` builds the
`timeline_state` exactly as the web app does, `||` defaults included. The `check_*` helpers
assert what the web app reads from an answer, with the types its TypeScript declares.
"""

from __future__ import annotations

import json
import secrets
import shutil
import string
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from snipix.media.links import MEDIA_COOKIE
from tests.support import serving

JWT_SECRET: Final = "webapp-replay-secret-" + "k" * 32
WEB_ORIGIN: Final = "http://localhost:3000"  # the web app's dev server (CORS origin)
AXIOS_ACCEPT: Final = "application/json, text/plain, */*"
IMG_ACCEPT: Final = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
Json = dict[str, Any]

_NO_BODY: Final = object()
# Request headers a browser sends without a preflight (the Fetch standard's safelist;
# `Range` with one simple range included), and the Content-Types that stay "simple".
_SAFELISTED: Final = {"accept", "accept-language", "content-language", "range", "origin"}
_SIMPLE_TYPES: Final = {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}


# --- the service, as an operator starts it --------------------------------------------------


@contextmanager
def snipix_service(tmp_path: Path, mongodb_uri: str, database: str, **extra: str) -> Iterator[str]:
    """`python -m snipix serve` on a free port, ready; its base URL. `extra`: more
    environment (SMTP_URL, say)."""
    env = {
        "MONGODB_URI": mongodb_uri,
        "MONGODB_DATABASE": database,
        "JWT_SECRET": JWT_SECRET,
        **extra,
    }
    with serving(tmp_path, env, timeout_s=45) as base:
        yield base


# --- a small video, made as tests/media/conftest.py makes them ------------------------------


def make_video(path: Path, seconds: int = 3) -> float:
    """An MP4 with H.264 (a keyframe every second) and AAC audio; its ffprobe duration."""
    ffmpeg, ffprobe = _tool("ffmpeg"), _tool("ffprobe")
    subprocess.run(
        [
            *(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=160x120:rate=25"),
            *("-f", "lavfi", "-i", f"sine=duration={seconds}"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
            *("-g", "25", "-keyint_min", "25", "-sc_threshold", "0"),
            *("-c:a", "aac", "-shortest", str(path)),
        ],
        check=True,
        timeout=60,
    )
    done = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return float(json.loads(done.stdout)["format"]["duration"])


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: this test needs a real ffmpeg (apt-get install)")
    return found


# --- the web app's wire format --------------------------------------------------------------


def js_value(value: Any) -> Any:
    """`value` as JavaScript holds it: a whole float is an integer (`JSON.stringify(1.0)` is
    `1`), so the service gets `"volume":1` exactly as the browser sends it."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: js_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [js_value(item) for item in value]
    return value


def js_json(value: Any) -> bytes:
    """`JSON.stringify(value)`: no spaces, UTF-8, whole numbers without `.0`."""
    return json.dumps(js_value(value), separators=(",", ":"), ensure_ascii=False).encode()


def js_or(*values: Any) -> Any:
    """JavaScript's `a || b || c`: the first truthy value, else the last one."""
    for value in values[:-1]:
        if value:
            return value
    return values[-1]


def date_now_ms() -> int:
    """`Date.now()`."""
    return int(time.time() * 1000)


def random36(length: int = 9) -> str:
    """`Math.random().toString(36).substr(2, 9)`."""
    return "".join(secrets.choice(string.digits + string.ascii_lowercase) for _ in range(length))


def browser_multipart(
    parts: list[tuple[str, str | tuple[str, str, bytes]]],
) -> tuple[bytes, str]:
    """A `FormData` body as a browser encodes it, parts in the order appended: a string
    value, or `(filename, type, bytes)` for a `File`. Returns the body and its Content-Type
    (the browser replaces axios's bare `multipart/form-data` with one naming the boundary)."""
    boundary = "----WebKitFormBoundary" + random36(16)
    body = bytearray()
    for name, value in parts:
        body += f"--{boundary}\r\n".encode()
        if isinstance(value, str):
            body += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            body += value.encode()
        else:
            filename, content_type, content = value
            body += (
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
            body += content
        body += b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body), f"multipart/form-data; boundary={boundary}"


class WebApp:
    """The browser running the web app: its `localStorage.auth_tokens` and its two axios
    instances (`apiService` at the API root, `authService`'s `apiClient` at `/auth`)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        # localStorage.auth_tokens, in the snake_case form AuthContext saves it.
        self.auth_tokens: Json | None = None

    def _headers(self, *, body: bool, content_type: str = "application/json") -> dict[str, str]:
        headers = {"Accept": AXIOS_ACCEPT, "Origin": WEB_ORIGIN}
        if body:
            # axios drops its default Content-Type when a request has no data.
            headers["Content-Type"] = content_type
        if self.auth_tokens and self.auth_tokens.get("access_token"):
            # Both request interceptors: `Bearer ${access_token}` from localStorage.
            headers["Authorization"] = f"Bearer {self.auth_tokens['access_token']}"
        return headers

    def preflight(self, method: str, url: str, headers: dict[str, str]) -> None:
        """The browser's CORS preflight before a request it may not send unasked (any
        method but GET/HEAD/POST, or a header beyond the safelisted ones), and its check."""
        asked = sorted(
            name.lower()
            for name, value in headers.items()
            if name.lower() not in _SAFELISTED
            and not (name.lower() == "content-type" and value.split(";")[0] in _SIMPLE_TYPES)
        )
        if method in {"GET", "HEAD", "POST"} and not asked:
            return
        request = {"Origin": WEB_ORIGIN, "Access-Control-Request-Method": method}
        if asked:
            request["Access-Control-Request-Headers"] = ",".join(asked)
        answer = self.http.options(url, headers=request)
        problem = f"preflight of {method} {url} asking for {asked}: {answer.status_code} "
        assert answer.status_code in {200, 204}, problem + answer.text
        assert answer.headers.get("access-control-allow-origin") == WEB_ORIGIN, problem + str(
            answer.headers
        )
        methods = answer.headers.get("access-control-allow-methods", "")
        assert method in methods or "*" in methods, problem + f"methods {methods!r}"
        allowed = answer.headers.get("access-control-allow-headers", "").lower()
        missing = [name for name in asked if name not in allowed and "*" not in allowed]
        assert not missing, problem + f"headers {allowed!r} lack {missing}"

    def _send(self, method: str, url: str, body: Any, extra: dict[str, str]) -> httpx.Response:
        has_body = body is not _NO_BODY
        headers = {**self._headers(body=has_body), **extra}
        self.preflight(method, url, headers)
        response = self.http.request(
            method, url, content=js_json(body) if has_body else None, headers=headers
        )
        # Without this header the browser hides the answer from axios (a network error).
        assert response.headers.get("access-control-allow-origin") == WEB_ORIGIN, (
            f"{method} {url}: no CORS Access-Control-Allow-Origin for the web app's origin "
            f"{WEB_ORIGIN} (got {response.headers.get('access-control-allow-origin')!r}): "
            "the browser would not let the web app read this answer"
        )
        return response

    def api(
        self, method: str, path: str, body: Any = _NO_BODY, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """`apiService.get/post/put/delete(path, body)`."""
        return self._send(method, path, body, headers or {})

    def auth(self, method: str, path: str, body: Any = _NO_BODY) -> httpx.Response:
        """`authService`'s `apiClient` (baseURL `${API}/auth`)."""
        return self._send(method, f"/auth{path}", body, {})

    def upload(self, parts: list[tuple[str, str | tuple[str, str, bytes]]]) -> httpx.Response:
        """`apiService.post('/media/upload', formData, {headers: {'Content-Type':
        'multipart/form-data'}})`."""
        return self.form("/media/upload", parts)

    def form(
        self, path: str, parts: list[tuple[str, str | tuple[str, str, bytes]]]
    ) -> httpx.Response:
        """`apiService.post(path, formData, {headers: {'Content-Type': 'multipart/form-data'}})`
        (the upload, transcriptSlice's transcribeAudio)."""
        content, content_type = browser_multipart(parts)
        headers = self._headers(body=True, content_type=content_type)
        self.preflight("POST", path, headers)
        response = self.http.post(path, content=content, headers=headers)
        assert response.headers.get("access-control-allow-origin") == WEB_ORIGIN, response.headers
        return response

    def image(self, path: str, media_cookie: str | None) -> httpx.Response:
        """An `<img src={path}>` of the page's own origin: chromium's image Accept and the
        media cookie when the browser holds one; no token, no Origin (same-origin GET)."""
        headers = {"Accept": IMG_ACCEPT}
        if media_cookie is not None:
            headers["Cookie"] = f"{MEDIA_COOKIE}={media_cookie}"
        else:
            # An explicit empty header: httpx would otherwise send its jar's cookies.
            headers["Cookie"] = ""
        return self.http.get(path, headers=headers)

    def fetch(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """`fetch(url, {headers: {Authorization: `Bearer ${accessToken}`}})` (TimelinePage's
        fetchVideoBlob), plus whatever a media element adds (`Range`)."""
        assert self.auth_tokens is not None
        sent = {
            "Authorization": f"Bearer {self.auth_tokens['access_token']}",
            "Origin": WEB_ORIGIN,
            **(headers or {}),
        }
        self.preflight("GET", path, sent)
        response = self.http.get(path, headers=sent)
        assert response.headers.get("access-control-allow-origin") == WEB_ORIGIN, response.headers
        return response


# --- the timeline slice ---------------------------------------------------------------------


def convert_to_backend(state: Json) -> Json:
    """timelineSlice.ts `convertToBackendTimelineState`, line for line (`||` included)."""
    return {
        "layers": [
            {
                "id": layer["id"],
                "name": layer["name"],
                "type": layer["type"],
                "clips": [
                    {
                        "id": clip["id"],
                        "type": clip["type"],
                        "start_time": js_or(clip.get("startTime"), 0),
                        "end_time": js_or(
                            clip.get("endTime"),
                            js_or(clip.get("startTime"), 0) + js_or(clip.get("duration"), 0),
                        ),
                        "duration": js_or(clip.get("duration"), 0),
                        "source_path": js_or(clip.get("sourcePath"), ""),
                        "content": js_or(clip.get("content"), ""),
                        "properties": js_or(clip.get("properties"), {}),
                        "keyframes": js_or(clip.get("keyframes"), []),
                        "original_start_time": js_or(
                            clip.get("originalStartTime"), clip.get("startTime"), 0
                        ),
                    }
                    for clip in layer["clips"]
                ],
                "is_visible": layer.get("isVisible", True),
                "is_locked": layer.get("isLocked", False),
                "is_muted": layer.get("isMuted", False),
                "order": js_or(layer.get("order"), 0),
                "is_main_video": js_or(layer.get("isMainVideo"), False),
            }
            for layer in state["layers"]
        ],
        "playhead_time": js_or(state["playheadTime"], 0),
        "zoom": js_or(state["zoom"], 1),
        "duration": js_or(state["duration"], 0),
        "markers": js_or(state["markers"], []),
        "selected_clips": js_or(state["selectedClips"], []),
        "is_playing": js_or(state["isPlaying"], False),
        "is_snapping": state.get("isSnapping", True),
    }


# --- what the web app reads, with the types its TypeScript declares --------------------------


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_date(value: Any, where: str) -> datetime:
    """A string `new Date(value)` reads as the right instant: ISO 8601 with a zone (without
    one, JavaScript takes it as the browser's local time)."""
    assert isinstance(value, str), f"{where}: {value!r} is not a date string"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise AssertionError(f"{where}: {value!r} is not ISO 8601") from None
    assert moment.tzinfo is not None, (
        f"{where}: {value!r} has no time zone; the web app's `new Date(...)` would read it "
        "as local time"
    )
    return moment


def check_optional_str(body: Json, key: str, where: str) -> None:
    """A TypeScript `key?: string`: absent, or a string (null reads as 'not set' in every
    place the web app uses these: `x || ''`, `x ? ... : ...`)."""
    assert body.get(key) is None or isinstance(body[key], str), f"{where}.{key}: {body[key]!r}"


def check_user(user: Any, *, email: str, name: str, where: str) -> Json:
    """authService.ts `UserResponse` (read by ProtectedRoute, Navigation, ProfilePage)."""
    assert isinstance(user, dict), f"{where}: {user!r}"
    assert isinstance(user["id"], str), f"{where}.id"
    assert user["id"], f"{where}.id is empty"
    assert user["email"] == email, f"{where}.email: {user['email']!r}"
    assert user["name"] == name, f"{where}.name: {user['name']!r}"
    check_optional_str(user, "username", where)
    check_optional_str(user, "avatar_url", where)
    assert user["role"] == "user", f"{where}.role: {user['role']!r}"
    # ProtectedRoute sends every other status to /verify-email, /suspended or /inactive.
    assert user["status"] == "active", f"{where}.status: {user['status']!r}"
    assert user["auth_provider"] in {"email", "google"}, f"{where}.auth_provider"
    assert isinstance(user["is_email_verified"], bool), f"{where}.is_email_verified"
    if user.get("last_login") is not None:
        check_date(user["last_login"], f"{where}.last_login")
    assert type(user["login_count"]) is int, f"{where}.login_count: {user['login_count']!r}"
    assert is_number(user["total_session_time"]), f"{where}.total_session_time"
    assert isinstance(user["preferences"], dict), f"{where}.preferences"
    check_date(user["created_at"], f"{where}.created_at")  # ProfilePage "Member since"
    check_date(user["updated_at"], f"{where}.updated_at")
    return user


def check_tokens(data: Any, *, email: str, name: str, where: str) -> Json:
    """authService.ts `TokenResponse` (AuthContext keeps access_token, refresh_token, user)."""
    assert isinstance(data, dict), f"{where}: {data!r}"
    assert isinstance(data["access_token"], str), f"{where}.access_token"
    assert data["access_token"].count(".") == 2, f"{where}.access_token is not a JWT"
    assert isinstance(data["refresh_token"], str), f"{where}.refresh_token"
    assert data["refresh_token"], f"{where}.refresh_token is empty"
    assert isinstance(data["token_type"], str), f"{where}.token_type"
    assert is_number(data["expires_in"]), f"{where}.expires_in"
    assert data["expires_in"] > 0, f"{where}.expires_in"
    check_user(data["user"], email=email, name=name, where=f"{where}.user")
    return data


def check_project(project: Any, *, user_id: str, where: str) -> Json:
    """types/index.ts `Project` as ProjectListPage, UploadPage and TimelinePage read it."""
    assert isinstance(project, dict), f"{where}: {project!r}"
    assert isinstance(project["_id"], str), f"{where}._id"
    assert project["_id"], f"{where}._id is empty"
    assert isinstance(project["name"], str), f"{where}.name"
    check_optional_str(project, "description", where)
    check_optional_str(project, "thumbnail", where)
    assert project.get("duration") is None or is_number(project["duration"]), (
        f"{where}.duration: {project.get('duration')!r}"
    )
    created = check_date(project.get("createdAt"), f"{where}.createdAt")
    updated = check_date(project.get("updatedAt"), f"{where}.updatedAt")
    assert project["created_at"] == project["createdAt"], f"{where}: created_at != createdAt"
    assert project["updated_at"] == project["updatedAt"], f"{where}: updated_at != updatedAt"
    assert updated >= created, f"{where}: updatedAt {updated} before createdAt {created}"
    assert project["user_id"] == user_id, f"{where}.user_id: {project['user_id']!r}"
    return project


DOCUMENT_FIELDS: Final = {
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


def check_timeline_document(
    document: Any, *, project_id: str, user_id: str, version: int, where: str
) -> Json:
    """A TimelineStateDocument as timelineSlice and TimelinePage read it: `version`,
    `description`, `created_at` (the restore prompt), `timeline_state` (the restore)."""
    assert isinstance(document, dict), f"{where}: {document!r}"
    assert set(document) >= DOCUMENT_FIELDS, f"{where}: missing {DOCUMENT_FIELDS - set(document)}"
    assert type(document["version"]) is int, f"{where}.version: {document['version']!r}"
    assert document["version"] == version, f"{where}.version: {document['version']} != {version}"
    assert document["project_id"] == project_id, f"{where}.project_id"
    assert isinstance(document["_id"], str), f"{where}._id"
    assert isinstance(document["is_current"], bool), f"{where}.is_current"
    check_optional_str(document, "description", where)
    check_optional_str(document, "change_summary", where)
    assert document["created_by"] == user_id, f"{where}.created_by: {document['created_by']!r}"
    check_date(document["created_at"], f"{where}.created_at")
    check_date(document["updated_at"], f"{where}.updated_at")
    assert isinstance(document["timeline_state"], dict), f"{where}.timeline_state"
    return document


def assert_same(got: Any, expected: Any, path: str) -> None:
    """Equal field by field, numbers by value (JavaScript has one number type), booleans
    never equal to numbers; a failure names the field."""
    if isinstance(expected, dict):
        assert isinstance(got, dict), f"{path}: {got!r} is not an object"
        assert set(got) == set(expected), (
            f"{path}: keys {sorted(got)} != the web app's {sorted(expected)}"
        )
        for key, value in expected.items():
            assert_same(got[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list), f"{path}: {got!r} is not an array"
        assert len(got) == len(expected), f"{path}: {len(got)} items, sent {len(expected)}"
        for index, (item, value) in enumerate(zip(got, expected, strict=True)):
            assert_same(item, value, f"{path}[{index}]")
    elif is_number(expected):
        assert is_number(got), f"{path}: {got!r} is not a number (sent {expected!r})"
        assert got == expected, f"{path}: {got!r} != sent {expected!r}"
    else:
        assert type(got) is type(expected), f"{path}: {got!r} is not like sent {expected!r}"
        assert got == expected, f"{path}: {got!r} != sent {expected!r}"


def shown_auth_error(body: Json) -> Any:
    """The message authService.login/register throw from a failure answer: `details.message`,
    else `error`, else `message`."""
    details = body.get("details")
    if isinstance(details, dict) and details.get("message"):
        return details["message"]
    return body.get("error") or body.get("message")
