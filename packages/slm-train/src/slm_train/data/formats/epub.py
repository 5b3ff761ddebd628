"""EPUB books: the whole text of each, chapter by chapter, through ebooklib.

A book is one document: its chapters (the XHTML files of its spine) in reading
order, separated by blank lines, without the navigation document or the
table-of-contents page. ebooklib is AGPL-3.0, so it is an extra of its own
(`slm-train[epub]`) that nobody installs by accident.

Each chapter is turned into text here rather than by trafilatura (formats/html):
a book has no menus or footers to strip, and trafilatura, made for web pages,
drops or flattens short chapters (a title and two sentences come back as one
line). So every word of the chapter is kept, with the line structure a reader
sees: paragraphs, headings and other blocks separated by blank lines, `<br>`,
list items and table rows on lines of their own, `<pre>` kept as written.

A DRM-protected book (its chapters encrypted) or a damaged file is skipped.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import SkippedFile, require

# Obfuscated fonts are listed in META-INF/encryption.xml too, but hide no text.
_FONT_SUFFIXES = (".otf", ".ttf", ".woff", ".woff2", ".odttf")


def read(path: Path, text_field: str = "text") -> Iterator[str]:
    """One document: the book's chapters; `text_field` is for record formats, unused here."""
    epub = require("ebooklib.epub", "ebooklib", "epub")
    from lxml.etree import LxmlError

    _refuse_drm(path)
    damaged = (zipfile.BadZipFile, zlib.error, KeyError, IndexError, ValueError, LxmlError)
    try:
        book = epub.read_epub(str(path), {"ignore_ncx": True})
        chapters = [chapter_text(content) for content in _chapters(book)]
    except (*damaged, epub.EpubException) as error:
        raise SkippedFile(f"not a readable EPUB ({type(error).__name__}: {error})") from None
    text = "\n\n".join(chapter for chapter in chapters if chapter)
    if not text:
        raise SkippedFile("the book has no text (only images?)")
    yield text


def _refuse_drm(path: Path) -> None:
    """Skip a book whose text is encrypted, rather than feed its ciphertext to the model."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            encryption = (
                archive.read("META-INF/encryption.xml").decode("utf-8", "replace")
                if "META-INF/encryption.xml" in names
                else ""
            )
    except (zipfile.BadZipFile, OSError) as error:
        raise SkippedFile(f"not a readable EPUB ({error})") from None
    encrypted = re.findall(r'URI="([^"]+)"', encryption)
    if "META-INF/rights.xml" in names or any(not _is_font(uri) for uri in encrypted):
        raise SkippedFile(
            "DRM-protected (its chapters are encrypted); use a DRM-free copy of the book"
        )


def _is_font(uri: str) -> bool:
    return uri.lower().endswith(_FONT_SUFFIXES)


def _chapters(book) -> Iterator[bytes]:
    """The XHTML of each spine item in reading order, less navigation and contents pages."""
    from ebooklib import ITEM_DOCUMENT, epub

    contents_pages = {
        reference.get("href", "").split("#")[0]
        for reference in book.guide
        if reference.get("type") == "toc"
    }
    for idref, _linear in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ITEM_DOCUMENT or isinstance(item, epub.EpubNav):
            continue
        if item.get_name() not in contents_pages:
            yield item.get_content()


# How each element breaks the text: a blank line around blocks, a line break around lines.
_PARAGRAPH, _LINE = 2, 1
_BLOCKS = frozenset(
    "address article aside blockquote body center details dl fieldset figure footer form h1 h2 "  # noqa: SIM905
    "h3 h4 h5 h6 header hr main nav ol p section table ul".split()
)
_LINES = frozenset("caption dd div dt figcaption li summary tr".split())  # noqa: SIM905
_CELLS = frozenset({"td", "th"})
_SKIPPED = frozenset({"head", "script", "style", "template", "noscript", "svg", "rp"})
_SPACES = re.compile(r"[ \t\n\r\f]+")  # HTML's whitespace: not U+00A0, which stays


@dataclass
class _Verbatim:
    """The text of a `<pre>`, kept with its own line breaks and indentation."""

    text: str


def chapter_text(content: bytes) -> str:
    """The text of one XHTML document, with its paragraphs and lines as a reader sees them."""
    from lxml import etree, html

    try:
        root = html.document_fromstring(content)
    except etree.ParserError:  # "Document is empty": a chapter with no text
        return ""
    pieces: list[str | int | _Verbatim] = []
    _walk(root, pieces)
    return _join(pieces)


def _walk(element, pieces: list) -> None:
    """Text and breaks of `element` and its children, in document order."""
    if not isinstance(element.tag, str):  # a comment or processing instruction
        return
    tag = element.tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()
    if tag in _SKIPPED or element.get("hidden") is not None:
        return
    if tag == "br":
        pieces.append(_LINE)
        return
    if tag == "pre":
        pieces += [_PARAGRAPH, _Verbatim(element.text_content()), _PARAGRAPH]
        return
    brk = _PARAGRAPH if tag in _BLOCKS else _LINE if tag in _LINES else 0
    pieces.append(brk)
    if tag in _CELLS and element.getprevious() is not None:
        pieces.append(" | ")
    pieces.append(element.text or "")
    for child in element:
        _walk(child, pieces)
        pieces.append(child.tail or "")
    pieces.append(brk)


def _join(pieces: list) -> str:
    """Text pieces and breaks as text: whitespace collapsed, breaks as newlines."""
    blocks: list[str] = []
    lines: list[str] = []
    line: list[str] = []

    def end_line() -> None:
        text = _SPACES.sub(" ", "".join(line)).strip(" ")
        if text:
            lines.append(text)
        line.clear()

    def end_block() -> None:
        end_line()
        if lines:
            blocks.append("\n".join(lines))
        lines.clear()

    for piece in pieces:
        if isinstance(piece, str):
            line.append(piece)
        elif isinstance(piece, _Verbatim):
            end_block()
            if piece.text.strip():
                blocks.append(piece.text.strip("\n").rstrip())
        elif piece == _LINE:
            end_line()
        elif piece == _PARAGRAPH:
            end_block()
    end_block()
    return "\n\n".join(blocks)
