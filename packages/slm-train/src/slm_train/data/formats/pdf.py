"""PDF: each file is one document, its text in reading order, through pypdf.

A PDF holds no text in the sense a model needs: it holds glyphs placed on a
page, in whatever order the program that wrote it emitted them. A two-column
paper may draw its lines left, right, left, right, so reading the content
stream in order (pypdf's plain extraction) interleaves the columns. So this
module reads positions, not order:

1. pypdf's layout mode draws each page as a grid of characters: rows by
   baseline (text a little above or below a row joins it), and columns from
   the glyphs' real widths, at twice its default resolution so that a line of
   narrow letters does not run into the gutter. The gaps of the page are
   blanks in the grid.
2. Running headers, footers and page numbers are the first and last two rows
   of pages that recur, once digits and roman numerals are ignored ("Page 3
   of 9", a title on every page, a bare number): on the next or the previous
   page (a chapter's title over its pages), or on three pages anywhere (a
   book's title over every other page). A sentence that happens to end two
   pages far apart stays, and a one-page PDF keeps everything.
3. Columns: a gutter is a stretch of blank cells, wider than a word space,
   that runs down the page with text on both sides and through fewer rows
   than it separates. Rows that cross it (a title, an abstract, a wide
   figure caption) are read whole; each run of rows between them is read
   left column first, then right (and again inside each side, for three).
   A single-column page has no such stretch: its lines cross any gap.
4. Paragraphs: a line starts one after a blank row, when it is indented or a
   list item, when the line before it ended short of the column's right
   edge (a heading is short too), or where full-width text meets columns. Text flows on across
   columns and pages. Inside a paragraph, lines are joined with a space:
   a PDF breaks lines where the column was full, which says nothing about
   the text, and a model trained on those breaks would learn to write
   newlines every sixty characters. Paragraphs are separated by a blank line.
5. A line that ends in a letter and a hyphen, followed by a line that starts
   with a lower-case letter, is one word split by hyphenation ("exam-" +
   "ple"): it is joined without the hyphen. Before a capital or a digit the
   hyphen is kept ("Anglo-" + "Saxon"). Ligature characters (U+FB00..FB06,
   which fonts use for "fi", "ffl"...) become their letters; the rest of the
   text is left as it is, not NFKC-normalised, which would also change
   superscripts, fractions and full-width characters.

What is lost: tables and code listings become lines of words joined by
spaces, a table whose columns are far apart and many rows long can be taken
for text columns, and rotated text beside upright text (an arXiv stamp in the
margin) is dropped. A page whose text is all rotated, or that layout mode
fails on, is read in content-stream order instead.

A file that cannot be read raises `SkippedFile` with the reason and a fix: a
password (decrypt it with qpdf), damage (repair it with qpdf), or no text
layer at all (a scan: OCR it first). PDFs encrypted with the empty password,
as many are to set permissions, are read as they are.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np

from . import SkippedFile, require

# Blank cells a gutter needs: more than the two that layout mode often leaves between the
# words of a justified line.
GUTTER_CELLS = 4
# Rows of text a column needs on each side of a gutter (the last column of a paper may hold
# two lines), so that a wide gap in one row of a page is not taken for columns.
MIN_COLUMN_ROWS = 2
# Characters a column's rows hold on average: a column of bullets or page numbers is no column.
MIN_COLUMN_CHARS = 12
# How many rows at each end of a page may be a running header or footer, and on how many
# pages such a row must recur unless it is on the page before or after.
EDGE_ROWS = 2
RUNNING_PAGES = 3
# A line that ends before this share of its column's width ends a paragraph.
SHORT_LINE = 0.75
# Cells of indentation that start a paragraph.
INDENT_CELLS = 2
LIST_ITEM = re.compile(r"([•◦▪‣∙·*\u2013-]|\(?\d{1,2}[.)]|\(?[a-z][.)])\s")
LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl"}
    | {"\ufb05": "st", "\ufb06": "st"}
)
HYPHENS = "-\u00ad\u2010"  # hyphen-minus, soft hyphen, hyphen


def read(path: Path, text_field: str = "text") -> Iterator[str]:
    """The PDF's text as one document: `text_field` is for record formats and unused here."""
    pages = _drop_running_lines(_page_grids(path))
    text = _join(line for page in pages for line in _page_lines(page))
    if not text:
        raise SkippedFile(
            "no text layer (a scanned PDF?); OCR it first, e.g. ocrmypdf in.pdf out.pdf"
        )
    yield text.translate(LIGATURES)


# --- pypdf: each page as rows of a character grid ------------------------------------------


def _page_grids(path: Path) -> list[list[str]]:
    """Each page's text as pypdf lays it out: rows of characters, blank rows for gaps."""
    pypdf = require("pypdf", "pypdf", "documents")
    _check_is_pdf(path)
    with _quiet_pypdf():
        try:
            reader = pypdf.PdfReader(path)
            _decrypt(reader, pypdf)
            return [_page_rows(page) for page in reader.pages]
        except SkippedFile:
            raise
        except pypdf.errors.DependencyError:
            raise SkippedFile(
                "encrypted with AES, which pypdf decrypts only with the cryptography package: "
                "pip install cryptography"
            ) from None
        except Exception as error:  # pypdf meets damage as any of a dozen exception types
            reason = " ".join(f"{type(error).__name__}: {error}".split())
            raise SkippedFile(
                f"damaged PDF ({reason}); repair it (e.g. qpdf in.pdf out.pdf) or save it "
                "again from a PDF viewer"
            ) from None


def _check_is_pdf(path: Path) -> None:
    """A file named .pdf that is not one (an HTML error page saved by a download) says so."""
    with open(path, "rb") as file:
        head = file.read(1024)  # the header may follow up to a kilobyte of junk
    if b"%PDF-" not in head:
        found = "it is empty" if not head else "no %PDF- header"
        raise SkippedFile(f"not a PDF ({found}); remove it from the data or fix its suffix")


def _page_rows(page) -> list[str]:
    """The page in layout mode; in stream order where layout mode finds no text (the page's
    text is all rotated, which layout mode leaves out) or fails (it is pypdf's newer path)."""
    try:
        text = page.extract_text(extraction_mode="layout", layout_mode_scale_weight=2)
    except Exception:  # the plain path below reads the page or raises what is wrong with it
        text = ""
    return (text if text.strip() else page.extract_text()).split("\n")


def _decrypt(reader, pypdf) -> None:
    """Open a PDF encrypted with the empty password; refuse one that needs a real one."""
    if reader.is_encrypted and reader.decrypt("") == pypdf.PasswordType.NOT_DECRYPTED:
        raise SkippedFile(
            "encrypted; decrypt it (e.g. qpdf --decrypt --password=... in.pdf out.pdf) "
            "to include it"
        )


@contextmanager
def _quiet_pypdf():
    """pypdf logs what it repairs as it goes (a bad xref, rotated text) to stderr; a corpus of
    papers would print hundreds of such lines, and a file that cannot be read gets its own."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.ERROR + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


# --- running headers, footers and page numbers ---------------------------------------------


def _drop_running_lines(pages: list[list[str]]) -> list[list[str]]:
    """The pages without the rows at their top and bottom that recur on other pages: on
    the page before or after (a chapter's title), or on three pages anywhere (a book's)."""
    edges = [_edge_rows(rows) for rows in pages]
    keys = [{key for _, key in edge} for edge in edges]
    seen = Counter(key for page in keys for key in page)
    kept = []
    for i, rows in enumerate(pages):
        neighbours = set().union(*keys[max(i - 1, 0) : i], *keys[i + 1 : i + 2])
        drop = {n for n, key in edges[i] if seen[key] >= RUNNING_PAGES or key in neighbours}
        kept.append(_without(rows, drop))
    return kept


def _edge_rows(rows: list[str]) -> list[tuple[int, tuple[str, str]]]:
    """(index, key) of the first and last few rows with text; the key says which end."""
    filled = [i for i, row in enumerate(rows) if row.strip()]
    top = [(i, ("top", _shape(rows[i]))) for i in filled[:EDGE_ROWS]]
    bottom = [(i, ("bottom", _shape(rows[i]))) for i in filled[-EDGE_ROWS:]]
    return top + bottom


def _shape(row: str) -> str:
    """A row with its page numbers ignored: digits and roman numerals become #."""
    text = re.sub(r"\d+", "#", " ".join(row.split()).lower())
    return re.sub(r"\b[ivxlc]+\b", "#", text) if re.fullmatch(r"[\W#ivxlc]*", text) else text


def _without(rows: list[str], drop: set[int]) -> list[str]:
    return [row for i, row in enumerate(rows) if i not in drop]


# --- columns -------------------------------------------------------------------------------


@dataclass
class _Block:
    """Rows read one after another; `columned` when they are one column of several."""

    rows: list[str]
    columned: bool


def _blocks(rows: list[str], columned: bool = False) -> list[_Block]:
    """The rows in reading order: cut at a gutter, each side read in turn, down the page."""
    gutter = _gutter(rows)
    if gutter is None:
        return [_Block(rows, columned)]
    end = gutter + GUTTER_CELLS
    head = _head(rows, gutter)
    blocks = [_Block(rows[:head], columned)] if head else []
    for crossing, band in _bands(rows[head:], gutter):
        if crossing:
            blocks += _blocks(band, columned)
        else:  # a row that crosses the gutter here goes whole into the left column
            blocks += _blocks(
                [row if _crosses(row, gutter) else row[:gutter] for row in band], True
            )
            blocks += _blocks(["" if _crosses(row, gutter) else row[end:] for row in band], True)
    return blocks


def _head(rows: list[str], gutter: int) -> int:
    """How many rows at the top hold text right of the gutter only: a title and its authors,
    centred over the page but drawn above where the right column starts (the left column
    starts lower, under them). They come first, not after the whole left column."""
    for i, row in enumerate(rows):
        if row[:gutter].strip():
            return i if i and not rows[i - 1].strip() else 0
    return 0


def _bands(rows: list[str], gutter: int) -> list[tuple[bool, list[str]]]:
    """Runs of rows that cross the gutter (True) and runs that keep out of it.

    A single row that crosses it between rows in columns stays with them: it is a line
    drawn wider than its column, not a title across the page. (pypdf draws some lines so:
    it keeps the word spacing set for one line after the graphics state that held it is
    restored, and fpdf2 and macOS's Quartz write their lines that way.)
    """
    runs = [
        (crossing, list(band))
        for crossing, band in groupby(rows, lambda row: _crosses(row, gutter))
    ]
    bands: list[tuple[bool, list[str]]] = []
    for i, (crossing, band) in enumerate(runs):
        lone = crossing and len(band) == 1 and 0 < i < len(runs) - 1
        if bands and not bands[-1][0] and (lone or not crossing):
            bands[-1][1].extend(band)
        else:
            bands.append((crossing, band))
    return bands


def _crosses(row: str, gutter: int) -> bool:
    return bool(row[gutter : gutter + GUTTER_CELLS].strip())


def _gutter(rows: list[str]) -> int | None:
    """Where a gap runs down the rows with text either side, or None: the first cell of it.

    Each position scores the rows with text to the right of a blank stretch there, less the
    rows that cross it; the middle of the best-scoring stretch wins. Each side must hold a
    column's worth of text, not a column of bullets or of page numbers in a contents list.
    """
    width = max((len(row) for row in rows), default=0)
    if width <= GUTTER_CELLS or len(rows) < MIN_COLUMN_ROWS:
        return None
    inked = _ink_before(rows, width)
    starts = np.arange(1, width - GUTTER_CELLS)
    before, after = inked[:, starts], inked[:, -1:] - inked[:, starts + GUTTER_CELLS]
    crossing = inked[:, starts + GUTTER_CELLS] > before
    left, right = (before > 0) & ~crossing, (after > 0) & ~crossing
    n_left, n_right, n_crossing = left.sum(axis=0), right.sum(axis=0), crossing.sum(axis=0)
    wide = (np.where(left, before, 0).sum(axis=0) >= MIN_COLUMN_CHARS * n_left) & (
        np.where(right, after, 0).sum(axis=0) >= MIN_COLUMN_CHARS * n_right
    )
    valid = wide & (np.minimum(n_left, n_right) >= MIN_COLUMN_ROWS) & (n_right > n_crossing)
    score = np.where(valid, n_right - n_crossing, 0)
    if not score.any():
        return None
    best = np.flatnonzero(score == score.max())
    stretch = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)[0]
    return int(starts[stretch[len(stretch) // 2]])


def _ink_before(rows: list[str], width: int) -> np.ndarray:
    """For each row and cell, how many characters that are not spaces come before it."""
    grid = "".join(row.ljust(width) for row in rows).encode("utf-32-le")
    ink = np.frombuffer(grid, dtype=np.uint32).reshape(len(rows), width) != ord(" ")
    return np.concatenate([np.zeros((len(rows), 1), int), ink.cumsum(axis=1)], axis=1)


# --- lines and paragraphs ------------------------------------------------------------------


@dataclass
class _Line:
    text: str  # its words, one space apart
    opens: bool  # starts a paragraph: after a blank row, indented, a list item
    short: bool  # ends well before the column's right edge: a paragraph's last line


def _page_lines(rows: list[str]) -> list[_Line]:
    """A page's lines in reading order. Where full-width text meets columns (a title above
    them), a paragraph starts; from column to column, and page to page, text flows on."""
    lines: list[_Line] = []
    columned = None
    for block in _blocks(rows):
        block_lines = _lines(block.rows)
        if block_lines and columned is not None and block.columned != columned:
            block_lines[0].opens = True
        columned = block.columned if block_lines else columned
        lines += block_lines
    return lines


def _lines(block: list[str]) -> list[_Line]:
    """The rows of a block as lines, with what their position says about paragraphs."""
    rows = [(number, row.rstrip()) for number, row in enumerate(block) if row.strip()]
    if not rows:
        return []
    indents = [len(row) - len(row.lstrip()) for _, row in rows]
    margin = min(indents)
    full = _full_width([len(row) - margin for _, row in rows], [i - margin for i in indents])
    lines: list[_Line] = []
    for k, (number, row) in enumerate(rows):
        text = " ".join(row.split())
        after_gap = k > 0 and rows[k - 1][0] < number - 1
        short = len(row) - margin < SHORT_LINE * full and not _hyphenated(text)
        lines.append(_Line(text, after_gap or bool(LIST_ITEM.match(text)), short))
        if k == 1 and after_gap and lines[0].short:  # a heading at the top of a column
            lines[0].opens = True
    _mark_indented(lines, indents, margin)
    if len(lines) == 1:  # a line alone (a heading, a caption) is a paragraph of its own
        lines[0].opens = lines[0].short = not _hyphenated(lines[0].text)
    return lines


def _full_width(ends: list[int], indents: list[int]) -> int:
    """How far a full line of the block reaches: nearly the furthest, leaving out rows set
    far to the right (a page number, a signature), which say nothing of the column."""
    widest = max(ends)
    ends = sorted(end for end, indent in zip(ends, indents, strict=True) if indent < widest / 2)
    return ends[round((len(ends) - 1) * 0.9)]


def _mark_indented(lines: list[_Line], indents: list[int], margin: int) -> None:
    """A paragraph whose first line is indented further than the line after it starts there:
    when the line stands out from the one before too, or that one began a paragraph the same
    way (one-line paragraphs, one after another). Not the lines of a quotation, nor those
    indented under a list item or a reference (a hanging indent)."""
    for k, line in enumerate(lines):
        before = indents[k - 1] if k else margin
        after = indents[k + 1] if k + 1 < len(lines) else margin
        began = k > 0 and (lines[k - 1].opens or (k > 1 and lines[k - 2].short))
        stands_out = indents[k] > before + 1 or (began and indents[k] == before)
        under_item = k > 0 and LIST_ITEM.match(lines[k - 1].text)
        if indents[k] >= after + INDENT_CELLS and stands_out and not under_item:
            line.opens = True


def _join(lines: Iterable[_Line]) -> str:
    """The lines as paragraphs separated by blank lines (each paragraph a list of its lines
    until then, so that a book with no paragraph breaks is not copied once per line)."""
    paragraphs: list[list[str]] = []
    previous: _Line | None = None
    for line in lines:
        if previous is None or line.opens or previous.short:
            paragraphs.append([line.text])
        elif _hyphenated(paragraphs[-1][-1]):
            paragraphs[-1][-1] = _unhyphenate(paragraphs[-1][-1], line.text)
        else:
            paragraphs[-1].append(line.text)
        previous = line
    return "\n\n".join(" ".join(pieces) for pieces in paragraphs)


def _unhyphenate(line: str, after: str) -> str:
    """A line ending in a hyphenated word joined with the next: "exam-" + "ple" is one word,
    "Anglo-" + "Saxon" keeps its hyphen; a soft hyphen is only ever a break."""
    if after[0].islower() or line[-1] == "\u00ad":
        return line[:-1] + after
    return line + after


def _hyphenated(text: str) -> bool:
    """Whether the text ends in a letter and a hyphen: a word may go on in the next line."""
    return len(text) >= 2 and text[-1] in HYPHENS and text[-2].isalpha()
