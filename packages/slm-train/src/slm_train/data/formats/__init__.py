"""Reading documents out of files: one module per format, picked by the file's suffix.

Each format module has `read(path, text_field) -> Iterator[str]`, yielding the
file's documents (a PDF, an HTML page or an EPUB is one document; a JSONL,
Parquet or Arrow file holds one per record). Modules that need a library
(pypdf, trafilatura, ebooklib, pyarrow) import it when a file of theirs is
read, so the formats nobody uses cost nothing, and a missing library is one
line saying what to install.

A file that cannot be read (an encrypted or damaged PDF) raises `SkippedFile`:
the corpus skips it with one line naming it, counts it, and the other files
still go in, since one bad file among a thousand papers should not stop a run.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

# Suffix -> the module in this package that reads it.
PLAIN_TEXT = frozenset(".txt .text .md .markdown .rst .tex".split())  # noqa: SIM905
SOURCE_CODE = frozenset(
    ".py .pyi .c .h .cc .cpp .hpp .cs .java .kt .scala .go .rs .swift .js .jsx .ts .tsx .rb "  # noqa: SIM905
    ".php .pl .lua .r .jl .hs .ml .sh .bash .sql .css .toml .yaml .yml".split()
)
READERS: dict[str, str] = {
    **dict.fromkeys(PLAIN_TEXT | SOURCE_CODE, "text"),
    ".jsonl": "text",
    ".pdf": "pdf",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".epub": "epub",
    ".parquet": "table",
    ".arrow": "table",
    ".feather": "table",
}


class SkippedFile(Exception):
    """This file cannot be read: the message says why and how to include it."""


def suffixes() -> frozenset[str]:
    """Every suffix a folder is searched for."""
    return frozenset(READERS)


# Formats whose extraction is slow (layout analysis, HTML parsing): their documents are
# cached (cache.py), so reading a corpus again does not parse them again.
EXTRACTED = frozenset({"pdf", "html", "epub"})


def read_file(path: Path, text_field: str = "text") -> Iterator[str]:
    """The documents of one file, read by the module for its suffix (plain text if unknown)."""
    name = READERS.get(path.suffix.lower(), "text")
    module = importlib.import_module(f".{name}", __name__)
    if name not in EXTRACTED:
        return module.read(path, text_field)
    from ..cachedir import default_cache_dir
    from .cache import cached_read

    return cached_read(module, path, text_field, default_cache_dir() / "extracted")


def require(module: str, package: str, extra: str, purpose: str = "reading this kind of file"):
    """Import `module`, or stop with one line naming what needs it, the package and the
    slm-train extra that brings it."""
    from ..errors import CorpusError

    try:
        return importlib.import_module(module)
    except ImportError:
        raise CorpusError(
            f"{purpose} needs {package}: pip install {package} "
            f"(or pip install 'slm-train[{extra}]')"
        ) from None
