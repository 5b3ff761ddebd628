"""Writing an export all at once: into a hidden sibling first, renamed into place when whole.

An interrupted or failed export leaves no half-written folder or file behind,
and an existing output is replaced only with `force`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..naming import setting


def check_free(out: Path, force: bool) -> None:
    """Refuse to overwrite `out` unless `force` (checked before any work starts)."""
    if out.exists() and not force:
        raise ValueError(
            f"{out} already exists; pass {setting('force', True)} to replace it, or choose "
            f"another {setting('out')}"
        )


@contextmanager
def staged(out: str | os.PathLike, *, force: bool, folder: bool) -> Iterator[Path]:
    """Yield a temporary path beside `out`; on success it becomes `out`, on failure it goes."""
    out = Path(out)
    check_free(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    _remove(temporary)
    if folder:
        temporary.mkdir()
    try:
        yield temporary
    except BaseException:
        _remove(temporary)
        raise
    _remove(out)
    temporary.rename(out)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
