"""Atomic file writes, shared by every slm package.

A tokenizer file, a checkpoint manifest or a metrics log that a crash cuts in
half is worse than no file: the next reader fails far from the cause. So every
package writes through these two helpers, which write a temporary file beside
the target, fsync it and rename it over the target: readers see the old file or
the new one, never half of one. slm-tokenizer owns them because it is the
package every other one depends on.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write `text` as UTF-8 to `path` atomically (see `write_bytes_atomically`)."""
    write_bytes_atomically(path, text.encode("utf-8"))


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Write beside `path`, then rename over it: readers see the old file or the new, never half.

    The parent folder is created if needed, and the file gets the mode a plain
    `open()` would give it (0o666 less the umask), not mkstemp's private 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, plain_file_mode())
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def plain_file_mode() -> int:
    """The mode `open()` gives a new file: 0o666 less the umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
