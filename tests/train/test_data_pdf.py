"""PDFs, written here with fpdf2, read back by formats/pdf.py: the text that was put in.

Each PDF is drawn line by line at positions the test chooses, in an order the test
chooses, so a reader that trusted the content stream's order would fail. The
expected text is the lines put in, joined as the reader promises: the lines of a
paragraph with one space, paragraphs with a blank line. Nothing else about
whitespace is normalised.
"""

from __future__ import annotations

import random
import re
import warnings
from pathlib import Path

import fpdf
import matplotlib
import pypdf
import pytest
from slm_train import DataWarning, prepare, resolve
from slm_train.data.formats import SkippedFile, pdf

# DejaVu Sans, shipped with matplotlib: a Unicode font with the fi, fl and ffi ligatures.
UNICODE_FONT = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
LEADING = 12  # points between baselines, for 10-point text
LEFT, RIGHT, TOP = 50, 310, 100  # where the columns start; A4 is 595 points wide

# Two columns of two paragraphs each; the last line of each paragraph is short, as in print.
COLUMN_ONE = [
    [
        "Small language models are trained on text",
        "that their owners choose, and a folder of",
        "papers is the most common such corpus.",
    ],
    [
        "A paper is usually set in two columns, and",
        "its text must be read down the first one",
        "before the second.",
    ],
]
COLUMN_TWO = [
    [
        "The program that wrote the file may draw",
        "the lines of both columns in turn, row by",
        "row across the page.",
    ],
    [
        "Reading the drawing order would mix the",
        "two columns into nonsense sentences that",
        "no model should learn.",
    ],
]


def write_pdf(path: Path, pages: list[list[tuple[float, float, str]]], unicode: bool = False):
    """A PDF whose pages draw (x, baseline from the top, text) in the order given."""
    document = fpdf.FPDF(unit="pt", format="A4")
    if unicode:
        document.add_font("DejaVu", fname=str(UNICODE_FONT))
    for page in pages:
        document.add_page()
        document.set_font("DejaVu" if unicode else "Helvetica", size=10)
        for x, y, text in page:
            document.text(x, y, text)
    document.output(str(path))
    return path


def column(paragraphs: list[list[str]], x: float = LEFT, top: float = TOP):
    """Paragraphs drawn as lines at x, down from top, a blank line between paragraphs."""
    drawn, y = [], top
    for lines in paragraphs:
        for line in lines:
            drawn.append((x, y, line))
            y += LEADING
        y += LEADING
    return drawn


def expected(paragraphs: list[list[str]]) -> str:
    return "\n\n".join(" ".join(lines) for lines in paragraphs)


def read(path: Path) -> str:
    [document] = pdf.read(path)
    return document


def test_two_columns_drawn_row_by_row_are_read_column_by_column(tmp_path):
    left, right = column(COLUMN_ONE, LEFT), column(COLUMN_TWO, RIGHT)
    interleaved = [line for row in zip(left, right, strict=True) for line in row]
    path = write_pdf(tmp_path / "paper.pdf", [interleaved])
    naive = pypdf.PdfReader(path).pages[0].extract_text()
    assert f"{COLUMN_ONE[0][0]} {COLUMN_TWO[0][0]}" in naive  # stream order mixes the columns
    assert read(path) == expected(COLUMN_ONE + COLUMN_TWO)


def test_three_columns_drawn_row_by_row_are_read_left_to_right(tmp_path):
    columns = [
        [["Three narrow columns, as in", "a magazine, are read one by", "one, left to right."]],
        [["The middle column comes", "second, though the page was", "drawn row by row."]],
        [["The right column comes last,", "after both of the others,", "and ends the page."]],
    ]
    drawn = [column(paragraphs, x) for paragraphs, x in zip(columns, (40, 225, 410), strict=True)]
    rows = [line for row in zip(*drawn, strict=True) for line in row]
    path = write_pdf(tmp_path / "magazine.pdf", [rows])
    assert read(path) == expected([paragraph for paragraphs in columns for paragraph in paragraphs])


def test_a_title_across_both_columns_is_read_first(tmp_path):
    title = "Reading Order in Two Columns: A Title That Spans the Gutter"
    lines = [(120, 60, title), *column(COLUMN_ONE, LEFT), *column(COLUMN_TWO, RIGHT)]
    path = write_pdf(tmp_path / "paper.pdf", [sorted(lines, key=lambda line: line[1])])
    assert read(path) == expected([[title], *COLUMN_ONE, *COLUMN_TWO])


def test_a_title_over_the_right_column_is_read_first(tmp_path):
    """A title and authors centred over the page can sit right of the gutter only, when the
    left column starts lower (a real USENIX template does this): they still come first."""
    title, authors = "A Short Title", "Ada Writer   Bo Reader"
    heading = [(330, 60, title), (330, 74, authors)]
    lines = [*heading, *column(COLUMN_ONE, LEFT, TOP), *column(COLUMN_TWO, RIGHT, TOP)]
    path = write_pdf(tmp_path / "paper.pdf", [sorted(lines, key=lambda line: line[1])])
    assert read(path) == expected([[title], ["Ada Writer Bo Reader"], *COLUMN_ONE, *COLUMN_TWO])


WORDS = (  # noqa: SIM905
    "model data training text token language layer attention weights loss gradient batch corpus "
    "paper column reader sentence document vocabulary embedding transformer learning rate small "
    "large evaluation benchmark result method approach baseline experiment schedule"
).split()


def test_a_paper_typeset_in_two_columns_over_two_pages(tmp_path):
    """fpdf2 sets the paper as a typesetter would: a title across the page, then two
    columns whose paragraphs (first lines indented) flow down one column, up into the next
    and over the page, under a running header and over page numbers. The last column holds
    only two lines."""
    rng = random.Random(0)
    sentences = [
        " ".join(rng.choices(WORDS, k=rng.randint(6, 16))).capitalize() + "." for _ in range(120)
    ]
    paragraphs = [" ".join(sentences[i : i + 4]) for i in range(0, 120, 4)]
    title = "On Reading Two Columns of Text in the Right Order"

    class Paper(fpdf.FPDF):
        def header(self):
            self.set_font("Helvetica", "I", 8)
            self.text(50, 35, "Proceedings of Reading Order, 2026")
            self.set_y(60)

        def footer(self):
            self.set_font("Helvetica", size=8)
            self.text(290, 810, str(self.page_no()))

    paper = Paper(unit="pt", format="A4")
    paper.add_page()
    paper.set_font("Helvetica", "B", 16)
    paper.multi_cell(0, 20, title, align="C")
    paper.ln(10)
    paper.set_font("Times", size=10)
    with paper.text_columns(ncols=2, gutter=18, text_align="L", l_margin=50, r_margin=50) as cols:
        for text in paragraphs:
            with cols.paragraph(first_line_indent=12) as paragraph:
                paragraph.write(text)
    paper.output(str(tmp_path / "paper.pdf"))
    assert len(pypdf.PdfReader(tmp_path / "paper.pdf").pages) == 2
    assert read(tmp_path / "paper.pdf") == "\n\n".join([title, *paragraphs])


def test_a_single_column_page_is_plain_paragraphs(tmp_path):
    """A paragraph begins after a gap, at an indented line, or after a line that ends short
    of the margin (a heading is one); the lines inside a paragraph are joined with a space."""
    paragraphs = [
        [
            "Plain pages are the easy case: each line is read from left to right, and the",
            "lines from the top of the page down to its foot, with a gap after this line.",
        ],
        [
            "An indented line starts a new paragraph even without a gap before it, as in",
            "most books, where paragraphs are marked by indentation alone and not by space.",
        ],
        [
            "The reader keeps the lines of each paragraph together, and this paragraph",
            "ends early.",
        ],
        ["A Heading"],
        [
            "Text after a heading begins a paragraph of its own, since the heading ends",
            "short of the right margin, and so does the line that ends this paragraph.",
        ],
    ]
    gaps, indents = [0, LEADING, 0, 0, 0], [0, 0, 20, 0, 0]
    drawn, y = [], TOP
    for lines, gap, indent in zip(paragraphs, gaps, indents, strict=True):
        y += gap
        for number, line in enumerate(lines):
            drawn.append((LEFT + (indent if number == 0 else 0), y, line))
            y += LEADING
    assert read(write_pdf(tmp_path / "book.pdf", [drawn])) == expected(paragraphs)


def test_a_word_hyphenated_across_lines_is_joined(tmp_path):
    lines = [
        "When a word is too long for the end of a line, the typesetter splits an exam-",
        "ple of it with a hyphen, and the reader joins it again; a compound like Anglo-",
        "Saxon keeps its hyphen before a capital letter, and so does a date like pre-",
        "2020 or a number, while the last line of the paragraph is short.",
    ]
    path = write_pdf(tmp_path / "hyphens.pdf", [column([lines])])
    assert read(path) == (
        "When a word is too long for the end of a line, the typesetter splits an example of "
        "it with a hyphen, and the reader joins it again; a compound like Anglo-Saxon keeps "
        "its hyphen before a capital letter, and so does a date like pre-2020 or a number, "
        "while the last line of the paragraph is short."
    )


def test_a_word_hyphenated_across_columns_is_joined(tmp_path):
    left = [
        "A column can end in the middle of a word,",
        "and the reader carries on reading at the",
        "top of the next column, with the hyphen-",
    ]
    right = [
        "ated word joined across the gap between",
        "the two columns as if it had never been",
        "split at all.",
    ]
    path = write_pdf(tmp_path / "columns.pdf", [column([left], LEFT) + column([right], RIGHT)])
    assert read(path) == (
        "A column can end in the middle of a word, and the reader carries on reading at the "
        "top of the next column, with the hyphenated word joined across the gap between the "
        "two columns as if it had never been split at all."
    )


BODIES = [
    [
        "Every page of a long report carries the same title at its top and a",
        "number at its foot, which a model should not learn as text.",
        "This sentence also appears on another page.",
    ],
    [
        "The second page goes on with the report, and its header is the same",
        "title, while the number at its foot has gone up by one, as numbers",
        "on pages do.",
    ],
    [
        "The third page has its own words, and one sentence that repeats",
        "somewhere else in the body of the report, which is kept both times.",
        "This sentence also appears on another page.",
    ],
    [
        "The fourth page ends the report with a header and a page number",
        "like every other page, and with nothing else that repeats on it",
        "at all.",
    ],
]


CHAPTERS = ["Chapter 1: Reading", "Chapter 1: Reading", "Chapter 2: Writing", "Chapter 2: Writing"]


@pytest.mark.parametrize(
    ("headers", "footer"),
    [
        (["Journal of Small Models, Volume 3"] * 4, "Page {n} of 4"),
        (["A Report on Reading Order"] * 4, "{n}"),
        (["", "", "", ""], "- {roman} -"),
        (CHAPTERS, "{n}"),  # a chapter's title heads its pages: two, then two more
    ],
)
def test_running_headers_footers_and_page_numbers_are_removed(tmp_path, headers, footer):
    """Also kept: the body's sentence that ends pages 1 and 3."""
    roman = ["i", "ii", "iii", "iv"]
    pages = []
    for n, (header, body) in enumerate(zip(headers, BODIES, strict=True), start=1):
        top = [(LEFT, 50, header)] if header else []
        foot = [(280, 800, footer.format(n=n, roman=roman[n - 1]))]
        pages.append(top + column([body]) + foot)
    text = read(write_pdf(tmp_path / "report.pdf", pages))
    assert text == expected(BODIES)


def test_a_one_page_pdf_keeps_its_header_and_page_number(tmp_path):
    page = [(LEFT, 50, "Journal of Small Models"), *column([BODIES[0]]), (280, 800, "1")]
    text = read(write_pdf(tmp_path / "one.pdf", [page]))
    assert text == expected([["Journal of Small Models"], BODIES[0], ["1"]])


def test_ligatures_become_letters_and_nothing_else_is_normalised(tmp_path):
    line = "The ﬁrst ﬂoor oﬃce had a baﬄe and a stiﬀ door; E = mc² and ½ stay."
    path = write_pdf(tmp_path / "ligatures.pdf", [[(LEFT, TOP, line)]], unicode=True)
    assert "\ufb01" in pypdf.PdfReader(path).pages[0].extract_text()  # the PDF holds a ligature
    assert read(path) == "The first floor office had a baffle and a stiff door; E = mc² and ½ stay."


def encrypted(path: Path, source: Path, user_password: str, algorithm: str = "RC4-128") -> Path:
    writer = pypdf.PdfWriter(clone_from=source)
    writer.encrypt(user_password, owner_password="owner", algorithm=algorithm)
    writer.write(path)
    return path


@pytest.fixture
def folder_with_a_locked_pdf(tmp_path) -> Path:
    """notes.pdf, open.pdf (encrypted with the empty password) and locked.pdf (a password)."""
    folder = tmp_path / "papers"
    folder.mkdir()
    write_pdf(folder / "notes.pdf", [column(COLUMN_ONE)])
    source = write_pdf(tmp_path / "source.pdf", [column(COLUMN_TWO)])
    encrypted(folder / "open.pdf", source, user_password="")
    encrypted(folder / "locked.pdf", source, user_password="secret")
    return folder


def test_an_encrypted_pdf_is_skipped_with_one_line_and_the_rest_go_in(folder_with_a_locked_pdf):
    locked = folder_with_a_locked_pdf / "locked.pdf"
    corpus = resolve(str(folder_with_a_locked_pdf))
    with pytest.warns(DataWarning) as caught:
        documents = list(corpus.documents())
    assert documents == [expected(COLUMN_ONE), expected(COLUMN_TWO)]  # notes.pdf, open.pdf
    reason = "encrypted; decrypt it (e.g. qpdf --decrypt --password=... in.pdf out.pdf)"
    assert [str(w.message) for w in caught] == [f"skipped {locked}: {reason} to include it"]
    assert list(corpus.skipped) == [str(locked)]


def test_prepare_lists_the_skipped_pdf_in_meta(folder_with_a_locked_pdf, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = prepare(str(folder_with_a_locked_pdf), tmp_path / "data", "bpe:300")
    skipped = data.meta["skipped_files"]
    assert list(skipped) == [str(folder_with_a_locked_pdf / "locked.pdf")]
    assert skipped[str(folder_with_a_locked_pdf / "locked.pdf")].startswith("encrypted; ")
    assert data.meta["train_tokens"] > 0 and data.meta["val_tokens"] > 0


def test_prepare_command_prints_one_line_for_the_skipped_pdf(folder_with_a_locked_pdf, tmp_path):
    from slm_cli.main import app
    from typer.testing import CliRunner

    args = ["prepare", "--data", str(folder_with_a_locked_pdf), "--tokenizer", "bpe:300"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("warning: skipped")]
    assert len(skipped) == 1 and "locked.pdf: encrypted; decrypt it" in skipped[0], result.output
    assert "1 file (named above, and in meta.json)" in result.output  # and the table counts it


def test_an_aes_encrypted_pdf_is_read_or_names_the_missing_package(tmp_path):
    """AES needs the cryptography package: with it the file is read (pypdf can then write
    one too); without it the skip says what to install."""
    source = write_pdf(tmp_path / "source.pdf", [column(COLUMN_ONE)])
    try:
        path = encrypted(tmp_path / "aes.pdf", source, user_password="", algorithm="AES-128")
    except pypdf.errors.DependencyError:
        path = marked_aes(encrypted(tmp_path / "aes.pdf", source, user_password=""))
        with pytest.raises(SkippedFile, match=r"AES.*pip install cryptography$"):
            read(path)
    else:
        assert read(path) == expected(COLUMN_ONE)


def marked_aes(path: Path) -> Path:
    """pypdf's RC4 file with its /Encrypt dictionary made AES-128 (V4, R4, AESV2), as pypdf
    cannot write AES without cryptography. The password check is the same for R3 and R4, so
    the file opens; its streams then need AES. The dictionary is the last object before the
    cross-reference table, so only startxref moves."""
    old, new = b"/V 2\n/R 3\n", b"/V 4\n/R 4\n/CF << /StdCF << /CFM /AESV2 /Length 16 >> >>\n"
    new += b"/StmF /StdCF\n/StrF /StdCF\n"
    data = path.read_bytes()
    assert data.count(old) == 1 and data.index(old) > data.rindex(b" obj")
    data = data.replace(old, new)
    where = re.search(rb"startxref\s+(\d+)", data)
    moved = str(int(where.group(1)) + len(new) - len(old)).encode()
    path.write_bytes(data[: where.start(1)] + moved + data[where.end(1) :])
    return path


def test_damaged_and_mislabelled_files_are_skipped_naming_the_problem(tmp_path):
    good = write_pdf(tmp_path / "good.pdf", [column(COLUMN_ONE)]).read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(SkippedFile, match=r"^damaged PDF \(.+\); repair it \(e.g. qpdf"):
        read(cut)
    page = tmp_path / "page.pdf"
    page.write_text("<html>404 Not Found</html>")
    with pytest.raises(SkippedFile, match=r"^not a PDF \(no %PDF- header\)"):
        read(page)
    (tmp_path / "empty.pdf").write_bytes(b"")
    with pytest.raises(SkippedFile, match="it is empty"):
        read(tmp_path / "empty.pdf")


def test_a_pdf_without_a_text_layer_is_skipped(tmp_path):
    """A scan is images only; a page of drawings stands in for one here."""
    document = fpdf.FPDF(unit="pt", format="A4")
    document.add_page()
    document.rect(50, 50, 300, 200, style="F")
    document.output(str(tmp_path / "scan.pdf"))
    with pytest.raises(SkippedFile, match=r"no text layer .* OCR it first"):
        read(tmp_path / "scan.pdf")


def test_rotated_text_beside_the_page_is_dropped_and_a_rotated_page_is_read(tmp_path):
    """Layout mode leaves rotated text out: a stamp up the margin goes, but a page whose text
    is all rotated is read in the order it was drawn rather than lost."""
    document = fpdf.FPDF(unit="pt", format="A4")
    document.add_page()
    document.set_font("Helvetica", size=10)
    for x, y, line in column(COLUMN_ONE):
        document.text(x, y, line)
    with document.rotation(90, 20, 700):
        document.text(20, 700, "arXiv:2401.00001v1 [cs.CL] 1 Jan 2024")
    document.add_page()
    with document.rotation(90, 300, 700):
        document.text(300, 700, "A page turned on its side.")
    document.output(str(tmp_path / "rotated.pdf"))
    assert read(tmp_path / "rotated.pdf") == expected([*COLUMN_ONE, ["A page turned on its side."]])
