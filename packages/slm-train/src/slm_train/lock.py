"""One writer per run directory.

Two trainings writing the same run would interleave their metrics and
overwrite each other's checkpoints, so a process that writes a run first takes
an operating-system lock on `<run>/writer.lock` (through `filelock`: flock on
POSIX, LockFileEx on Windows). The operating system drops the lock when its
holder exits, however it exits, so a crashed or `kill -9`ed trainer never
blocks the next one. `writer.json` beside it names the holder, for the error
message a second writer gets.

Holding the lock also means nobody else is writing, so this is the moment to
clean up what a writer killed mid-checkpoint left behind (checkpoint.recover).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from pathlib import Path

from filelock import FileLock, Timeout

from .checkpoint import recover
from .files import write_text_atomically
from .naming import setting
from .run import RunError

LOCK_FILE, HOLDER_FILE = "writer.lock", "writer.json"


class RunLockedError(RunError):
    """Another process is writing this run; the message names it."""


class RunLock:
    def __init__(
        self, directory: str | os.PathLike, enabled: bool = True, create: bool = True
    ) -> None:
        self.directory, self.enabled, self.create = Path(directory), enabled, create
        self._lock: FileLock | None = None

    def __enter__(self) -> RunLock:
        if not self.enabled:
            return self
        if not self.create and not self.directory.is_dir():
            raise RunError(f"no run directory at {self.directory}; check the path")
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.directory / LOCK_FILE)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunLockedError(
                f"{self.directory} is being written by {self._holder()}; wait for it to finish "
                f"or stop it, or train into another {setting('out_dir')}"
            ) from None
        self._lock = lock
        holder = {"pid": os.getpid(), "host": socket.gethostname()}
        holder["since"] = datetime.now().isoformat(timespec="seconds")
        write_text_atomically(self.directory / HOLDER_FILE, json.dumps(holder) + "\n")
        recover(self.directory)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            (self.directory / HOLDER_FILE).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None
            if not [p for p in self.directory.iterdir() if p.name != LOCK_FILE]:
                # Nothing was written (the run failed before it began): leave no folder behind.
                (self.directory / LOCK_FILE).unlink(missing_ok=True)
                self.directory.rmdir()

    def _holder(self) -> str:
        try:
            holder = json.loads((self.directory / HOLDER_FILE).read_text(encoding="utf-8"))
            return f"process {holder['pid']} on {holder['host']} (since {holder['since']})"
        except (OSError, ValueError, KeyError):
            return "another process"
