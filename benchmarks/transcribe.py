"""Transcription: real-time factor, word error rate, jobs per minute, memory.

    .venv/bin/python -m benchmarks transcribe [--jobs 6] [--workers 2]
    .venv/bin/python benchmarks/transcribe.py [--jobs 6] [--workers 2]

Speech: the five LibriVox sentences Debian's `pocketsphinx-testdata` ships (about 25 s of
real read speech, with their transcription), concatenated; and the same text spoken by
espeak-ng (synthetic speech, for comparison). Both need `apt-get install -y
pocketsphinx-testdata espeak-ng` (scripts/dev.sh test installs them).

- recogniser: `recognise_chunk` (what a worker process runs) in this process over the
  whole recording, in the service's chunks (SNIPIX_TRANSCRIBE_CHUNK_S, default 30 s) and in
  5 s chunks: CPU seconds per second of audio (the real-time factor, one core) and the WER
  against the package's transcription (fillers and `[NOISE]` tokens left out);
- jobs: `--jobs` transcription jobs of a video with that sound, through the service
  (a fresh embedded engine, the app in this process, SNIPIX_TRANSCRIBE_WORKERS=`--workers`),
  queued at once: jobs per minute from the first queued to the last done;
- memory: the peak resident memory of a fresh process that decodes one 30 s chunk of the
  recording as a worker process does (its own `getrusage`).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import database, expect, running_app  # noqa: E402

from snipix.app import create_app  # noqa: E402
from snipix.settings import Settings  # noqa: E402
from snipix.transcription.audio import chunk_bounds, wav_duration  # noqa: E402
from snipix.transcription.engines import recognise_chunk  # noqa: E402
from snipix.transcription.fillers import filler_flags  # noqa: E402

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
USER = {"X-User-Id": "bench"}


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed")
    return found


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [tool("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        check=True,
    )


def references() -> tuple[list[Path], list[str]]:
    lines = (LIBRIVOX / "transcription").read_text().splitlines()
    files: list[Path] = []
    words: list[str] = []
    for line in lines:
        match = re.match(r"<s> (.*) </s> \((.*)\)", line)
        if match is None:
            continue
        files.append(LIBRIVOX / f"{match.group(2)}.wav")
        words += match.group(1).split()
    if not files:
        raise SystemExit("pocketsphinx-testdata is not installed")
    return files, words


def concatenate(sources: list[Path], target: Path) -> None:
    inputs = [arg for source in sources for arg in ("-i", str(source))]
    mono = "aresample=16000,aformat=channel_layouts=mono"
    chains = "".join(f"[{i}:a]{mono}[a{i}];" for i in range(len(sources)))
    joined = "".join(f"[a{i}]" for i in range(len(sources)))
    ffmpeg(
        *inputs,
        "-filter_complex",
        f"{chains}{joined}concat=n={len(sources)}:v=0:a=1[out]",
        *("-map", "[out]", "-ar", "16000", "-ac", "1", str(target)),
    )


def wer(reference: list[str], hypothesis: list[str]) -> float:
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1] / len(reference)


def recognise(wav: Path, chunk_s: float) -> tuple[list[str], float, float]:
    duration = wav_duration(wav)
    started = time.process_time()
    texts: list[str] = []
    for start, end in chunk_bounds(wav, duration, chunk_s):
        texts += [word.text for word in recognise_chunk("pocketsphinx", str(wav), start, end)]
    cpu = time.process_time() - started
    flags = filler_flags(texts, "en-US")
    spoken = [text.lower() for text, filler in zip(texts, flags, strict=True) if not filler]
    return spoken, cpu, duration


WORKER_MEMORY = """
import resource, sys
from snipix.transcription.engines import recognise_chunk
recognise_chunk("pocketsphinx", sys.argv[1], 0.0, 30.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def worker_memory_kib(wav: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", WORKER_MEMORY, str(wav)], check=True, capture_output=True, text=True
    )
    return int(done.stdout.strip().splitlines()[-1])


async def jobs_per_minute(video: Path, jobs: int, workers: int) -> tuple[float, float]:
    with database(None) as (uri, _embedded, scratch):
        settings = Settings(
            _env_file=None,
            mongodb_uri=uri,
            mongodb_database="bench_transcribe",
            data_dir=scratch / "data",
            log_level="WARNING",
            log_format="json",
            transcribe_workers=workers,
            transcribe_poll_s=0.2,
            transcribe_wait_s=0,
        )
        async with running_app(create_app(settings)) as client:
            ids = []
            content = await asyncio.to_thread(video.read_bytes)
            for index in range(jobs):
                response = await client.post(
                    "/api/v1/projects", json={"name": f"talk {index}"}, headers=USER
                )
                expect(response, 201, "create project")
                project_id = response.json()["id"]
                response = await client.post(
                    "/media/upload",
                    files={"file": ("talk.mp4", content, "video/mp4")},
                    data={"project_id": project_id},
                    headers=USER,
                )
                expect(response, 200, "upload")
                ids.append(project_id)
            started = time.perf_counter()
            locations = []
            for project_id in ids:
                response = await client.post(
                    f"/api/v1/projects/{project_id}/transcript/jobs", headers=USER
                )
                expect(response, 202, "start job")
                locations.append(response.headers["Location"])
            pending = set(locations)
            while pending:
                for location in list(pending):
                    state = (await client.get(location, headers=USER)).json()["state"]
                    if state == "failed":
                        raise RuntimeError(f"{location} failed")
                    if state == "done":
                        pending.discard(location)
                await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - started
    return jobs / elapsed * 60, elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    files, reference = references()
    with tempfile.TemporaryDirectory(prefix="snipix-bench-transcribe-") as tmp:
        folder = Path(tmp)
        recorded = folder / "recorded.wav"
        concatenate(files, recorded)
        synthetic = folder / "synthetic.wav"
        subprocess.run(
            [
                tool("espeak-ng"),
                "-v",
                "en-us",
                "-s",
                "150",
                "-w",
                str(synthetic),
                " ".join(reference),
            ],
            check=True,
        )
        synthetic16 = folder / "synthetic16.wav"
        ffmpeg("-i", str(synthetic), "-ar", "16000", "-ac", "1", str(synthetic16))
        print("recogniser (pocketsphinx, one core, in process)")
        for name, wav in (("recorded", recorded), ("espeak-ng", synthetic16)):
            for chunk in (30.0, 5.0):
                spoken, cpu, duration = recognise(wav, chunk)
                print(
                    f"  {name:10} chunks {chunk:>4.0f} s  audio {duration:5.1f} s  "
                    f"cpu {cpu:5.2f} s  RTF {cpu / duration:.3f}  WER {wer(reference, spoken):.3f}"
                )
        video = folder / "talk.mp4"
        duration = wav_duration(recorded)
        ffmpeg(
            *("-f", "lavfi", "-i", f"testsrc=size=320x240:rate=25:duration={duration:.3f}"),
            *("-i", str(recorded), "-c:v", "libx264", "-preset", "ultrafast"),
            *("-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(video)),
        )
        peak_mib = worker_memory_kib(recorded) / 1024
        print(f"worker process peak RSS (the recording as one chunk): {peak_mib:.0f} MiB")
        rate, elapsed = asyncio.run(jobs_per_minute(video, args.jobs, args.workers))
        print(
            f"jobs: {args.jobs} x {duration:.1f} s of speech, {args.workers} workers: "
            f"{elapsed:.1f} s, {rate:.1f} jobs/min "
            f"({rate * duration / 60:.1f} min of audio per min)"
        )


if __name__ == "__main__":
    main()
