"""The web app's build served from the API's origin: pages to the browser, data to API
clients, whatever path they share; files only from inside the build; nothing when unset."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from snipix.api.web_app import find_file, prefers_html
from snipix.app import create_app
from snipix.settings import Settings
from tests.support import running_app

# What chromium sends for a page navigation, a <script> and an <img>; axios's default.
PAGE = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
SCRIPT = "*/*"
IMAGE = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
AXIOS = "application/json, text/plain, */*"
INDEX = b"<!doctype html><title>Snipix</title><div id=root></div>"
BUNDLE = b"console.log('snipix');"


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A web app build as `npm run build` lays it out, and a secret beside it."""
    root = tmp_path / "build"
    (root / "static" / "js").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "static" / "js" / "main.1a2b3c4d.js").write_bytes(BUNDLE)
    (root / "favicon.ico").write_bytes(b"\x00\x00\x01\x00")
    (tmp_path / "secret.txt").write_text("not for the web")
    (root / "static" / "escape").symlink_to(tmp_path / "secret.txt")
    return root


def assert_page(answer: httpx.Response) -> None:
    assert answer.status_code == 200, answer.text
    assert answer.content == INDEX
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["cache-control"] == "no-cache"
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy, policy
    assert "frame-ancestors 'none'" in policy, policy


async def test_the_browser_gets_the_app_and_api_clients_get_the_api(
    settings: Settings, build: Path
) -> None:
    app = create_app(settings.model_copy(update={"web_app_dir": build}))
    async with running_app(app) as client:
        # Page navigations, to a client route shared with the API, to the root, to a link
        # from a mail: the app's index page.
        for path in ("/projects", "/timeline/6b13860a4bfc94cbb19f0f2f", "/", "/verify-email?t=x"):
            assert_page(await client.get(path, headers={"Accept": PAGE}))
        head = await client.head("/login", headers={"Accept": PAGE})
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(INDEX))

        # The same path for an API client: its JSON answer, never the page.
        for headers in (
            {"Accept": AXIOS},
            {"Accept": "application/json"},
            {"Accept": "text/html, application/json"},  # a tie is the API's
            {"Accept": PAGE, "Authorization": "Bearer not-a-token"},
            {"Accept": PAGE, "X-User-Id": "alice"},
        ):
            answer = await client.get("/projects", headers=headers)
            assert answer.headers["content-type"] == "application/json", (headers, answer.text)
        listed = await client.get("/projects", headers={"Accept": AXIOS, "X-User-Id": "alice"})
        assert listed.status_code == 200
        assert listed.json()["data"] == []
        # The backend's own paths stay the API's even for a page navigation.
        for path in ("/api/v1/projects", "/media/6b13860a4bfc94cbb19f0f2f/thumbnail"):
            answer = await client.get(path, headers={"Accept": PAGE})
            assert answer.status_code == 401, (path, answer.text)
        assert (await client.get("/docs", headers={"Accept": PAGE})).text.count("swagger") > 0

        # The build's files, typed; hashed assets cached for good, the rest revalidated.
        script = await client.get("/static/js/main.1a2b3c4d.js", headers={"Accept": SCRIPT})
        assert script.status_code == 200
        assert script.content == BUNDLE
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert script.headers["x-content-type-options"] == "nosniff"
        icon = await client.get("/favicon.ico", headers={"Accept": IMAGE})
        assert icon.status_code == 200
        assert icon.headers["content-type"] == "image/x-icon"
        assert icon.headers["cache-control"] == "no-cache"
        revalidated = await client.get(
            "/static/js/main.1a2b3c4d.js", headers={"If-None-Match": script.headers["etag"]}
        )
        assert revalidated.status_code == 304

        # Nothing outside the build, however the path is spelled; missing files are the
        # API's 404 for anything but a page.
        for path in (
            "/static/%2e%2e/%2e%2e/secret.txt",
            "/static/..%2f..%2fsecret.txt",
            "/static/escape",
            "/static/js/missing.js",
        ):
            answer = await client.get(path, headers={"Accept": SCRIPT})
            assert answer.status_code == 404, (path, answer.text)
            assert b"not for the web" not in answer.content
            assert answer.headers["content-type"] == "application/json"
        sneaky = await client.get("/static/%2e%2e/%2e%2e/secret.txt", headers={"Accept": PAGE})
        assert_page(sneaky)
        # Only reads: a form post to a page path is the API's.
        posted = await client.post("/login", headers={"Accept": PAGE})
        assert posted.headers["content-type"] == "application/json"


async def test_without_the_setting_nothing_is_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/", headers={"Accept": PAGE})).status_code == 404
    projects = await client.get("/projects", headers={"Accept": PAGE})
    assert projects.status_code == 401
    assert projects.headers["content-type"] == "application/json"
    assert (await client.get("/static/js/main.js", headers={"Accept": SCRIPT})).status_code == 404


def test_no_file_outside_the_build_is_found(build: Path) -> None:
    root = build.resolve()
    assert find_file(root, "/static/js/main.1a2b3c4d.js") == root / "static/js/main.1a2b3c4d.js"
    for path in (
        "/../secret.txt",
        "/static/../../secret.txt",
        "/static/..\\..\\secret.txt",
        "/static/escape",  # a symlink out of the build
        "/static",  # a directory
        "/static//js/main.1a2b3c4d.js",
        "/",
        "/index.html\x00.js",
    ):
        assert find_file(root, path) is None, path


def test_a_directory_without_index_html_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="build directory"):
        Settings(_env_file=None, web_app_dir=tmp_path)


@pytest.mark.parametrize(
    ("accept", "page"),
    [
        (PAGE, True),
        ("text/html", True),
        ("application/json;q=0.5, text/html", True),
        (AXIOS, False),
        (SCRIPT, False),
        (IMAGE, False),
        ("text/html;q=0, */*", False),
        ("text/html;q=0.5, application/json", False),
        ("text/*, application/json;q=0.9", False),  # HTML only through a wildcard
        ("text/html;q=oops", False),
        (None, False),
    ],
)
def test_a_page_navigation_is_html_ranked_above_json(accept: str | None, page: bool) -> None:
    assert prefers_html(accept) is page
