"""Trimmed renders: frame-exact cuts between keyframes, and one render per distinct trim.

The source is `conftest.videos.keyed`: keyframes only every 2 s, and every frame shows its
own number, so a render's frames are traced back to the source frames with ffmpeg and
its timing read with ffprobe. The web app sends the same trim after every layer change
and on every page open; those repeats must not render, version or audit anything again.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from snipix.media.probe import MAX_INPUTS_PER_RUN, MediaTools, Segment
from snipix.settings import Settings
from tests.media.conftest import (
    KEYED_FPS,
    KEYFRAME_EVERY_SEC,
    Videos,
    ffmpeg,
    frame_numbers,
    keyframe_times,
    probe,
    video_stream,
)
from tests.media.test_endpoints import create_project, media_files, project, trim, upload, who

FRAME_SEC = 1 / KEYED_FPS
Json = dict[str, Any]


async def uploaded_keyed(client: httpx.AsyncClient, videos: Videos) -> str:
    project_id = await create_project(client)
    response = await upload(client, project_id, videos.keyed.read_bytes())
    assert response.status_code == 200, response.text
    return project_id


async def audit_count(client: httpx.AsyncClient, project_id: str) -> int:
    response = await client.get(f"/api/v1/projects/{project_id}/audit", headers=who())
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


def runs(frames: Sequence[int]) -> list[list[int]]:
    """The frame numbers split where they stop following each other (the joins).

    A frame shown twice continues its run: a part that is not a whole number of frames
    long leaves a gap at the join, which a constant-rate render fills with a repeat.
    """
    parts: list[list[int]] = []
    for number in frames:
        if parts and number in (parts[-1][-1], parts[-1][-1] + 1):
            parts[-1].append(number)
        else:
            parts.append([number])
    return parts


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[Sequence[Segment]]:
    """Every ffmpeg render the app starts (the real one runs), by its segments."""
    started: list[Sequence[Segment]] = []
    real = MediaTools.render

    async def counted(
        self: MediaTools,
        source: Path,
        segments: Sequence[Segment],
        target: Path,
        *,
        audio: bool,
        fps: float | None,
    ) -> None:
        started.append(segments)
        await real(self, source, segments, target, audio=audio, fps=fps)

    monkeypatch.setattr(MediaTools, "render", counted)
    return started


@pytest.mark.process
def test_the_source_has_keyframes_only_every_two_seconds(videos: Videos) -> None:
    """The cuts below fall between keyframes, where stream copy cannot cut."""
    assert keyframe_times(videos.keyed) == pytest.approx([0, 2, 4], abs=0.001)
    assert frame_numbers(videos.keyed)[:3] == [0, 1, 2]
    assert KEYFRAME_EVERY_SEC == 2


@pytest.mark.parametrize(
    "segments",
    [
        pytest.param([(0.5, 2.0)], id="one-part-from-0.5s"),
        pytest.param([(1.1, 0.9), (3.3, 1.5)], id="two-parts"),
        pytest.param([(2.7, 1.0), (0.3, 1.2)], id="out-of-order"),
        pytest.param([(4.9, 1.1)], id="to-the-end"),
        # More segments than one ffmpeg run takes: groups, then one join.
        pytest.param(
            [(round(0.05 + 0.29 * i, 3), 0.15) for i in range(MAX_INPUTS_PER_RUN + 4)],
            id="many-parts",
        ),
    ],
)
@pytest.mark.process
async def test_cuts_between_keyframes_are_exact_to_a_frame(
    client: httpx.AsyncClient,
    videos: Videos,
    tmp_path: Path,
    segments: list[tuple[float, float]],
) -> None:
    """Each kept part starts and ends within a frame of its request; nothing cut shows."""
    project_id = await uploaded_keyed(client, videos)

    response = await trim(client, project_id, segments)

    assert response.status_code == 200, response.text
    wanted = sum(length for _, length in segments)
    data = response.json()["data"]
    assert data["trimmed_video_path"] == f"/media/{project_id}/video/trimmed"
    assert data["new_duration"] == pytest.approx(wanted, abs=FRAME_SEC)
    render = tmp_path / "render.mp4"
    render.write_bytes((await client.get(data["trimmed_video_path"], headers=who())).content)
    stream = video_stream(render)
    assert stream.start_sec == pytest.approx(0, abs=FRAME_SEC)
    assert stream.duration_sec == pytest.approx(wanted, abs=FRAME_SEC)
    parts = runs(frame_numbers(render))
    assert len(parts) == len(segments), parts
    for part, (start, length) in zip(parts, segments, strict=True):
        # The first frame shown at or after `start`, the last one before `start + length`.
        first = math.ceil(start * KEYED_FPS - 1e-6)
        last = math.ceil((start + length) * KEYED_FPS - 1e-6) - 1
        assert abs(part[0] - first) <= 1, (part, start)
        assert abs(part[-1] - last) <= 1, (part, start + length)


@pytest.mark.process
async def test_repeated_identical_trims_render_once_and_change_nothing(
    client: httpx.AsyncClient,
    videos: Videos,
    settings: Settings,
    renders: list[Sequence[Segment]],
) -> None:
    """10 identical trims at once, then 10 more one by one: one render, one new version."""
    project_id = await uploaded_keyed(client, videos)
    before = await project(client, project_id)
    audits_before = await audit_count(client, project_id)

    together = await asyncio.gather(*(trim(client, project_id, [(0.5, 2.0)]) for _ in range(10)))

    assert [r.status_code for r in together] == [200] * 10, [r.text for r in together]
    answers = [r.json() for r in together]
    assert all(answer == answers[0] for answer in answers)
    assert len(renders) == 1
    after_first = await project(client, project_id)
    assert after_first["version"] == before["version"] + 1
    assert await audit_count(client, project_id) == audits_before + 1
    reference = after_first["media"]["trimmedFile"]
    rendered = settings.media_root / reference
    stat = rendered.stat()

    # The web app's repeats: the same edit, sometimes as float noise or split at a join.
    same_edit = [[(0.5, 2.0)], [(0.5000001, 1.9999999)], [(0.5, 1.2), (1.7, 0.8)]]
    for index in range(10):
        response = await trim(client, project_id, same_edit[index % len(same_edit)])
        assert response.status_code == 200, response.text
        assert response.json() == answers[0]

    assert len(renders) == 1
    now = await project(client, project_id)
    assert now["version"] == after_first["version"]
    assert now["media"] == after_first["media"]
    assert await audit_count(client, project_id) == audits_before + 1
    again = rendered.stat()
    assert (again.st_ino, again.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


@pytest.mark.process
async def test_a_different_trim_replaces_the_render_and_the_old_file_goes(
    client: httpx.AsyncClient,
    videos: Videos,
    settings: Settings,
    renders: list[Sequence[Segment]],
) -> None:
    """A changed trim renders anew and deletes the render it supersedes: one on disk."""
    project_id = await uploaded_keyed(client, videos)
    uploads = media_files(settings)
    assert (await trim(client, project_id, [(0.5, 2.0)])).status_code == 200
    first = (await project(client, project_id))["media"]["trimmedFile"]

    changed = await trim(client, project_id, [(0.5, 1.0), (3.3, 1.5)])

    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["new_duration"] == pytest.approx(2.5, abs=FRAME_SEC)
    second = (await project(client, project_id))["media"]["trimmedFile"]
    assert second != first
    assert not (settings.media_root / first).exists()
    assert media_files(settings) == sorted([*uploads, settings.media_root / second])

    # Back to the first edit (an undo): rendered again, and the second render goes.
    back = await trim(client, project_id, [(0.5, 2.0)])
    assert back.status_code == 200, back.text
    assert (await project(client, project_id))["media"]["trimmedFile"] == first
    assert not (settings.media_root / second).exists()
    assert media_files(settings) == sorted([*uploads, settings.media_root / first])
    assert len(renders) == 3


@pytest.mark.process
async def test_a_render_whose_file_is_gone_is_made_again(
    client: httpx.AsyncClient,
    videos: Videos,
    settings: Settings,
    renders: list[Sequence[Segment]],
) -> None:
    """The recorded render is only reused while its file is there."""
    project_id = await uploaded_keyed(client, videos)
    assert (await trim(client, project_id, [(1.1, 0.9)])).status_code == 200
    recorded = await project(client, project_id)
    rendered = settings.media_root / recorded["media"]["trimmedFile"]
    os.unlink(rendered)

    response = await trim(client, project_id, [(1.1, 0.9)])

    assert response.status_code == 200, response.text
    assert rendered.is_file()
    assert len(renders) == 2
    # Same name, same duration: the project records nothing new.
    assert (await project(client, project_id))["version"] == recorded["version"]


@pytest.mark.process
async def test_a_silent_webm_is_trimmed_to_a_silent_mp4(
    client: httpx.AsyncClient, videos: Videos, tmp_path: Path
) -> None:
    """Any accepted container trims; the render is MP4 (H.264 plays in every browser)."""
    project_id = await create_project(client)
    response = await upload(client, project_id, videos.webm.read_bytes(), filename="a.webm")
    assert response.status_code == 200, response.text

    trimmed = await trim(client, project_id, [(0.2, 0.5)])

    assert trimmed.status_code == 200, trimmed.text
    assert trimmed.json()["data"]["new_duration"] == pytest.approx(0.5, abs=FRAME_SEC)
    served = await client.get(f"/media/{project_id}/video/trimmed", headers=who())
    assert served.headers["content-type"] == "video/mp4"
    render = tmp_path / "render.mp4"
    render.write_bytes(served.content)
    duration, streams = probe(render)
    assert streams == ["video"]
    assert duration == pytest.approx(0.5, abs=FRAME_SEC)


@pytest.mark.process
async def test_a_variable_frame_rate_source_is_cut_by_time(
    client: httpx.AsyncClient, videos: Videos, tmp_path: Path
) -> None:
    """Where frames are missing, the average rate ffprobe reports is not the rate of every
    part: a part still ends at its requested time, not after a count of frames."""
    source = tmp_path / "vfr.mp4"
    # Every third frame of the first 3 s dropped: ~21 fps on average, 25 after 3 s.
    ffmpeg(
        *("-i", str(videos.keyed), "-vf", "select='not(eq(mod(n\\,3)\\,2)*lt(t\\,3))'"),
        *("-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast"),
        *("-force_key_frames", f"expr:gte(t,n_forced*{KEYFRAME_EVERY_SEC})"),
        *("-c:a", "copy", str(source)),
    )
    project_id = await create_project(client)
    response = await upload(client, project_id, source.read_bytes())
    assert response.status_code == 200, response.text
    assert (await project(client, project_id))["media"]["fps"] < KEYED_FPS - 2

    trimmed = await trim(client, project_id, [(3.3, 1.5)])

    assert trimmed.status_code == 200, trimmed.text
    render = tmp_path / "render.mp4"
    served = await client.get(f"/media/{project_id}/video/trimmed", headers=who())
    render.write_bytes(served.content)
    assert video_stream(render).duration_sec == pytest.approx(1.5, abs=FRAME_SEC)
    (part,) = runs(frame_numbers(render))
    assert abs(part[0] - 83) <= 1, part  # 3.32 s, the first frame at or after 3.3 s
    assert abs(part[-1] - 119) <= 1, part  # 4.76 s, the last one before 4.8 s
