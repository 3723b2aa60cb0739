"""`snipix timeline export|import` as an operator runs them: real processes on the real
database, the result checked through the app."""

from __future__ import annotations

from pathlib import Path

import httpx
import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from snipix.cli import app as cli_app
from snipix.settings import Settings
from tests.support import clean_env, run_snipix

CORPUS = Path(__file__).parent.parent / "timelines" / "corpus"

OWNER = {"X-User-Id": "editor-1"}
STATE = {
    "tracks": [{"id": "v1", "kind": "video", "name": "Main"}, {"id": "a1", "kind": "audio"}],
    "clips": [
        {"id": "c1", "trackId": "v1", "start": 0.0, "sourceIn": 1.0, "sourceOut": 3.0},
        {"id": "c2", "trackId": "v1", "start": 4.0, "sourceIn": 0.0, "sourceOut": 1.5},
        {"id": "c3", "trackId": "a1", "start": 0.0, "sourceIn": 0.0, "sourceOut": 5.0},
    ],
}


def snipix(settings: Settings, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    assert settings.mongodb_uri is not None
    env = clean_env(
        MONGODB_URI=settings.mongodb_uri.get_secret_value(),
        MONGODB_DATABASE=settings.mongodb_database or "",
    )
    if settings.redis_url is not None:
        # The running app's cache, so the import reaches it as any write does.
        env |= {
            "REDIS_URL": settings.redis_url.get_secret_value(),
            "SNIPIX_CACHE_PREFIX": settings.cache_prefix,
        }
    result = run_snipix(["timeline", *args], env=env, cwd=tmp_path)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.process
async def test_export_then_import_through_the_cli(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    """An EDL written from the shell has the video cuts and says the audio track was not
    carried; an EDL imported from the shell is the project's next version; a broken file
    exits 1 naming the format and the line, and changes nothing."""
    created = await client.post("/api/v1/projects", json={"name": "Cut"}, headers=OWNER)
    project = created.json()["id"]
    path = f"/api/v1/projects/{project}/timeline"
    saved = await client.put(path, json={"state": STATE}, headers={**OWNER, "If-Match": '"0"'})
    assert saved.status_code == 200, saved.text
    edl, broken = tmp_path / "cut.edl", tmp_path / "broken.xml"
    broken.write_text("<xmeml>\n<sequence>")

    code, out, err = snipix(settings, tmp_path, "export", project, "--out", str(edl))
    assert code == 0, err
    assert f"wrote version 1 of project {project} as CMX 3600 EDL" in out
    assert "audio track #2 with 1 clip(s): an EDL holds one video track" in out
    back = otio.adapters.read_from_string(edl.read_text(), "cmx_3600", rate=30)
    cuts = [(c.range_in_parent().start_time.value, c.duration().value) for c in back.find_clips()]
    assert cuts == [(0, 60), (120, 45)]

    code, out, err = snipix(settings, tmp_path, "import", project, str(CORPUS / "gap_test.edl"))
    assert code == 0, err
    assert "version 2, 1 tracks, 3 clips, 5.250 s" in out
    history = (await client.get(f"{path}/history", headers=OWNER)).json()["items"]
    assert history[0]["label"] == "Import from CMX 3600 EDL"

    code, _out, err = snipix(settings, tmp_path, "import", project, str(broken))
    assert code == 1
    assert "This is not a valid Final Cut Pro 7 XML file" in err
    assert "line 2" in err
    current = (await client.get(path, headers=OWNER)).json()
    assert current["version"] == 2


def test_an_unknown_format_is_refused_before_anything_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app, ["timeline", "import", "p1", str(tmp_path / "cut.aaf")], catch_exceptions=False
    )

    assert result.exit_code == 2
    assert "--format must be one of: otio, edl, fcp-xml, fcpxml or kdenlive." in result.output
