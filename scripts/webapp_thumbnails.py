"""Drive the original web app in headless chromium: sign-up to project thumbnail to trim.

A manual end-to-end check, not part of the test suite (it needs the web app's build, a
running service, Playwright and a chromium): register, verify with the link from the mail,
sign out and in, upload a short video, see its thumbnail in the project list (the `<img>`
decoded: `naturalWidth > 0`), open the timeline, Quick Save (the save and its trim render).
Prints one line per step, the requests the page made, and a JSON summary; exits 1 if a
step failed.

The app calls `http://localhost:8001` unless built with another REACT_APP_API_URL, and its
thumbnails load only when the page and its API share an origin (docs/decisions.md, "Web
app"). The two ways to run it:

1. Same origin, the backend serves the build (`npm run build`, default API address):

       SNIPIX_WEB_APP_DIR=WEBAPP/build SNIPIX_WEB_APP_URL=http://localhost:8001 \\
           JWT_SECRET=... snipix serve --port 8001 &
       python scripts/webapp_thumbnails.py --app http://localhost:8001 --mail .snipix/mail

2. The app's dev server, which proxies its non-page requests to :8001:

       SNIPIX_WEB_APP_URL=http://localhost:3000 JWT_SECRET=... snipix serve --port 8001 &
       (cd WEBAPP && BROWSER=none REACT_APP_API_URL=http://localhost:3000 npm start) &
       python scripts/webapp_thumbnails.py --app http://localhost:3000 --mail .snipix/mail

Playwright: `python -m venv /tmp/pw && /tmp/pw/bin/pip install playwright`, then run this
with /tmp/pw/bin/python; it uses the system chromium (`--chromium`). Without SMTP_URL the
local profile writes each mail to `.snipix/mail/` beside the data directory (`--mail`).
The video is made with ffmpeg (3 s, 320x240, a keyframe every second).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument(
    "--app", default="http://localhost:8001", help="where the browser opens the app"
)
parser.add_argument("--mail", type=Path, required=True, help="the service's mail directory")
parser.add_argument("--chromium", default="/usr/bin/chromium")
parser.add_argument("--shots", type=Path, default=Path(tempfile.gettempdir()) / "webapp-shots")
options = parser.parse_args()
APP: str = options.app.rstrip("/")
SHOTS: Path = options.shots
SHOTS.mkdir(parents=True, exist_ok=True)
results: list[tuple[str, str, str]] = []
requests: list[str] = []


def step(name: str, ok: bool, detail: str = "") -> None:
    results.append((name, "ok" if ok else "FAILED", detail))
    print(f"[{'ok' if ok else 'FAILED'}] {name}: {detail}", flush=True)
    if not ok:
        raise RuntimeError(f"{name}: {detail}")


def make_video(path: Path) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is needed to make the test video")
    subprocess.run(
        [
            ffmpeg, "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30:duration=3",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip


def verification_link(address: str, timeout_s: float = 30) -> str:
    """The link in the newest verification mail to `address` in the mail directory."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found: list[tuple[float, str]] = []
        for file in options.mail.glob("*.eml"):
            message = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
            if address not in str(message["To"]):
                continue
            body = message.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""
            match = re.search(r"https?://\S+/verify-email\?token=\S+", text)
            if match:
                found.append((file.stat().st_mtime, match.group(0)))
        if found:
            return max(found)[1]
        time.sleep(0.2)  # a manual script polling a directory, not a test
    raise RuntimeError(f"no verification mail to {address} in {options.mail}")


def thumbnail(page: Page, name: str) -> dict[str, Any]:
    """The project card's `<img>` once the browser has settled it."""
    image = page.locator(f"img[alt='{name}']")
    image.wait_for(timeout=20_000)
    state: dict[str, Any] = page.evaluate(
        """async (name) => {
            const img = document.querySelector(`img[alt='${name}']`);
            if (!img.complete) await new Promise(r => { img.onload = r; img.onerror = r; });
            return {src: img.currentSrc, naturalWidth: img.naturalWidth,
                    naturalHeight: img.naturalHeight};
        }""",
        name,
    )
    return state


stamp = int(time.time())
address = f"thumbs{stamp}@example.com"
password = "Thumb-nail-2026!"  # noqa: S105 - a throwaway account on a local server
name = f"clip{stamp}"
video = Path(tempfile.mkdtemp(prefix="webapp-video-")) / f"{name}.mp4"
make_video(video)
failed = False
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=options.chromium, args=["--no-sandbox"])
    page = browser.new_page()
    page.on(
        "response",
        lambda r: (
            requests.append(f"{r.request.method} {r.url} {r.status}")
            if "/static/" not in r.url
            else None
        ),
    )
    page.on("console", lambda m: print("console:", m.text[:200]) if m.type == "error" else None)
    try:
        page.goto(f"{APP}/register")
        page.fill("input[name=name]", "Thumb Tester")
        page.fill("input[name=email]", address)
        page.fill("input[name=username]", f"thumbs{stamp}")
        page.fill("input[name=password]", password)
        page.fill("input[name=confirmPassword]", password)
        for box in page.locator("input[type=checkbox]").all():
            box.check()
        page.click("button[type=submit]")
        page.wait_for_url("**/verify-email**", timeout=20_000)
        step("register", True, page.url)

        link = verification_link(address)
        step("verification mail", link.startswith(f"{APP}/verify-email?token="), link[:60])
        page.goto(link)
        page.get_by_text("Email Verified!").wait_for(timeout=20_000)
        step("verify (link from the mail)", True, "Email Verified!")

        # Sign out as a new browser would be: no tokens, no cookies; then sign in.
        page.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
        page.context.clear_cookies()
        page.goto(f"{APP}/login")
        page.fill("input[name=email]", address)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_function("() => !location.pathname.startsWith('/login')", timeout=20_000)
        cookies = [c for c in page.context.cookies() if c["name"] == "snipix_media"]
        step(
            "sign in",
            bool(cookies),
            f"{page.url}; media cookie kept by the browser: "
            + (
                json.dumps({k: cookies[0][k] for k in ("path", "httpOnly", "sameSite")})
                if cookies
                else "none"
            ),
        )

        page.goto(f"{APP}/upload")
        page.set_input_files("input[type=file]", str(video))
        page.get_by_role("button", name="Start Upload").click()
        page.get_by_text("Upload Successful!").wait_for(timeout=60_000)
        step("upload", True, "Upload Successful!")

        page.goto(f"{APP}/projects")
        state = thumbnail(page, name)
        page.screenshot(path=str(SHOTS / "projects.png"), full_page=True)
        step("project list thumbnail", state["naturalWidth"] > 0, json.dumps(state))
        project_id = state["src"].rstrip("/").split("/")[-2]

        page.goto(f"{APP}/timeline/{project_id}")
        save = page.locator("button[title='Save Changes'], button[title='All Changes Saved']")
        save.first.wait_for(timeout=30_000)
        with page.expect_response(lambda r: "/media/trim-video" in r.url, timeout=60_000) as trim:
            save.first.click()
            page.get_by_text("Quick Save").click()
        trimmed = trim.value
        page.get_by_text("Timeline saved successfully!").first.wait_for(timeout=30_000)
        step("quick save + trim", trimmed.status == 200, f"POST /media/trim-video {trimmed.status}")
        played = page.evaluate(
            """async (projectId) => {
                // A plain <video> of the render: only the media cookie authorises it.
                const v = document.createElement('video');
                v.muted = true; v.src = `/media/${projectId}/video/trimmed`;
                document.body.appendChild(v);
                await new Promise(r => { v.onloadedmetadata = r; v.onerror = r; });
                return {duration: v.duration, error: v.error && v.error.code};
            }""",
            project_id,
        )
        step("render plays from a plain <video>", played.get("duration", 0) > 0, json.dumps(played))
        page.screenshot(path=str(SHOTS / "timeline.png"), full_page=True)
    except Exception as error:  # noqa: BLE001 - a report, not a test: say where it stopped
        failed = True
        page.screenshot(path=str(SHOTS / "failed.png"), full_page=True)
        if not results or results[-1][1] == "ok":
            results.append(("(stopped)", "FAILED", f"{type(error).__name__}: {str(error)[:300]}"))
            print(f"[FAILED] (stopped): {type(error).__name__}: {str(error)[:300]}")
    finally:
        browser.close()

print("\nrequests (pages, API, media):")
for line in requests:
    print(" ", line)
print("\nRESULTS", json.dumps({"app": APP, "steps": results}))
sys.exit(1 if failed else 0)
