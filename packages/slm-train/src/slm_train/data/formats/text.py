"""Plain text, Markdown, reStructuredText, source code and JSONL.

A text file is one document, or several separated by lines holding only
`<|endoftext|>`; a JSONL file holds one document per line, in its `text`
field (or the field `--text-field` names). Invalid UTF-8 is replaced with
U+FFFD, with a warning that counts it, rather than stopping the run.
"""

from __future__ import annotations

import codecs
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

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

    Files are read in blocks, so a large file of many documents (TinyStories)
    never sits in memory whole.
    """
    counter = _ReplacementCounter(path)
    with open(path, encoding="utf-8", errors=counter.name, newline="") as file:
        if path.suffix.lower() == ".jsonl":
            yield from _jsonl_documents(path, file, text_field)
        else:
            yield from _text_documents(file)
    counter.warn_if_any()


# Characters read at a time. Reading line by line and testing each line for the
# separator cost more than encoding the text with tiktoken; a block is searched for
# `<|endoftext|>` with str.find instead, which skips text without it at memory speed.
BLOCK_CHARS = 1 << 20
# The rest of a separator's line after `<|endoftext|>`: spaces, then the line's end.
_REST_OF_LINE = re.compile(r"[^\S\r\n]*(?:\r\n|\r|\n|\Z)")


def _text_documents(file: TextIO) -> Iterator[str]:
    """The documents of a text file: the text between lines holding only `<|endoftext|>`.

    A line ends at \\n, \\r or \\r\\n, as when reading with newline="". Each block
    is cut after its last \\n, so the text searched always starts and ends at a
    line's edge; the unfinished document is kept in parts, so a long document
    is not copied again for each block.
    """
    document: list[str] = []  # the current document's text, whole lines
    partial: list[str] = []  # a line not yet ended
    while block := file.read(BLOCK_CHARS):
        cut = block.rfind("\n") + 1
        if cut == 0:
            partial.append(block)
            continue
        pieces = _between_separators("".join([*partial, block[:cut]]))
        partial = [block[cut:]]
        document.append(pieces[0])
        if len(pieces) > 1:
            yield from _non_empty("".join(document))
            for piece in pieces[1:-1]:
                yield from _non_empty(piece)
            document = [pieces[-1]]
    pieces = _between_separators("".join(partial))  # the last line, if it has no \\n
    document.append(pieces[0])
    for piece in ["".join(document), *pieces[1:]]:
        yield from _non_empty(piece)


def _between_separators(text: str) -> list[str]:
    """`text` cut at each line that holds `<|endoftext|>` and spaces only; `text` starts a line."""
    pieces, start, search, at_line_start = [], 0, 0, True
    while (found := text.find(END_OF_TEXT, search)) >= 0:
        end = found + len(END_OF_TEXT)
        line_break = max(text.rfind("\n", search, found), text.rfind("\r", search, found))
        line_start = line_break + 1 if line_break >= 0 else search if at_line_start else -1
        rest = _REST_OF_LINE.match(text, end)
        if line_start >= 0 and rest is not None and not text[line_start:found].strip():
            pieces.append(text[start:line_start])
            start = search = rest.end()
            at_line_start = True
        else:
            search, at_line_start = end, False
    pieces.append(text[start:])
    return pieces


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
