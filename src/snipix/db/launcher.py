"""Find or start the database a command should use.

Every command that needs the database goes through `database_endpoint`: `MONGODB_URI` when
set; otherwise the embedded engine already serving the data directory; otherwise an engine
started for the duration of the command and stopped when it ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from snipix.db.engine_record import EngineRecord, is_served, serving_engine
from snipix.settings import Settings

log = structlog.get_logger(__name__)

_STOP_TIMEOUT_S = 15.0


class EngineLaunchError(Exception):
    """The embedded engine did not come up; the message says why in one line."""


@dataclass
class EngineProcess:
    """An engine process this command started (and so must stop)."""

    process: subprocess.Popen[bytes]
    record: EngineRecord

    @property
    def uri(self) -> str:
        return self.record.uri

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> int:
        """SIGTERM, then SIGKILL if it has not finished closing its files in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.error("engine did not stop in time; killing it", pid=self.process.pid)
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_engine_process(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout_s: float = 30.0,
    stop_with_parent: bool = True,
    env: dict[str, str] | None = None,
    threads: int | None = None,
) -> EngineProcess:
    """Start `snipix engine` as a child process and wait until it accepts connections.

    The child gets its own session, so a Ctrl-C in the terminal reaches only the command,
    which then stops the service first and the engine last (in-flight requests can still
    finish their writes). `--parent-pid` makes the engine exit if this process dies.
    """
    data_dir = data_dir.resolve()
    command = [
        sys.executable,
        "-m",
        "snipix",
        "engine",
        "--data-dir",
        str(data_dir),
        "--host",
        host,
        "--port",
        str(port),
    ]
    if stop_with_parent:
        command += ["--parent-pid", str(os.getpid())]
    if threads is not None:
        command += ["--threads", str(threads)]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    deadline = time.monotonic() + timeout_s
    while True:
        returncode = process.poll()
        if returncode is not None:
            _out, err = process.communicate()
            reason = _last_line(err.decode(errors="replace")) or f"exit status {returncode}"
            raise EngineLaunchError(f"the embedded engine did not start: {reason}")
        record = EngineRecord.read(data_dir)
        if record is not None and record.pid == process.pid:
            break
        if time.monotonic() >= deadline:
            process.kill()
            process.communicate()
            raise EngineLaunchError(
                f"the embedded engine did not answer within {timeout_s:.0f}s "
                f"(data directory {data_dir})"
            )
        time.sleep(0.05)
    # From here the engine logs to our stderr; we only needed the pipe to report a failed start.
    _forward_stderr(process)
    return EngineProcess(process=process, record=record)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # The engine's own one-line failure reads "error: ..."; we add our own context.
    return lines[-1].removeprefix("error: ") if lines else ""


def _forward_stderr(process: subprocess.Popen[bytes]) -> None:
    """Copy the engine's log lines to our stderr, and keep draining the pipe regardless:
    an engine blocked on a full pipe would stop answering the database protocol."""
    stream = process.stderr
    if stream is None:
        return
    target = getattr(sys.stderr, "buffer", None)

    def pump() -> None:
        with stream:
            fd = stream.fileno()
            for chunk in iter(lambda: os.read(fd, 65_536), b""):
                if target is None:
                    continue
                try:
                    target.write(chunk)
                    target.flush()
                except (OSError, ValueError):
                    pass  # our stderr is closed; the engine must not notice

    threading.Thread(target=pump, name="engine-stderr", daemon=True).start()


class EngineKeeper:
    """The embedded engine a command relies on: found or started, and optionally kept.

    A command reuses the engine already serving its data directory, or starts one that it
    stops when it ends. A long-running command (`snipix serve`) also `watch`es: if the
    engine goes away (it crashed, or the command that owned it ended), a new one is started
    on the same address, so the service's clients reconnect to it by themselves.
    """

    def __init__(self, data_dir: Path, *, start_timeout_s: float, interval_s: float = 1.0):
        self.data_dir = data_dir.resolve()
        self._start_timeout_s = start_timeout_s
        self._interval_s = interval_s
        self._owned: EngineProcess | None = None
        self._record: EngineRecord | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def uri(self) -> str:
        assert self._record is not None, "call start() first"
        return self._record.uri

    def start(self) -> EngineRecord:
        running = serving_engine(self.data_dir)
        if running is not None:
            log.info("using the embedded engine already serving", uri=running.uri, pid=running.pid)
            self._record = running
            return running
        self._owned = start_engine_process(self.data_dir, timeout_s=self._start_timeout_s)
        self._record = self._owned.record
        log.info("embedded engine started", uri=self._record.uri, pid=self._record.pid)
        return self._record

    def watch(self) -> None:
        self._watcher = threading.Thread(target=self._keep, name="engine-keeper", daemon=True)
        self._watcher.start()

    def _keep(self) -> None:
        assert self._record is not None
        host, port = self._record.host, self._record.port
        while not self._stop.wait(self._interval_s):
            if is_served(self.data_dir):
                continue
            log.warning("the embedded engine is gone; starting a new one", host=host, port=port)
            try:
                engine = start_engine_process(
                    self.data_dir, host=host, port=port, timeout_s=self._start_timeout_s
                )
            except EngineLaunchError as error:
                # Another command may have won the race to restart it; look again next tick.
                log.warning("embedded engine restart failed", reason=str(error))
                continue
            previous, self._owned = self._owned, engine
            if previous is not None:
                previous.stop()  # already exited; reap it
            log.info("embedded engine restarted", uri=engine.uri, pid=engine.record.pid)

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        if self._owned is not None:
            code = self._owned.stop()
            log.info("embedded engine stopped", pid=self._owned.record.pid, exit_status=code)


@contextmanager
def database_endpoint(settings: Settings, *, keep_engine: bool = False) -> Iterator[Settings]:
    """Yield settings whose `mongodb_uri` points at a live database.

    An engine started here is stopped on exit; one that was already serving the data
    directory (another `snipix serve`, or `snipix engine` in a terminal) is left running.
    With `keep_engine`, an engine that goes away meanwhile is replaced on the same address.
    """
    if settings.mongodb_uri is not None:
        yield settings
        return
    keeper = EngineKeeper(settings.data_dir, start_timeout_s=settings.engine_start_timeout_s)
    keeper.start()
    try:
        if keep_engine:
            keeper.watch()
        yield settings.with_mongodb_uri(keeper.uri)
    finally:
        keeper.close()
