"""Two editors on one timeline at once: how many of their stale autosaves are merged, how
many refused (412, reload), what an autosave costs, and whether any edit was lost.

    .venv/bin/python benchmarks/merge_editors.py [--seconds 60] [--every 2.0]
        [--clips 50] [--window 50]
    .venv/bin/python benchmarks/merge_editors.py --transform 5000


A fresh embedded engine, a redis-server and one `snipix serve` (as the suite starts it,
over HTTP on loopback). One project's timeline is seeded with `--clips` clips. Two editors
then autosave every `--every` seconds (offset by half a period), each from the state its
last save answered (a PATCH with `If-Match`, an `Idempotency-Key`, the full answer back),
on clips of its own (A the even ones, B the odd ones: renames and volume changes), and
every 5th autosave prepends a marker of its own, every 7th removes its oldest one (so each
moves the other's markers). Whatever the other saved in between makes an autosave stale:
it is merged over, or refused with 412, after which the editor reloads and applies the
same edit again (counted as a retry). `--window 0` (SNIPIX_TIMELINE_MERGE_WINDOW=0) is
the service before merging.

At the end the timeline is read and checked against both editors' edits: every clip
holds its editor's last name and volume, every marker added and not removed is there.

`--transform N` measures the merge alone, in this process: the CPU time of rebasing a
3-operation autosave over 1, 10 and 50 revisions (each 3 operations) on an N-clip state.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import random
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import suite
from harness import database, describe_engine, expect, p95, redis_server
from timeline_autosave import build_state

from snipix.timelines.patches import apply_patch
from snipix.timelines.rebase import Concurrent, rebase

USER = "bench-merge"
HEADERS = {"X-User-Id": USER}
PATCH_TYPE = "application/json-patch+json"


@dataclass
class Editor:
    name: str
    parity: int
    rng: random.Random
    state: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    # What this editor's edits should leave: clip id -> (name, volume); its live markers.
    clips: dict[str, tuple[str, float]] = field(default_factory=dict)
    markers: list[str] = field(default_factory=list)
    saves: int = 0
    merged: int = 0
    refused: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    merged_ms: list[float] = field(default_factory=list)
    # From an autosave's first request to its edit saved (reloads and retries included).
    saved_ms: list[float] = field(default_factory=list)

    def edit(
        self,
    ) -> tuple[list[dict[str, Any]], dict[str, tuple[str, float]], str | None, str | None]:
        """The next autosave on the state in hand: operations, clip results, a marker added
        and one removed (by id)."""
        clips = self.state["clips"]
        mine = [i for i in range(len(clips)) if i % 2 == self.parity]
        operations: list[dict[str, Any]] = []
        results: dict[str, tuple[str, float]] = {}
        for index in self.rng.sample(mine, k=min(len(mine), self.rng.randint(1, 3))):
            name = f"{self.name}-{self.saves}-{index}"
            volume = round(self.rng.uniform(0.2, 1.0), 3)
            operations += [
                {"op": "replace", "path": f"/clips/{index}/name", "value": name},
                {"op": "replace", "path": f"/clips/{index}/volume", "value": volume},
            ]
            results[clips[index]["id"]] = (name, volume)
        added = removed = None
        if self.saves % 5 == 0:
            added = f"{self.name}-m{self.saves}"
            marker = {"id": added, "time": 0.0, "label": self.name, "color": ""}
            operations.append({"op": "add", "path": "/markers/0", "value": marker})
        elif self.saves % 7 == 0 and self.markers:
            removed = self.markers[0]
            ids = [m["id"] for m in self.state["markers"]]
            operations.append({"op": "remove", "path": f"/markers/{ids.index(removed)}"})
        return operations, results, added, removed


async def reload(http: httpx.AsyncClient, url: str, editor: Editor) -> None:
    response = await http.get(url, headers=HEADERS)
    expect(response, 200, "reload")
    body = response.json()
    editor.state, editor.version = body["state"], body["version"]


async def run_editor(
    http: httpx.AsyncClient, url: str, editor: Editor, every: float, start: float, end: float
) -> None:
    await reload(http, url, editor)
    tick = start
    while True:
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
        if time.monotonic() >= end:
            return
        tick += every
        operations, results, added, removed = editor.edit()
        key = uuid.uuid4().hex
        first = time.perf_counter()
        while True:
            began = time.perf_counter()
            response = await http.patch(
                url,
                content=json.dumps(operations),
                headers={
                    **HEADERS,
                    "Content-Type": PATCH_TYPE,
                    "If-Match": f'"{editor.version}"',
                    "Idempotency-Key": key,
                },
            )
            elapsed = (time.perf_counter() - began) * 1000
            editor.latencies_ms.append(elapsed)
            if response.status_code == 412:
                # The editor before merging: reload, and make the same edit on the new state.
                editor.refused += 1
                await reload(http, url, editor)
                operations, results, added, removed = editor.edit()
                key = uuid.uuid4().hex
                continue
            if response.status_code != 200:
                editor.errors += 1
                print(f"{editor.name}: HTTP {response.status_code}: {response.text[:300]}")
                break
            editor.saves += 1
            editor.saved_ms.append((time.perf_counter() - first) * 1000)
            if "X-Merged-Over" in response.headers:
                editor.merged += 1
                editor.merged_ms.append(elapsed)
            body = response.json()
            editor.state, editor.version = body["state"], body["version"]
            editor.clips.update(results)
            if added:
                editor.markers.append(added)
            if removed:
                editor.markers.remove(removed)
            break


def lost_edits(state: dict[str, Any], editors: list[Editor]) -> int:
    by_id = {clip["id"]: clip for clip in state["clips"]}
    markers = {marker["id"] for marker in state["markers"]}
    lost = 0
    for editor in editors:
        for clip_id, (name, volume) in editor.clips.items():
            clip = by_id.get(clip_id)
            if clip is None or clip.get("name") != name or clip.get("volume") != volume:
                lost += 1
        lost += sum(1 for marker in editor.markers if marker not in markers)
        mine = {m for m in markers if m.startswith(f"{editor.name}-m")}
        lost += len(mine - set(editor.markers))  # a removal that did not happen
    return lost


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


async def simulate(base: str, args: argparse.Namespace) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = await http.post("/api/v1/projects", json={"name": "Shared"}, headers=HEADERS)
        expect(created, 201, "create project")
        url = f"{created.headers['Location']}/timeline"
        state = copy.deepcopy(build_state(args.clips))
        state["markers"] = []
        saved = await http.put(url, json={"state": state}, headers={**HEADERS, "If-Match": '"0"'})
        expect(saved, 200, "seed timeline")
        editors = [Editor("a", 0, random.Random(1)), Editor("b", 1, random.Random(2))]  # noqa: S311
        start = time.monotonic() + 0.5
        end = start + args.seconds
        await asyncio.gather(
            run_editor(http, url, editors[0], args.every, start, end),
            run_editor(http, url, editors[1], args.every, start + args.every / 2, end),
        )
        final = (await http.get(url, headers=HEADERS)).json()
    saves = sum(e.saves for e in editors)
    merged = sum(e.merged for e in editors)
    refused = sum(e.refused for e in editors)
    attempts = saves + refused
    latencies = [ms for e in editors for ms in e.latencies_ms]
    merged_ms = [ms for e in editors for ms in e.merged_ms]
    saved_ms = [ms for e in editors for ms in e.saved_ms]
    print(
        f"window {args.window}: {saves} autosaves in {args.seconds:.0f} s by 2 editors "
        f"(every {args.every} s each), {args.clips} clips, final version {final['version']}"
    )
    print(
        f"  merged   {merged:4d}  {merged / max(saves, 1):6.1%} of autosaves\n"
        f"  refused  {refused:4d}  {refused / max(attempts, 1):6.1%} of requests "
        "(412: reload, edit again)\n"
        f"  errors   {sum(e.errors for e in editors)}\n"
        f"  lost edits {lost_edits(final['state'], editors)}"
    )
    print(
        f"  request  p50 {percentile(latencies, 0.5):.1f} ms  p95 {p95(latencies):.1f} ms"
        f" ({len(latencies)} requests)"
    )
    print(
        f"  edit saved p50 {percentile(saved_ms, 0.5):.1f} ms  p95 {p95(saved_ms):.1f} ms"
        " (first request to saved, reload and retry included)"
    )
    if len(merged_ms) > 1:
        print(f"  merged   p50 {percentile(merged_ms, 0.5):.1f} ms  p95 {p95(merged_ms):.1f} ms")


def transform_cost(clips: int) -> None:
    """Milliseconds of one rebase (the service's CPU per merged autosave, beyond a patch)."""
    head = build_state(clips)
    rng = random.Random(3)  # noqa: S311
    for behind in (1, 10, 50):
        stored: list[Concurrent] = []
        for version in range(2, behind + 2):
            index = rng.randrange(1, clips, 2)
            forward: list[dict[str, Any]] = [
                {"op": "add", "path": f"/clips/{index}/name", "value": f"v{version}"},
                {"op": "add", "path": f"/clips/{index}/volume", "value": 0.5},
                {"op": "add", "path": "/markers/0", "value": {"id": f"m{version}", "time": 0.0}},
            ]
            applied = apply_patch(head, forward)
            stored.append(Concurrent(version, forward, applied.inverse))
            head = applied.document
        mine: list[dict[str, Any]] = [
            {"op": "add", "path": "/clips/0/name", "value": "mine"},
            {"op": "add", "path": "/clips/0/volume", "value": 0.7},
            {"op": "add", "path": "/markers/0/label", "value": "mine"},
        ]
        rounds = 20
        began = time.process_time()
        for _ in range(rounds):
            result = rebase(head, stored[-behind:], mine)
        elapsed = (time.process_time() - began) / rounds * 1000
        print(
            f"{clips} clips, {behind:2d} revisions behind: {elapsed:7.1f} ms CPU ({result!r:.40})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between autosaves")
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--window", type=int, default=50, help="SNIPIX_TIMELINE_MERGE_WINDOW")
    parser.add_argument("--transform", type=int, metavar="CLIPS", help="time the merge alone")
    args = parser.parse_args()
    if args.transform:
        transform_cost(args.transform)
        return
    with (
        tempfile.TemporaryDirectory(prefix="snipix-merge-") as tmp,
        database(None) as (uri, embedded, _scratch),
        redis_server(None) as redis_url,
        suite.service(
            uri,
            redis_url,
            Path(tmp),
            "service",
            SNIPIX_TIMELINE_MERGE_WINDOW=str(args.window),
        ) as svc,
    ):
        print(asyncio.run(describe_engine(uri, embedded)))
        asyncio.run(simulate(svc.base, args))


if __name__ == "__main__":
    main()
