"""Plain text, Markdown, reStructuredText, source code and JSONL.

A text file is one document, or several separated by lines holding only
`<|endoftext|>`; a JSONL file holds one document per line, in its `text`
field (or the field `--text-field` names). Invalid UTF-8 is replaced with
U+FFFD, with a warning that counts it, rather than stopping the run.
"""

from __future__ import annotations

import codecs
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

from slm_tokenizer import END_OF_TEXT

from ..errors import CorpusError, DataWarning


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


def read(path: Path, text_field: str = "text") -> Iterator[str]:
    """The documents of one file: JSONL records, or text split at `<|endoftext|>` lines.

    Files are read line by line, so a large file of many documents (TinyStories)
    never sits in memory whole.
    """
    counter = _ReplacementCounter(path)
    with open(path, encoding="utf-8", errors=counter.name, newline="") as file:
        if path.suffix.lower() == ".jsonl":
            yield from _jsonl_documents(path, file, text_field)
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


def _jsonl_documents(path: Path, lines: Iterator[str], text_field: str) -> Iterator[str]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise CorpusError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            raise CorpusError(
                f'{path}:{number}: each JSONL line needs a string "{text_field}" field; '
                "name the field that holds the text with --text-field"
            )
        yield from _non_empty(record[text_field])
