"""Legacy import throughput: projects with timelines (and some transcripts) in the export
shape, imported into an empty database, against the product promise of migrating 100,000
projects in under 30 minutes.

    .venv/bin/python benchmarks/legacy_import.py [--projects 10000] [--transcript-every 20]
        [--transcript-words 500] [--mongodb-uri URI]

Without `--mongodb-uri` a fresh embedded engine process is started in a temporary
directory and stopped at the end; with it, a throw-away database is created and dropped.
The importer runs in this process (`snipix.legacy.importer.Importer`, what
`snipix import-legacy` runs), reading the file as a stream (two passes, as for any file
above the threshold). A dry run is timed first (read, validate, decide: no writes), then
the import itself; the difference is the cost of the writes.

The file is what the original export held for a busy editor: every project with a
timeline (a video and an audio layer, 3-6 clips each with properties and a keyframe, a
marker), every `--transcript-every`th with a transcription of `--transcript-words` words
in 25-word segments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from harness import database, describe_engine, drop_database

from snipix.db.client import connected
from snipix.legacy.importer import Importer, Options
from snipix.observability.logging import configure_logging
from snipix.settings import Settings

PROMISE_S = 30 * 60
PROMISE_PROJECTS = 100_000
OWNER = "bench-owner"
VOCABULARY = ("so", "we", "cut", "the", "intro", "and", "then", "um", "the", "drone", "shot")


def timeline(rng: random.Random, number: int) -> dict[str, Any]:
    layers: list[dict[str, Any]] = []
    for kind in ("video", "audio"):
        clips = []
        clock = 0.0
        for index in range(rng.randint(3, 6)):
            length = round(rng.uniform(1.0, 12.0), 3)
            clips.append(
                {
                    "id": f"{kind}-clip-{number}-{index}",
                    "type": kind,
                    "start_time": round(clock, 3),
                    "end_time": round(clock + length, 3),
                    "duration": length,
                    "original_start_time": round(rng.uniform(0, 60), 3),
                    "source_path": f"http://localhost:8001/media/{number:024x}/video",
                    "properties": {
                        "opacity": 1.0,
                        "scale": 1.0,
                        "position": {"x": 0, "y": 0},
                        "rotation": 0,
                        "volume": round(rng.uniform(0.2, 1.0), 2),
                    },
                    "keyframes": [
                        {"id": f"kf-{index}", "time": 0, "property": "opacity", "value": 0}
                    ],
                }
            )
            clock += length
        layers.append(
            {
                "id": f"{kind}-layer-{number}",
                "name": kind.title(),
                "type": kind,
                "clips": clips,
                "order": len(layers),
                "is_main_video": kind == "video",
            }
        )
    return {
        "layers": layers,
        "playhead_time": round(rng.uniform(0, 20), 3),
        "zoom": 1.5,
        "duration": 60.0,
        "markers": [{"id": f"m{number}", "time": 2.5, "label": "Intro", "color": "#6366f1"}],
        "selected_clips": [],
        "is_playing": False,
        "is_snapping": True,
    }


def transcription(rng: random.Random, project_id: str, words: int) -> dict[str, Any]:
    clock, segments = 0.0, []
    for number, first in enumerate(range(0, words, 25)):
        spoken: list[dict[str, Any]] = []
        for _ in range(min(25, words - first)):
            end = clock + rng.uniform(0.1, 0.4)
            spoken.append(
                {
                    "text": rng.choice(VOCABULARY),
                    "start": round(clock, 3),
                    "end": round(end, 3),
                    "confidence": round(rng.uniform(0.6, 1.0), 3),
                }
            )
            clock = end + rng.uniform(0.01, 0.1)
        segments.append(
            {
                "id": f"seg-{number}",
                "start_time": spoken[0]["start"],
                "end_time": spoken[-1]["end"],
                "text": " ".join(word["text"] for word in spoken),
                "words": spoken,
                "confidence": 0.9,
            }
        )
        clock += 0.8
    return {"project_id": project_id, "language": "en", "segments": segments}


def write_export(path: Path, projects: int, every: int, words: int) -> tuple[int, int]:
    """The export file, written record by record; (transcripts, words) in it."""
    rng = random.Random(9)  # noqa: S311 - reproducible benchmark data
    ids = [f"{0x68BECE27FE5513FAE9000000 + number:024x}" for number in range(projects)]
    with path.open("w", encoding="utf-8") as out:
        out.write('{"projects": [\n')
        for number, project_id in enumerate(ids):
            record: dict[str, Any] = {
                "_id": project_id,
                "name": f"Project {number}",
                "description": "Imported by the benchmark",
                "user_id": "test_user",
                "created_at": (
                    f"2025-0{1 + number % 9}-{1 + number % 28:02d}T10:00:00.{number % 1000:03d}"
                ),
                "updated_at": f"2025-09-{1 + number % 28:02d}T12:00:00",
                "thumbnail": None,
                "duration": 3_600.0,
            }
            out.write(("," if number else "") + json.dumps(record) + "\n")
        out.write('],\n"timeline_states": [\n')
        for number, project_id in enumerate(ids):
            state = {
                "project_id": project_id,
                "timeline_state": timeline(rng, number),
                "version": 3,
                "created_at": "2025-09-08T05:40:00",
            }
            out.write(("," if number else "") + json.dumps(state) + "\n")
        out.write('],\n"transcriptions": [\n')
        transcripts = 0
        for number, project_id in enumerate(ids[::every]):
            out.write(("," if number else "") + json.dumps(transcription(rng, project_id, words)))
            out.write("\n")
            transcripts += 1
        out.write('],\n"export_timestamp": "2025-09-08T05:38:05", "user_id": null}\n')
    return transcripts, transcripts * words


async def run(args: argparse.Namespace) -> None:
    with database(args.mongodb_uri) as (uri, embedded, scratch):
        path = scratch / "export.json"
        started = time.perf_counter()
        transcripts, words = write_export(path, args.projects, args.transcript_every, args.words)
        size = path.stat().st_size
        print(
            f"file: {args.projects:,} projects with timelines, {transcripts:,} transcripts "
            f"({words:,} words), {size / 1e6:.1f} MB, written in "
            f"{time.perf_counter() - started:.1f} s"
        )
        print(f"engine: {await describe_engine(uri, embedded)}")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
        name = f"bench_legacy_{os.getpid()}"
        settings = Settings(
            _env_file=None, mongodb_uri=uri, mongodb_database=name, log_level="WARNING"
        )
        configure_logging(settings)
        options = Options(user=OWNER, stream_above=0)
        try:
            async with connected(settings) as client:
                db = client[name]
                started = time.perf_counter()
                dry = await Importer(
                    db, settings, Options(user=OWNER, stream_above=0, dry_run=True)
                ).run([path])
                read_s = time.perf_counter() - started
                started = time.perf_counter()
                report = await Importer(db, settings, options).run([path])
                total_s = time.perf_counter() - started
        finally:
            if args.mongodb_uri is not None:
                await drop_database(uri, name)
    assert dry.counts["projects"].imported == args.projects, dry.as_json()["counts"]
    assert report.complete, report.as_json()["skipped"][:5]
    assert report.counts["projects"].imported == args.projects
    projects_per_s = args.projects / total_s
    projected = PROMISE_PROJECTS / projects_per_s
    verdict = "within" if projected < PROMISE_S else "outside"
    print(
        f"read + validate + decide (dry run): {read_s:.1f} s "
        f"({args.projects / read_s:,.0f} projects/s)"
    )
    print(
        f"import: {total_s:.1f} s = {projects_per_s:,.1f} projects/s, "
        f"{report.words / total_s:,.0f} words/s ({report.counts['timelines'].imported:,} "
        f"timelines, {report.counts['transcripts'].imported:,} transcripts)"
    )
    print(
        f"projected for {PROMISE_PROJECTS:,} projects (same mix): {projected / 60:,.1f} min — "
        f"{verdict} the promise of < {PROMISE_S // 60} minutes"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--transcript-every", type=int, default=20)
    parser.add_argument("--transcript-words", dest="words", type=int, default=500)
    parser.add_argument("--mongodb-uri", default=None, help="a real server instead")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
