"""Who serves a data directory: the engine's lock and its address record.

One data directory, one engine. The engine process holds an exclusive `flock` on
`engine.lock` for its whole life and writes its address to `engine.json` once it accepts
connections. The lock is the truth (the kernel drops it when the process dies, however it
dies); the record is only the address. A record whose lock is free is stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path


class EngineStartError(Exception):
    """The engine could not start (address in use, unreadable data directory, ...).

    Here rather than in `engine`, so the CLI can name it without importing the engine
    (importing mongoeco's SQLite engine is most of a `snipix` command's start-up).
    """


RECORD_FILE = "engine.json"
LOCK_FILE = "engine.lock"
DATA_FILE = "snipix.sqlite"


class DataDirInUse(Exception):
    """Another process holds the data directory's engine lock."""

    def __init__(self, data_dir: Path, holder_pid: int | None, record: EngineRecord | None):
        self.data_dir = data_dir
        self.holder_pid = holder_pid
        self.record = record
        holder = f"engine process {holder_pid}" if holder_pid else "another engine process"
        where = f" serving {record.uri}" if record is not None else ""
        super().__init__(
            f"data directory {data_dir} is already in use by {holder}{where}; "
            "stop it, or point MONGODB_URI at it instead of starting a second engine"
        )


@dataclass(frozen=True, slots=True)
class EngineRecord:
    """Where the engine serving a data directory listens."""

    pid: int
    host: str
    port: int
    data_dir: str
    started_at: float
    version: str

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mongodb://{host}:{self.port}/?directConnection=true"

    def write(self, data_dir: Path) -> None:
        """Replace the record atomically, so a reader never sees half a file."""
        tmp = data_dir / f".{RECORD_FILE}.{self.pid}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        tmp.replace(data_dir / RECORD_FILE)

    @classmethod
    def read(cls, data_dir: Path) -> EngineRecord | None:
        try:
            raw = json.loads((data_dir / RECORD_FILE).read_text(encoding="utf-8"))
            return cls(
                pid=int(raw["pid"]),
                host=str(raw["host"]),
                port=int(raw["port"]),
                data_dir=str(raw["data_dir"]),
                started_at=float(raw["started_at"]),
                version=str(raw["version"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @staticmethod
    def remove(data_dir: Path, pid: int) -> None:
        """Remove the record if it is still `pid`'s (a newer engine may have replaced it)."""
        record = EngineRecord.read(data_dir)
        if record is not None and record.pid == pid:
            with contextlib.suppress(FileNotFoundError):
                (data_dir / RECORD_FILE).unlink()


class DataDirLock:
    """The exclusive engine lock of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def acquire(self, *, wait_s: float = 0.5) -> None:
        """Take the lock or raise `DataDirInUse` naming the holder.

        The short wait absorbs `is_served`'s probe, which holds the lock for microseconds.
        """
        deadline = time.monotonic() + wait_s
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise DataDirInUse(
                    self.data_dir, holder_pid(self.data_dir), EngineRecord.read(self.data_dir)
                )
            time.sleep(0.05)
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def holder_pid(data_dir: Path) -> int | None:
    """The pid the current (or last) lock holder wrote into the lock file."""
    try:
        return int((data_dir / LOCK_FILE).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def is_served(data_dir: Path) -> bool:
    """True while an engine process holds the data directory's lock."""
    if not (data_dir / LOCK_FILE).exists():
        return False
    probe = DataDirLock(data_dir)
    if probe.try_acquire():
        probe.release()
        return False
    return True


def serving_engine(data_dir: Path, *, wait_s: float = 10.0) -> EngineRecord | None:
    """The live engine serving `data_dir`, or None when no engine holds it.

    An engine that holds the lock but has not written its record yet is still starting:
    wait up to `wait_s` for its address. A record left by a dead engine is ignored.
    """
    deadline = time.monotonic() + wait_s
    while is_served(data_dir):
        record = EngineRecord.read(data_dir)
        if record is not None and record.pid == holder_pid(data_dir):
            return record
        if time.monotonic() >= deadline:
            raise DataDirInUse(data_dir, holder_pid(data_dir), None)
        time.sleep(0.05)
    return None
