"""Simulated editors against a running service, in their own process.

    .venv/bin/python benchmarks/editors.py --base URL --projects FILE --editors N --seconds S

Each editor owns one project (FILE: a JSON list of [user, project id] pairs, each with a
saved timeline) and behaves like the web app: opens the project (GET project, then its
timeline), autosaves a small patch every 2 s (`If-Match`, `Idempotency-Key`,
`Prefer: return=minimal`), reads its project list every 30 s, reopens the project every
15 s, and undoes now and then (1 in 10 autosaves). Editors start spread over the first two
seconds. Prints one JSON line: latencies per operation, errors, and this process's own CPU
time, which shows whether the client was the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx

AUTOSAVE_EVERY_S = 2.0
LIST_EVERY_S = 30.0
REOPEN_EVERY_S = 15.0
UNDO_ONE_IN = 10


class Meter:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.statuses: dict[str, int] = defaultdict(int)

    def record(self, kind: str, started: float, response: httpx.Response | None) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        status = response.status_code if response is not None else 0
        self.statuses[f"{kind}:{status}"] += 1
        if response is None or (response.status_code >= 400 and response.status_code != 412):
            self.errors[kind] += 1
            return
        self.latencies[kind].append(elapsed_ms)


async def request(
    http: httpx.AsyncClient, method: str, url: str, **kwargs: object
) -> httpx.Response | None:
    try:
        return await http.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError:
        return None


async def editor(
    http: httpx.AsyncClient,
    user: str,
    project_id: str,
    meter: Meter,
    deadline: float,
    rng: random.Random,
) -> None:
    headers = {"X-User-Id": user}
    project_url = f"/api/v1/projects/{project_id}"
    timeline_url = f"{project_url}/timeline"
    await asyncio.sleep(rng.uniform(0, 2))
    version = 0
    clips = 0

    async def open_project() -> None:
        nonlocal version, clips
        started = time.perf_counter()
        got = await request(http, "GET", project_url, headers=headers)
        timeline = await request(http, "GET", timeline_url, headers=headers)
        ok = got is not None and got.status_code == 200
        meter.record("open", started, timeline if ok else None)
        if timeline is not None and timeline.status_code == 200:
            body = timeline.json()
            version = body["version"]
            clips = len(body["state"]["clips"])

    await open_project()
    next_list = time.monotonic() + rng.uniform(0, LIST_EVERY_S)
    next_reopen = time.monotonic() + REOPEN_EVERY_S
    saves = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(AUTOSAVE_EVERY_S)
        if time.monotonic() >= deadline:
            break
        saves += 1
        if clips and saves % UNDO_ONE_IN == 0:
            started = time.perf_counter()
            undone = await request(
                http,
                "POST",
                f"{timeline_url}/undo",
                headers={**headers, "If-Match": f'"{version}"'},
            )
            meter.record("undo", started, undone)
            if undone is not None and undone.status_code == 200:
                # The editor shows the state undo returned (undoing the first save empties
                # the timeline: patching clips it no longer has would be a 422).
                version = undone.json()["version"]
                clips = len(undone.json()["state"]["clips"])
            elif undone is not None and undone.status_code == 412:
                version = undone.json()["error"]["details"]["currentVersion"]
        elif clips:
            index = rng.randrange(clips)
            patch = [
                {
                    "op": "replace",
                    "path": f"/clips/{index}/volume",
                    "value": rng.choice((0.5, 0.8, 1.0)),
                },
                # Not `speed`: slowing a clip down lengthens it, and an overlap with the next
                # clip on its track is (rightly) a 422, an edit no editor's UI would send.
                {
                    "op": "replace",
                    "path": f"/clips/{(index + 1) % clips}/volume",
                    "value": rng.choice((0.5, 0.8, 1.0)),
                },
                {"op": "replace", "path": "/fps", "value": 30.0},
            ]
            started = time.perf_counter()
            saved = await request(
                http,
                "PATCH",
                timeline_url,
                content=json.dumps(patch),
                headers={
                    **headers,
                    "If-Match": f'"{version}"',
                    "Idempotency-Key": uuid.uuid4().hex,
                    "Content-Type": "application/json-patch+json",
                    "Prefer": "return=minimal",
                },
            )
            meter.record("autosave", started, saved)
            if saved is not None and saved.status_code == 204:
                version = int(saved.headers["ETag"].strip('"'))
            elif saved is not None and saved.status_code == 412:
                version = saved.json()["error"]["details"]["currentVersion"]
        now = time.monotonic()
        if now >= next_list:
            next_list = now + LIST_EVERY_S
            started = time.perf_counter()
            meter.record(
                "list",
                started,
                await request(http, "GET", "/api/v1/projects?limit=50", headers=headers),
            )
        if now >= next_reopen:
            next_reopen = now + REOPEN_EVERY_S
            await open_project()


async def run(base: str, pairs: list[list[str]], editors: int, seconds: float) -> dict[str, object]:
    meter = Meter()
    rng = random.Random(11)  # noqa: S311 - a reproducible workload, not a secret
    limits = httpx.Limits(max_connections=editors + 4, max_keepalive_connections=editors + 4)
    started_cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(
                editor(http, user, project_id, meter, deadline, random.Random(rng.random()))  # noqa: S311
                for user, project_id in pairs[:editors]
            )
        )
    wall = time.monotonic() - started
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (used.ru_utime - started_cpu.ru_utime) + (used.ru_stime - started_cpu.ru_stime)
    return {
        "editors": editors,
        "seconds": wall,
        "latencies_ms": meter.latencies,
        "errors": meter.errors,
        "statuses": meter.statuses,
        "client_cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--projects", required=True, type=Path)
    parser.add_argument("--editors", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    pairs = json.loads(args.projects.read_text())
    if len(pairs) < args.editors:
        parser.error(
            f"{args.projects} lists {len(pairs)} projects; {args.editors} editors need one each"
        )
    print(json.dumps(asyncio.run(run(args.base, pairs, args.editors, args.seconds))))


if __name__ == "__main__":
    main()
