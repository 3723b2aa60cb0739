"""The `process` marker, kept true: a test that starts a process and lacks it fails.

`-m "not process"` runs the in-process tests only (a quick loop while editing); that is
only worth having if the marker is right, so it is checked rather than maintained by
hand. An audit hook (`sys.addaudithook`) sees every process Python starts
(`subprocess.Popen`, which asyncio's subprocesses use too, `os.system`, `os.fork`). The
processes of session-scoped fixtures (each worker's engine and redis-server) belong to
every test and are not counted.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import pytest

MARKER = "process"
_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.fork", "os.forkpty", "os.posix_spawn"})


@dataclass
class _Recorder:
    """Processes started while a test (not a session fixture) ran."""

    on: bool = False
    started: list[str] = field(default_factory=list)

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.on and event in _EVENTS:
            self.started.append(f"{event} {args[0]!r}"[:200])


_RECORDER = _Recorder()
# An audit hook cannot be removed: one per process, switched on only around a test.
sys.addaudithook(_RECORDER)


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any]) -> Generator[None]:
    was = _RECORDER.on
    if fixturedef.scope == "session":
        _RECORDER.on = False
    try:
        yield
    finally:
        _RECORDER.on = was


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None]:
    _RECORDER.started.clear()
    _RECORDER.on = True
    try:
        yield
    finally:
        _RECORDER.on = False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any]:
    outcome = yield
    if call.when != "teardown" or not _RECORDER.started:
        return
    if item.get_closest_marker(MARKER) is not None:
        return
    report: pytest.TestReport = outcome.get_result()
    report.outcome = "failed"
    report.longrepr = (
        f"this test started {len(_RECORDER.started)} process(es) but is not marked "
        f"@pytest.mark.{MARKER}; first: {_RECORDER.started[0]}"
    )
