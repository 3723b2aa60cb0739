"""The benchmark suite still runs end to end (`python -m benchmarks --smoke`): every
scenario and every target row is printed and written to the JSON file. No timing is
asserted here: speed is read from the suite's own output, never from a unit test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import clean_env

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = (
    "start-up: process start to ready",
    "floor: bare ASGI (same bytes)",
    "floor: one-route FastAPI (same bytes)",
    "floor: driver find_one by _id",
    "floor: driver update_one (10-path autosave)",
    "floor: bare ASGI, 1 connection",
    "floor: driver list query (50)",
    "floor: driver text search (2 queries)",
    "GET project, cached",
    "GET project, cached, If-None-Match",
    "GET project, uncached",
    "GET project, uncached, 1 connection",
    "list page (50), uncached",
    "list page (50), cached",
    "text search, uncached",
    "list page (50), uncached, 1 connection",
    "text search, uncached, 1 connection",
    "GET project, uncached, 1 connection, 8 writers",
    "list page (50), uncached, 1 connection, 8 writers",
    "floor: driver find_one by _id, 8 writers",
    "floor: driver list query (50), 8 writers",
    "timeline load (50 clips), uncached",
    "timeline load (50 clips), cached",
    "transcript window (60 s)",
    "transcript window (60 s), 1 connection",
    "autosave PATCH, 10 ops (50 clips)",
    "autosave PATCH, 10 ops, no Idempotency-Key (50 clips)",
    "full PUT, same change (50 clips)",
    "undo",
    "editors x2, 6 s",
)


def test_the_benchmark_suite_runs_and_prints_every_row(tmp_path: Path) -> None:
    """A developer running the documented benchmark command gets the whole table."""
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    table = completed.stdout.split("Snipix benchmark suite", 1)[1]
    for scenario in SCENARIOS:
        assert f"  {scenario}" in table, f"row {scenario!r} missing"
    assert "targets (ratios from this run)" in table
    results = json.loads(out.read_text())
    names = [row["name"] for row in results["rows"]]
    assert set(SCENARIOS) <= set(names)
    assert all(row["errors"] == 0 for row in results["rows"]), "a scenario had errors"
    editors = next(row for row in results["rows"] if row["name"] == "editors x2, 6 s")
    assert editors["extra"]["autosaves"] > 0, "the editors scenario measured no autosave"
    assert len(results["targets"]) >= 10
