"""Drive the web app's transcript screen in headless chromium against a running service.

A manual end-to-end check, not part of the test suite (it needs the web app's build,
Playwright and a chromium): sign up, sign out and in, upload a video with speech, open
the transcript screen, "Transcribe Audio", remove the auto-detected fillers and one
selected word, and play the rendered result. Prints one line per step and the API calls.

    JWT_SECRET=... SNIPIX_CORS_ORIGINS=http://127.0.0.1:18432 \
        snipix serve --host 127.0.0.1 --port 18431 &
    python -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    /tmp/pw/bin/python scripts/webapp_transcript.py WEBAPP/build speech.mp4 \
        --api http://127.0.0.1:18431 --port 18432

The web app bakes its API base (REACT_APP_API_URL, default http://localhost:8001) into
its bundle at build time: the build is copied and that address replaced by `--api`.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("build", type=Path, help="the web app's `npm run build` output")
parser.add_argument("video", type=Path, help="a short mp4 with speech")
parser.add_argument("--api", default="http://127.0.0.1:18431", help="the service's base URL")
parser.add_argument("--port", type=int, default=18432, help="where the web app is served")
parser.add_argument("--baked-url", default="http://localhost:8001", help="API base in the build")
parser.add_argument("--chromium", default="/usr/bin/chromium")
parser.add_argument("--shots", type=Path, default=Path(tempfile.gettempdir()) / "webapp-shots")
options = parser.parse_args()
API, VIDEO, APP_PORT, SHOTS = options.api, options.video, options.port, options.shots
SHOTS.mkdir(parents=True, exist_ok=True)
BUILD = Path(tempfile.mkdtemp(prefix="webapp-build-"))
shutil.copytree(options.build, BUILD, dirs_exist_ok=True)
for bundle in (BUILD / "static" / "js").glob("*.js"):
    bundle.write_text(bundle.read_text().replace(options.baked_url, API))


class SpaHandler(http.server.SimpleHTTPRequestHandler):
    """Static files; any other path is the single-page app's index (client routes)."""

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if not path.exists():
            self.path = "/index.html"
        return super().send_head()

    def log_message(self, *args: Any) -> None:
        pass


server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", APP_PORT), functools.partial(SpaHandler, directory=str(BUILD))
)
threading.Thread(target=server.serve_forever, daemon=True).start()
BASE = f"http://127.0.0.1:{APP_PORT}"
results: list[tuple[str, str, str]] = []
api_calls: list[str] = []


def step(name: str, ok: bool, detail: str = "") -> None:
    results.append((name, "ok" if ok else "FAILED", detail))
    print(f"[{'ok' if ok else 'FAILED'}] {name}: {detail}", flush=True)


email = f"speech{int(time.time())}@example.com"
password = "Speech2pass!9"  # noqa: S105 - a throwaway account on a test server
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=options.chromium, args=["--no-sandbox"])
    page = browser.new_page()
    page.on(
        "response",
        lambda r: (
            api_calls.append(f"{r.request.method} {r.url} {r.status}")
            if r.url.startswith(API)
            else None
        ),
    )
    page.on(
        "console", lambda m: print("console:", m.type, m.text[:200]) if m.type == "error" else None
    )
    try:
        page.goto(f"{BASE}/register")
        page.fill("input[name=name]", "Speech Tester")
        page.fill("input[name=email]", email)
        page.fill("input[name=username]", "speechtester")
        page.fill("input[name=password]", password)
        page.fill("input[name=confirmPassword]", password)
        for box in page.locator("input[type=checkbox]").all():
            box.check()
        page.click("button[type=submit]")
        page.wait_for_url("**/verify-email**", timeout=20_000)
        step("register", True, page.url)

        # Signed in by the registration: sign out (forget the tokens) and sign in again.
        page.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
        page.context.clear_cookies()
        page.goto(f"{BASE}/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_function("() => !location.pathname.startsWith('/login')", timeout=20_000)
        step("sign in", True, page.url)

        page.goto(f"{BASE}/upload")
        page.set_input_files("input[type=file]", str(VIDEO))
        page.screenshot(path=str(SHOTS / "1-selected.png"))
        upload = page.get_by_role("button", name="Start Upload")
        upload.click()
        page.get_by_text("Upload Successful!").wait_for(timeout=60_000)
        step("upload", True, "Upload Successful!")
        page.get_by_role("button", name="Go to Transcript").click()
        page.wait_for_url("**/transcript/**", timeout=20_000)
        project_id = page.url.rstrip("/").split("/")[-1]
        page.get_by_role("button", name="Transcribe Audio").wait_for(timeout=20_000)
        step("transcript screen", True, page.url)

        started = time.monotonic()
        page.get_by_role("button", name="Transcribe Audio").click()
        page.get_by_text(" words").first.wait_for(timeout=150_000)
        page.wait_for_function("() => /\\d+ words/.test(document.body.innerText)", timeout=150_000)
        took = time.monotonic() - started
        text = page.inner_text("body")
        count = next(line for line in text.splitlines() if line.strip().endswith(" words"))
        page.screenshot(path=str(SHOTS / "2-transcribed.png"), full_page=True)
        heard = " ".join(page.locator("span[title]").all_inner_texts())
        step("transcribe", True, f"{count.strip()} in {took:.1f} s: {heard}")

        page.get_by_role("button", name="Remove Auto-Detected Fillers").click()
        page.get_by_text("Auto-detected fillers removed!").first.wait_for(timeout=120_000)
        step("remove auto-detected fillers", True, "toast: Auto-detected fillers removed!")

        # Select one word and remove it, as the app does.
        page.locator("span[title]").nth(1).click()
        page.get_by_role("button", name="Remove Selected (1)").click()
        page.get_by_text("Selected fillers removed!").first.wait_for(timeout=120_000)
        step("remove selected word", True, "toast: Selected fillers removed!")
        page.screenshot(path=str(SHOTS / "3-removed.png"), full_page=True)

        # The rendered result: fetched with the app's token, played in a <video>.
        played = page.evaluate(
            """async ([api, projectId]) => {
                // As the transcript screen fetches the project's video.
                const tokens = JSON.parse(localStorage.getItem('auth_tokens'));
                const token = tokens.access_token || tokens.accessToken;
                const r = await fetch(`${api}/media/${projectId}/video/trimmed`, {
                  headers: {Authorization: `Bearer ${token}`}});
                if (!r.ok) return {status: r.status};
                const blob = await r.blob();
                const v = document.createElement('video');
                v.muted = true; v.src = URL.createObjectURL(blob);
                document.body.appendChild(v);
                await v.play();
                await new Promise(res => setTimeout(res, 1500));
                return {status: r.status, bytes: blob.size, duration: v.duration,
                        currentTime: v.currentTime, error: v.error && v.error.code};
            }""",
            [API, project_id],
        )
        step(
            "result plays",
            played.get("status") == 200 and played.get("currentTime", 0) > 0.5,
            json.dumps(played),
        )
    except Exception as error:  # noqa: BLE001 - a report, not a test: say where it stopped
        page.screenshot(path=str(SHOTS / "failed.png"), full_page=True)
        step("(stopped)", False, f"{type(error).__name__}: {str(error)[:300]}")
    finally:
        browser.close()
        server.shutdown()
        shutil.rmtree(BUILD, ignore_errors=True)

print("\nAPI calls:")
for call in api_calls:
    print(" ", call)
print("\nRESULTS", json.dumps(results))
