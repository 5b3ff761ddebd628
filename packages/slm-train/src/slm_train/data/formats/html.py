"""HTML pages: the main text of each, through trafilatura.

A saved web page is mostly not its article: menus, navigation, cookie banners,
scripts, styles, footers. Trained on as-is, a model learns "Home | About |
Contact" as well as the prose, so each page goes through trafilatura, which
finds the main text and drops the rest. Each page is one document; its
paragraphs, headings, list items and table rows come back as text, with a
blank line between blocks (trafilatura's own plain-text output joins them with
single newlines, which loses where one paragraph ends and the next begins).

The file's bytes go to trafilatura undecoded, so it reads the charset from the
page (`<meta charset>`) or detects it. A page with no main text at all (only
scripts, an empty body) is skipped: trafilatura already falls back to every
piece of visible text it can find before giving up, so there is nothing better
to take.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from . import SkippedFile, require

# Elements in trafilatura's output tree that only hold blocks: descended into, not rendered.
_CONTAINERS = frozenset({"body", "div", "article", "main", "section"})
_WHITESPACE = re.compile(r"[ \t\n\r\f]+")  # HTML's whitespace: not U+00A0, which stays


def read(path: Path, text_field: str = "text") -> Iterator[str]:
    """One document: the page's main text; `text_field` is for record formats, unused here."""
    text = extract(path.read_bytes())
    if not text:
        raise SkippedFile(
            "no main text found (an empty page, only scripts and markup, or HTML that does not "
            "parse); save its text as .txt to include it"
        )
    yield text


def extract(page: bytes | str) -> str:
    """The main text of one page, blocks separated by blank lines ("" if there is none)."""
    trafilatura = require("trafilatura", "trafilatura", "documents")
    document = trafilatura.bare_extraction(
        page,
        include_comments=False,  # reader comments are not the page's text
        include_tables=True,
        with_metadata=False,  # no date or author search: faster, and nothing we keep
        deduplicate=False,  # the cache it would use is shared across pages: order-dependent
    )
    if document is None:
        return ""
    _unwrap_lines(document.body)
    return "\n\n".join(_blocks(document.body))


def _unwrap_lines(element, in_code: bool = False) -> None:
    """Whitespace runs in prose as one space, as a browser shows them; code keeps its lines.

    trafilatura keeps the line breaks of the page's source, which wrap
    paragraphs wherever the author's editor did; a `<br>` is its own element
    (`<lb/>`) and still becomes a line break.
    """
    in_code = in_code or element.tag == "code"
    if not in_code and element.text:
        element.text = _WHITESPACE.sub(" ", element.text)
    for child in element:
        _unwrap_lines(child, in_code)
        if not in_code and child.tail:
            child.tail = _WHITESPACE.sub(" ", child.tail)


def _blocks(element) -> Iterator[str]:
    """Each block of trafilatura's tree as text, rendered by trafilatura's own text output."""
    from trafilatura.xml import xmltotxt

    if element.tag not in _CONTAINERS or (element.text or "").strip() or len(element) == 0:
        # A paragraph, heading, list, table, quote, or loose text: one block.
        text = xmltotxt(element, include_formatting=False).strip()
        if text:
            yield text
        return
    for child in element:
        yield from _blocks(child)
    if (element.tail or "").strip():  # loose text after a container: its own block
        yield element.tail.strip()
