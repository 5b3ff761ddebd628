"""The text extracted from PDFs, HTML pages and EPUBs, kept so a file is parsed once.

Layout analysis makes a PDF cost a second or more to read, and `prepare`
reads the corpus more than once: once to train a `bpe:N` tokenizer, once to
encode, and again for the next tokenizer or cleaning setting. So the
documents of these formats are saved as JSON under the cache directory
(`$SLM_CACHE_DIR/extracted`), named by the file's path, size and modification
time and by the reader's own source code: an edited file, or a changed
reader, is read afresh. Files that are skipped are not cached, so the warning
that names them comes every time. JSON, not pickle: the cache is data only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType


def cached_read(module: ModuleType, path: Path, text_field: str, cache_dir: Path) -> Iterator[str]:
    """`module.read(path, text_field)`'s documents, from the cache when it has them."""
    entry = cache_dir / f"{_key(module, path, text_field)}.json"
    documents = _load(entry)
    if documents is None:  # not cached yet, or a damaged entry: read the file
        documents = list(module.read(path, text_field))
        _write_atomically(entry, json.dumps(documents, ensure_ascii=False))
    yield from documents


def _load(entry: Path) -> list[str] | None:
    try:
        documents = json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
        return None
    return documents


def _key(module: ModuleType, path: Path, text_field: str) -> str:
    stat = path.stat()
    identity = [str(path.resolve()), stat.st_size, stat.st_mtime_ns, text_field, _code(module)]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]


@cache
def _code(module: ModuleType) -> str:
    """A digest of the reader's source: a reader that now extracts differently misses."""
    return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: a crash leaves no half entry.
    A cache that cannot be written (a read-only disk) only costs the next read's time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".extracting-")
    except OSError:
        return
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
