"""Timeline autosave: a 10-operation JSON Patch (PATCH) against a full-state save (PUT) of
the same resulting state on a large timeline, and rebuilding an old version from the
nearest snapshot plus patches.

    .venv/bin/python benchmarks/timeline_autosave.py [--clips 5000] [--saves 40]
        [--snapshot-every K] [--mongodb-uri URI]

Without `--mongodb-uri` a fresh embedded engine process is started in a temporary
directory and stopped at the end; with it, a throw-away database is created and dropped.
The app runs in this process (ASGI, no sockets) with a PyMongo CommandListener that sums
the BSON size of every write command (insert, update, findAndModify, delete) it sends.

Two projects start from the same saved timeline. Each round makes one edit (move/trim 10
clips: `replace` of start, sourceIn or sourceOut) and saves it on both, A as the PATCH
autosave, B as a PUT of the resulting state, alternating which goes first; both timelines
stay identical, so both hit snapshots at the same versions. Latency is measured at the
HTTP client (request bodies are encoded beforehand, response bodies are read but not
parsed). Then a snapshot version s of A, s + 1 and s + K - 1 (rebuilt from the snapshot
plus K - 1 patches; A gets more patches first if needed) and the head are read back, and
every state read is checked against the client's own state at that version.

K is 20 by default (the service's default is 50, which would need ~100 saves of a 1 MB
head); the rebuild cost per replayed patch is printed and projected to 50. With the
defaults the run takes about 6 minutes on 2 cores with the embedded engine, which spends
seconds on every update of a 1 MB head document.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson
import httpx
from harness import (
    database,
    describe_engine,
    drop_database,
    expect,
    p95,
    running_app,
)
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from snipix.app import create_app
from snipix.observability.logging import configure_logging
from snipix.settings import Settings

USER = {"X-User-Id": "bench"}
PATCH_TYPE = {"Content-Type": "application/json-patch+json"}
JSON_TYPE = {"Content-Type": "application/json"}
WRITE_COMMANDS = frozenset({"insert", "update", "findAndModify", "delete"})
# Environment variables that must not reach the engine process we start.
SETTING_PREFIXES = ("SNIPIX_", "MONGODB_", "REDIS_", "JWT_", "LOG_", "SLOW_QUERY", "AUDIT_")
EDIT_OPS = 10
REBUILD_READS = 5
DEFAULT_K: int = Settings.model_fields["timeline_snapshot_every"].default
# The benchmark's K: 40 timed patch saves then already reach a version K - 1 patches past a
# snapshot (a version of K=50 would need ~100 saves of a 1 MB head, ~4 s each on the
# embedded engine); the rebuild cost per patch is measured and projected to DEFAULT_K.
BENCH_K = 20


# --- the timeline -----------------------------------------------------------------------

TRACKS: list[dict[str, Any]] = [
    {"id": "v1", "kind": "video", "name": "Main camera", "order": 0},
    {"id": "v2", "kind": "video", "name": "B-roll", "order": 1},
    {"id": "v3", "kind": "video", "name": "Cutaways", "order": 2},
    {"id": "o1", "kind": "overlay", "name": "Logos", "order": 3, "allowOverlap": True},
    {"id": "t1", "kind": "text", "name": "Lower thirds", "order": 4},
    {"id": "a1", "kind": "audio", "name": "Dialogue", "order": 5},
    {"id": "a2", "kind": "audio", "name": "Room tone", "order": 6},
    {"id": "a3", "kind": "audio", "name": "Music", "order": 7, "muted": False},
    {"id": "a4", "kind": "audio", "name": "SFX", "order": 8},
]
# Which track each clip goes on, in turn: mostly picture and dialogue, a few titles.
PATTERN: tuple[str, ...] = ("v1", "a1", "v2", "a2", "v1", "a1", "v3", "a3", "v1", "a1")
PATTERN += ("v2", "a2", "v1", "a1", "o1", "a4", "v2", "a2", "t1", "a3")
CAMERAS = ("cam-a", "cam-b", "drone", "phone")
COLORS = ("#e57373", "#64b5f6", "#81c784", "#ffd54f", "#ba68c8")
LUTS = ("Rec709-Kodak2383", "Teal-Orange", "BW-Contrast")


def _seconds(value: float) -> float:
    return round(value, 3)


def _effects(kind: str, rng: random.Random) -> list[dict[str, Any]]:
    effects: list[dict[str, Any]] = []
    if kind in {"video", "overlay"}:
        if rng.random() < 0.1:
            effects.append(
                {
                    "type": "colorCorrection",
                    "params": {
                        "brightness": _seconds(rng.uniform(-0.2, 0.2)),
                        "contrast": _seconds(rng.uniform(0.8, 1.2)),
                        "saturation": _seconds(rng.uniform(0.8, 1.3)),
                    },
                }
            )
        if rng.random() < 0.02:
            effects.append({"type": "lut", "params": {"name": rng.choice(LUTS), "intensity": 0.8}})
    elif kind == "audio":
        if rng.random() < 0.08:
            effects.append({"type": "gain", "params": {"db": _seconds(rng.uniform(-6, 6))}})
    elif kind == "text":
        effects.append(
            {
                "type": "textStyle",
                "params": {"font": "Inter", "size": 42.0, "color": "#ffffff", "shadow": True},
            }
        )
    return effects


def build_state(clips: int, seed: int = 7) -> dict[str, Any]:
    """A timeline an editor could have made: clips on every track, gaps between them,
    effects with parameters, transitions, markers, transcript segments, layers."""
    rng = random.Random(seed)  # noqa: S311 - reproducible benchmark data
    cursor = {track["id"]: rng.uniform(0, 2) for track in TRACKS}
    tracks = {track["id"]: track for track in TRACKS}
    out: list[dict[str, Any]] = []
    for index in range(clips):
        track = tracks[PATTERN[index % len(PATTERN)]]
        kind = track["kind"]
        length = rng.uniform(2, 8)
        source_in = rng.uniform(0, 600)
        speed = rng.choice((1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.5, 0.5))
        start = cursor[track["id"]]
        clip: dict[str, Any] = {
            "id": f"clip-{index:05d}",
            "trackId": track["id"],
            "start": _seconds(start),
            "sourceIn": _seconds(source_in),
            "sourceOut": _seconds(source_in + length),
            "speed": speed,
        }
        if kind == "text":
            clip["name"] = f"Lower third {index}"
        else:
            camera = rng.choice(CAMERAS)
            suffix = "png" if kind == "overlay" else "mp4" if kind == "video" else "wav"
            clip["mediaRef"] = f"media/{camera}-{rng.randint(1, 40):02d}.{suffix}"
        if kind == "audio":
            clip["volume"] = _seconds(rng.uniform(0.4, 1.0))
        effects = _effects(kind, rng)
        if effects:
            clip["effects"] = effects
        if kind == "video" and rng.random() < 0.08:
            clip["transitionIn"] = {"type": "crossDissolve", "durationSec": 0.5}
        if rng.random() < 0.03:
            clip["properties"] = {"color": rng.choice(COLORS)}
        out.append(clip)
        cursor[track["id"]] = start + length / speed + rng.uniform(0.5, 2.0)
    end = max(cursor.values())
    return {
        "tracks": TRACKS,
        "clips": out,
        "markers": [
            {
                "id": f"m{n}",
                "time": _seconds(rng.uniform(0, end)),
                "label": f"Note {n}",
                "color": rng.choice(COLORS),
            }
            for n in range(max(1, clips // 25))
        ],
        "segments": [
            {
                "id": f"s{n}",
                "start": _seconds(n * 10.0),
                "end": _seconds(n * 10.0 + rng.uniform(2, 9)),
                "kind": "cut" if n % 4 == 0 else "keep",
                "source": "transcript",
            }
            for n in range(max(1, clips // 50))
        ],
        "layers": [
            {"id": "picture", "name": "Picture", "trackIds": ["v1", "v2", "v3", "o1", "t1"]},
            {"id": "sound", "name": "Sound", "order": 1, "trackIds": ["a1", "a2", "a3", "a4"]},
        ],
        "fps": 29.97,
    }


@dataclass(frozen=True, slots=True)
class Bounds:
    """Where a clip may move and trim without touching its neighbours on the track."""

    start: tuple[float, float]
    source_in: tuple[float, float]
    source_out: tuple[float, float]


def edit_bounds(state: dict[str, Any]) -> list[Bounds]:
    """Start within the first quarter of the gap after the clip, sourceIn within the first
    quarter of the clip, sourceOut within a quarter of the clip before its end and a
    quarter of the gap after it: the clip's end stays before its neighbour's start."""
    by_track: dict[str, list[int]] = {}
    for index, clip in enumerate(state["clips"]):
        by_track.setdefault(clip["trackId"], []).append(index)
    bounds: list[Bounds | None] = [None] * len(state["clips"])
    for indices in by_track.values():
        indices.sort(key=lambda i: state["clips"][i]["start"])
        for position, index in enumerate(indices):
            clip = state["clips"][index]
            speed = clip["speed"]
            length = clip["sourceOut"] - clip["sourceIn"]
            end = clip["start"] + length / speed
            following = indices[position + 1] if position + 1 < len(indices) else None
            gap = state["clips"][following]["start"] - end if following is not None else 4.0
            bounds[index] = Bounds(
                start=(clip["start"], clip["start"] + gap / 4),
                source_in=(clip["sourceIn"], clip["sourceIn"] + length / 4),
                source_out=(clip["sourceOut"] - length / 4, clip["sourceOut"] + gap / 4 * speed),
            )
    return [b for b in bounds if b is not None]


class Editor:
    """Makes the edits and keeps the state they lead to (what the PUT sends)."""

    FIELDS = (("start", "start"), ("sourceIn", "source_in"), ("sourceOut", "source_out"))

    def __init__(self, state: dict[str, Any], seed: int = 11) -> None:
        self.state = state
        self._bounds = edit_bounds(state)
        self._rng = random.Random(seed)  # noqa: S311 - reproducible benchmark data

    def edit(self, operations: int = EDIT_OPS) -> list[dict[str, Any]]:
        """Move or trim `operations` different clips; apply it to `state`; the patch."""
        chosen = self._rng.sample(range(len(self.state["clips"])), operations)
        patch = []
        for n, index in enumerate(chosen):
            wire, attribute = self.FIELDS[n % len(self.FIELDS)]
            low, high = getattr(self._bounds[index], attribute)
            clip = self.state["clips"][index]
            value = _seconds(self._rng.uniform(low, high))
            while value == clip[wire]:
                value = _seconds(self._rng.uniform(low, high))
            clip[wire] = value
            patch.append({"op": "replace", "path": f"/clips/{index}/{wire}", "value": value})
        return patch


# --- measuring ---------------------------------------------------------------------------

Key = tuple[str, str]  # (command, collection)


@dataclass
class Commands:
    """What one save sent to the database, per (command, collection)."""

    count: Counter[Key] = field(default_factory=Counter)
    written: Counter[Key] = field(default_factory=Counter)  # BSON bytes of write commands
    ms: defaultdict[Key, float] = field(default_factory=lambda: defaultdict(float))


class CommandMeter(CommandListener):
    """Counts, times and (for writes) sizes every command sent while recording."""

    def __init__(self) -> None:
        self.current: Commands | None = None
        self._keys: dict[int, Key] = {}

    @contextmanager
    def recording(self) -> Iterator[Commands]:
        commands = Commands()
        self.current, self._keys = commands, {}
        try:
            yield commands
        finally:
            self.current = None

    def started(self, event: CommandStartedEvent) -> None:
        if self.current is None:
            return
        name = event.command_name
        key = (name, str(event.command.get(name, "")))
        self._keys[event.request_id] = key
        self.current.count[key] += 1
        if name in WRITE_COMMANDS:
            self.current.written[key] += len(bson.encode(event.command))

    def _finished(self, request_id: int, micros: int) -> None:
        key = self._keys.pop(request_id, None)
        if self.current is not None and key is not None:
            self.current.ms[key] += micros / 1000

    def succeeded(self, event: CommandSucceededEvent) -> None:
        self._finished(event.request_id, event.duration_micros)

    def failed(self, event: CommandFailedEvent) -> None:
        self._finished(event.request_id, event.duration_micros)


@dataclass
class Save:
    ms: float
    request_bytes: int
    response_bytes: int
    db: Commands

    @property
    def written(self) -> int:
        return sum(self.db.written.values())

    @property
    def db_ms(self) -> float:
        return sum(self.db.ms.values())

    @property
    def writes(self) -> int:
        return sum(n for (name, _), n in self.db.count.items() if name in WRITE_COMMANDS)

    @property
    def snapshot(self) -> bool:
        return any(collection == "timeline_snapshots" for _, collection in self.db.written)


@dataclass
class Project:
    path: str
    version: int = 0
    saves: list[Save] = field(default_factory=list)


async def new_project(http: httpx.AsyncClient, name: str) -> Project:
    created = await http.post("/api/v1/projects", json={"name": name}, headers=USER)
    expect(created, 201, "create project")
    return Project(path=f"{created.headers['Location']}/timeline")


def encode(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def fingerprint(state: Any) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


async def send(
    http: httpx.AsyncClient,
    meter: CommandMeter,
    project: Project,
    method: str,
    body: bytes,
    headers: dict[str, str],
) -> Save:
    """One timed save (the body is already encoded); the ETag gives the new version."""
    with meter.recording() as commands:
        started = time.perf_counter()
        response = await http.request(
            method,
            project.path,
            content=body,
            headers={**USER, **headers, "If-Match": f'"{project.version}"'},
        )
        ms = (time.perf_counter() - started) * 1000
    expect(response, 200, f"{method} {project.path} at version {project.version}")
    project.version = int(response.headers["ETag"].strip('"'))
    save = Save(ms, len(body), len(response.content), commands)
    project.saves.append(save)
    return save


async def patch_save(
    http: httpx.AsyncClient, meter: CommandMeter, project: Project, operations: list[Any]
) -> Save:
    return await send(http, meter, project, "PATCH", encode(operations), PATCH_TYPE)


async def full_save(
    http: httpx.AsyncClient, meter: CommandMeter, project: Project, state: dict[str, Any]
) -> Save:
    return await send(http, meter, project, "PUT", encode({"state": state}), JSON_TYPE)


async def timed_get(http: httpx.AsyncClient, path: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await http.get(path, headers=USER)
    ms = (time.perf_counter() - started) * 1000
    expect(response, 200, f"GET {path}")
    return ms, response


# --- the run -----------------------------------------------------------------------------


@dataclass
class Rebuild:
    label: str
    version: int
    patches: int  # -1: the head itself (GET /timeline)
    ms: list[float] = field(default_factory=list)
    response_bytes: int = 0


@dataclass
class Results:
    clips: int
    state_bytes: int
    engine: str
    k: int
    first_save: Save
    patches: list[Save]
    fulls: list[Save]
    extra_patches: list[Save]
    rebuilds: list[Rebuild]
    wrong_versions: list[int]
    total_s: float = 0.0


async def measure(
    uri: str, data_dir: Path, *, clips: int, saves: int, k: int, engine: str
) -> Results:
    settings = Settings(
        _env_file=None,
        mongodb_uri=uri,
        mongodb_database=f"bench_autosave_{uuid.uuid4().hex[:8]}",
        data_dir=data_dir,
        log_format="json",
        log_level="WARNING",
        timeline_snapshot_every=k,
        retention_interval_s=0,  # no background job writing during the measurement
    )
    configure_logging(settings)
    meter = CommandMeter()
    app = create_app(settings, command_listeners=[meter])
    try:
        async with running_app(app) as http:
            return await _measure(http, meter, clips=clips, saves=saves, k=k, engine=engine)
    finally:
        await drop_database(uri, settings.database_name)


async def _measure(
    http: httpx.AsyncClient, meter: CommandMeter, *, clips: int, saves: int, k: int, engine: str
) -> Results:
    a = await new_project(http, "Autosave A (patch)")
    b = await new_project(http, "Autosave B (full save)")
    initial = build_state(clips)
    first = await full_save(http, meter, a, initial)
    await full_save(http, meter, b, initial)
    # What the server stores (defaults filled in): the PUTs send exactly this, edited.
    stored = (await http.get(a.path, headers=USER)).json()["state"]
    state_bytes = len(encode(stored))
    editor = Editor(stored)
    # The client's own state at each version of A, to check what the reads rebuild.
    fingerprints = {a.version: fingerprint(editor.state)}

    # One warm-up round (not counted), then `saves` rounds, alternating which goes first.
    order = [(a, True), (b, False)]
    for round_ in range(saves + 1):
        operations = editor.edit()
        for project, is_patch in order if round_ % 2 == 0 else order[::-1]:
            if is_patch:
                await patch_save(http, meter, project, operations)
                fingerprints[a.version] = fingerprint(editor.state)
            else:
                await full_save(http, meter, project, editor.state)
        if sys.stderr.isatty():
            print(f"round {round_}/{saves}", file=sys.stderr, end="\r", flush=True)
    patches, fulls = a.saves[2:], b.saves[2:]
    if a.version != b.version:
        raise RuntimeError(f"A is at version {a.version}, B at {b.version}")

    # Rebuilding: the newest snapshot version s with s + K - 1 reachable, then read s,
    # s + 1 and s + K - 1 (K - 1 patches on top of the snapshot) and the head.
    snapshot = max(k, (a.version - (k - 1)) // k * k)
    extra: list[Save] = []
    while a.version < snapshot + k - 1:
        extra.append(await patch_save(http, meter, a, editor.edit()))
        fingerprints[a.version] = fingerprint(editor.state)
    rebuilds = [
        Rebuild("snapshot, 0 patches", snapshot, 0),
        Rebuild("snapshot + 1 patch", snapshot + 1, 1),
        Rebuild(f"snapshot + {k - 1} patches", snapshot + k - 1, k - 1),
        Rebuild("head: GET /timeline", a.version, -1),
    ]
    if k == 2:
        del rebuilds[1]
    wrong: list[int] = []
    for read in range(REBUILD_READS):
        for rebuild in rebuilds:
            path = a.path if rebuild.patches < 0 else f"{a.path}/versions/{rebuild.version}"
            ms, response = await timed_get(http, path)
            rebuild.ms.append(ms)
            rebuild.response_bytes = len(response.content)
            if read == 0 and fingerprint(response.json()["state"]) != fingerprints[rebuild.version]:
                wrong.append(rebuild.version)
    return Results(
        clips=clips,
        state_bytes=state_bytes,
        engine=engine,
        k=k,
        first_save=first,
        patches=patches,
        fulls=fulls,
        extra_patches=extra,
        rebuilds=rebuilds,
        wrong_versions=wrong,
    )


# --- the report --------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:,.1f} ms"


def _bytes(value: float) -> str:
    return f"{value:,.0f} B"


def _pct(part: float, whole: float) -> str:
    return f"{part / whole * 100:.2f}%" if whole else "n/a"


def _median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def report(results: Results, saves: int) -> None:
    patches, fulls = results.patches, results.fulls

    def row(label: str, a: str, b: str, ratio: str = "") -> None:
        print(f"  {label:<34}{a:>16}{b:>16}{ratio:>10}")

    print("Timeline autosave: PATCH (10-op JSON Patch) vs PUT (full state) of the same edit")
    print()
    print(f"  clips            {results.clips:,} on {len(TRACKS)} tracks, with effects and markers")
    print(f"  state            {results.state_bytes:,} bytes (compact JSON, as stored)")
    print(f"  engine           {results.engine}")
    print(
        f"  machine          {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"  snapshot every   K = {results.k} versions (service default {DEFAULT_K})")
    print(
        f"  saves            {saves} PATCH (project A) + {saves} PUT (project B), interleaved, "
        "the first of each pair alternating; 1 warm-up round not counted"
    )
    print(
        f"  first save       PUT v1: {_ms(results.first_save.ms)}, "
        f"{_bytes(results.first_save.written)} written"
    )
    print()
    row("per save", "PATCH (A)", "PUT (B)", "A / B")
    lat_a, lat_b = [s.ms for s in patches], [s.ms for s in fulls]
    med_a, med_b = _median(lat_a), _median(lat_b)
    row("latency p50", _ms(med_a), _ms(med_b), _pct(med_a, med_b))
    row("latency p95", _ms(p95(lat_a)), _ms(p95(lat_b)), _pct(p95(lat_a), p95(lat_b)))
    dbt_a, dbt_b = _median(s.db_ms for s in patches), _median(s.db_ms for s in fulls)
    row("  of which DB round trips (p50)", _ms(dbt_a), _ms(dbt_b), _pct(dbt_a, dbt_b))
    req_a = _median(s.request_bytes for s in patches)
    req_b = _median(s.request_bytes for s in fulls)
    row("request body", _bytes(req_a), _bytes(req_b), _pct(req_a, req_b))
    res_a = _median(s.response_bytes for s in patches)
    res_b = _median(s.response_bytes for s in fulls)
    row("response body", _bytes(res_a), _bytes(res_b), _pct(res_a, res_b))
    db_a, db_b = _median(s.written for s in patches), _median(s.written for s in fulls)
    row("DB bytes written (p50)", _bytes(db_a), _bytes(db_b), _pct(db_a, db_b))
    mean_a = statistics.fmean(s.written for s in patches)
    mean_b = statistics.fmean(s.written for s in fulls)
    row("DB bytes written (mean)", _bytes(mean_a), _bytes(mean_b), _pct(mean_a, mean_b))
    cmd_a, cmd_b = _median(s.writes for s in patches), _median(s.writes for s in fulls)
    row("DB write commands (p50)", f"{cmd_a:g}", f"{cmd_b:g}")
    ratio = db_a / db_b * 100
    verdict = "meets" if ratio < 5 else "MISSES"
    print()
    print(
        f"  DB bytes written per save, patch / full (p50): {ratio:.2f}% ({verdict} the < 5% target)"
    )

    every = [*patches, *results.extra_patches]
    snapshot_saves = [s for s in every if s.snapshot]
    plain = [s.written for s in every if not s.snapshot]
    if snapshot_saves and plain:
        extra = statistics.fmean(s.written for s in snapshot_saves) - _median(plain)
        print(
            f"  a patch save that also writes the snapshot (every K-th version): "
            f"+{_bytes(extra)} ({len(snapshot_saves)} seen)"
        )
        for k in sorted({results.k, DEFAULT_K}):
            amortized, full = _median(plain) + extra / k, db_b + extra / k
            print(
                f"    amortized over K={k}: {_bytes(amortized)} per patch save = "
                f"{_pct(amortized, full)} of a full save (snapshots included in both)"
            )

    print()
    print("  DB commands per save (mean)          count        bytes written         ms")
    keys = sorted({key for s in [*patches, *fulls] for key in s.db.count})
    for kind, group in (("PATCH", patches), ("PUT", fulls)):
        for key in keys:
            n = statistics.fmean(s.db.count[key] for s in group)
            if not n:
                continue
            written = statistics.fmean(s.db.written[key] for s in group)
            ms = statistics.fmean(s.db.ms[key] for s in group)
            shown = _bytes(written) if key[0] in WRITE_COMMANDS else "-"
            label = f"{kind:<6}{key[0]} {key[1]}"
            print(f"    {label:<34}{n:>5.2f}{shown:>21}{ms:>11,.1f}")

    extra_saves = results.extra_patches
    if extra_saves:
        print()
        print(
            f"  {len(extra_saves)} more patch saves to reach the rebuilt version: p50 "
            f"{_ms(_median(s.ms for s in extra_saves))}, p95 "
            f"{_ms(p95([s.ms for s in extra_saves]))}"
        )
    print()
    title = f"reads (GET, {REBUILD_READS} each)"
    print(f"  {title:<42}{'p50':>12}{'p95':>14}{'response':>13}")
    for rebuild in results.rebuilds:
        what = f"v{rebuild.version}: {rebuild.label}"
        print(
            f"    {what:<40}{_ms(_median(rebuild.ms)):>12}{_ms(p95(rebuild.ms)):>14}"
            f"{_bytes(rebuild.response_bytes):>13}"
        )
    rebuilt = [r for r in results.rebuilds if r.patches >= 0]
    first_read, last_read = rebuilt[0], rebuilt[-1]
    per_patch = (_median(last_read.ms) - _median(first_read.ms)) / max(1, last_read.patches)
    print(f"    rebuild cost per patch replayed: {_ms(per_patch)}")
    if results.k != DEFAULT_K:
        projected = _median(first_read.ms) + (DEFAULT_K - 1) * per_patch
        print(
            f"    projected for K={DEFAULT_K} (snapshot + {DEFAULT_K - 1} patches, linear): "
            f"{_ms(projected)}"
        )
    wrong = ", ".join(f"v{v}" for v in results.wrong_versions)
    same = f"NO ({wrong})" if wrong else "yes"
    print(f"  every state read equals the client's own state at that version: {same}")
    print(f"  total run time {results.total_s:.0f} s")


def main(clips: int, saves: int, k: int, mongodb_uri: str | None) -> None:
    started = time.perf_counter()
    with database(mongodb_uri) as (uri, embedded, scratch):
        engine = asyncio.run(describe_engine(uri, embedded=embedded))
        results = asyncio.run(
            measure(uri, scratch / "app", clips=clips, saves=saves, k=k, engine=engine)
        )
    results.total_s = time.perf_counter() - started
    report(results, saves)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=5000, help="clips in the timeline")
    parser.add_argument("--saves", type=int, default=40, help="timed saves of each kind")
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=BENCH_K,
        help=f"K for the app (default {BENCH_K}; the service's default is {DEFAULT_K})",
    )
    parser.add_argument("--mongodb-uri", help="use this server instead of an embedded engine")
    arguments = parser.parse_args()
    if arguments.clips < 20 or arguments.saves < 1 or arguments.snapshot_every < 2:
        parser.error("need --clips >= 20, --saves >= 1 and --snapshot-every >= 2")
    main(arguments.clips, arguments.saves, arguments.snapshot_every, arguments.mongodb_uri)
