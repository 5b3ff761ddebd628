"""HTML, EPUB, Parquet and Arrow files: the text that comes out is the text that went in."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import story
from slm_train import Cleaning, CorpusError, DataWarning, prepare, resolve
from slm_train.data.formats import SkippedFile, read_file
from typer.testing import CliRunner

EOT = "<|endoftext|>"


# ---- HTML -------------------------------------------------------------------------------------

ARTICLE = [
    "How rivers carve valleys",
    "Rivers shape the land over millions of years. Water carries sand and stones that grind "
    "the rock of the bed, deepening it a little every flood season.",
    "Meanders",
    "On flat ground a river swings from side to side. The outer bank erodes while the inner "
    "bank collects sediment, and the loops slowly wander downstream.",
    "Sometimes a loop is cut off entirely and becomes an oxbow lake,\nleft behind when the "
    "river finds a shorter path.",
]


def page(charset: str = "utf-8") -> str:
    """A web page whose article is ARTICLE, among a menu, scripts, a style and a footer."""
    title, first, heading, second, third = ARTICLE
    # The source wraps lines (trafilatura keeps the wrapping where a paragraph holds <code>).
    wrapped = second.replace("The outer bank erodes", "The <code>outer</code> bank\n    erodes")
    third_html = third.replace("\n", "<br>")
    return f"""<!DOCTYPE html>
<html><head><meta charset="{charset}"><title>Rivers | Example site</title>
<style>body {{ color: red; }} .menu {{ display: flex; }}</style>
<script>var tracking = "SCRIPT TEXT in the head";</script></head>
<body>
<nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li>
<li><a href="/shop">Shop</a></li></ul></nav>
<main><article>
<h1>{title}</h1>
<p>{first}</p>
<h2>{heading}</h2>
<p>{wrapped}</p>
<p>{third_html}</p>
</article></main>
<footer><p>Copyright 2026 Example Corp. All rights reserved. Imprint and privacy.</p></footer>
<script>document.write("SCRIPT TEXT in the body");</script>
</body></html>"""


def test_html_main_text_without_menu_scripts_or_footer(tmp_path):
    path = tmp_path / "rivers.html"
    path.write_text(page(), encoding="utf-8")
    documents = list(read_file(path))
    # Paragraphs and headings separated by blank lines; the source's line wrapping undone,
    # a <br> kept as a line break.
    assert documents == ["\n\n".join(ARTICLE)]
    for boilerplate in ("Home", "About us", "SCRIPT TEXT", "color: red", "Copyright", "Example"):
        assert boilerplate not in documents[0]


def test_html_is_decoded_with_the_charset_it_declares(tmp_path):
    path = tmp_path / "latin1.htm"
    text = page("iso-8859-1").replace("flood season", "crue d'été, déjà")
    path.write_bytes(text.encode("latin-1"))
    (document,) = read_file(path)
    assert "deepening it a little every crue d'été, déjà." in document


def test_a_page_without_main_text_is_skipped_and_counted(tmp_path):
    (tmp_path / "empty.html").write_text("<html><head><script>var x = 1;</script></head></html>")
    (tmp_path / "good.html").write_text(page())
    corpus = resolve(str(tmp_path))
    with pytest.warns(DataWarning, match=r"skipped .*empty\.html: no main text found"):
        documents = list(corpus.documents())
    assert documents == ["\n\n".join(ARTICLE)]
    assert list(corpus.skipped) == [str(tmp_path / "empty.html")]


# ---- EPUB -------------------------------------------------------------------------------------

CHAPTERS = [
    ("Chapter One", ["It was a dark and stormy night.", "The wind howled around the house."]),
    ("Two", ["Short."]),  # trafilatura would flatten a chapter this short
    ("A Poem", ["Roses are red,\nviolets are blue,", "and the end is near."]),
]


def chapter_text(title: str, paragraphs: list[str]) -> str:
    return "\n\n".join([title, *paragraphs])


def write_book(path: Path) -> Path:
    """An EPUB of CHAPTERS plus a navigation document, added out of order, read in spine order."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("slm-test-book")
    book.set_title("A Small Book")
    book.set_language("en")
    chapters = []
    for number, (title, paragraphs) in enumerate(CHAPTERS):
        chapter = epub.EpubHtml(title=title, file_name=f"chapter_{number}.xhtml", lang="en")
        body = "".join(f"<p>{p.replace(chr(10), '<br/>')}</p>" for p in paragraphs)
        chapter.content = f"<h1>{title}</h1>{body}<script>var hidden = 'SCRIPT';</script>"
        chapters.append(chapter)
    for chapter in reversed(chapters):  # the manifest's order is not the reading order
        book.add_item(chapter)
    # A contents page of its own (as EPUB 2 books have), marked as such in the guide.
    contents = epub.EpubHtml(title="Contents", file_name="contents.xhtml")
    contents.content = "<h1>Contents</h1>" + "".join(f"<p>{title}</p>" for title, _ in CHAPTERS)
    book.add_item(contents)
    book.guide.append({"href": "contents.xhtml", "title": "Contents", "type": "toc"})
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", contents, *chapters]
    epub.write_epub(str(path), book)
    return path


def test_epub_chapters_in_reading_order_without_the_navigation(tmp_path):
    pytest.importorskip("ebooklib")
    path = write_book(tmp_path / "book.epub")
    documents = list(read_file(path))
    assert documents == ["\n\n".join(chapter_text(*chapter) for chapter in CHAPTERS)]
    for left_out in ("A Small Book", "Contents", "SCRIPT"):
        assert left_out not in documents[0]


def rewrite_zip(source: Path, target: Path, extra: dict[str, bytes], replace: dict[str, bytes]):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, replace.get(info.filename, old.read(info.filename)))
        for name, data in extra.items():
            new.writestr(name, data)


def encryption_xml(uri: str, algorithm: str) -> bytes:
    return (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
        f'<enc:EncryptionMethod Algorithm="{algorithm}"/>'
        f'<enc:CipherData><enc:CipherReference URI="{uri}"/></enc:CipherData>'
        "</enc:EncryptedData></encryption>"
    ).encode()


def test_drm_protected_and_damaged_epubs_are_skipped(tmp_path):
    pytest.importorskip("ebooklib")
    book = write_book(tmp_path / "book.epub")
    drm = tmp_path / "drm.epub"
    rewrite_zip(
        book,
        drm,
        {"META-INF/encryption.xml": encryption_xml("EPUB/chapter_1.xhtml", "aes128-cbc")},
        {"EPUB/chapter_1.xhtml": bytes(range(256)) * 4},  # what ciphertext looks like
    )
    with pytest.raises(SkippedFile, match="DRM-protected"):
        list(read_file(drm))
    # Obfuscated fonts use encryption.xml too, but the text is readable.
    fonts = tmp_path / "fonts.epub"
    font_key = encryption_xml("EPUB/fonts/serif.otf", "http://www.idpf.org/2008/embedding")
    rewrite_zip(book, fonts, {"META-INF/encryption.xml": font_key}, {})
    assert list(read_file(fonts)) == list(read_file(book))
    damaged = tmp_path / "damaged.epub"
    damaged.write_bytes(book.read_bytes()[: book.stat().st_size // 2])
    with pytest.raises(SkippedFile, match="not a readable EPUB"):
        list(read_file(damaged))


# ---- Parquet, Arrow, Feather ------------------------------------------------------------------


def rows(count: int = 25) -> tuple[list[str | None], list[str]]:
    """A `body` column with a null and an empty row, and the documents expected from it."""
    bodies: list[str | None] = [story(i) + f" Row {i}, café ✓." for i in range(count)]
    bodies[3] = None
    bodies[7] = ""
    bodies[11] = "\n  Indented first line\nand a second line.\n\n"
    expected = [b.strip("\n") for b in bodies if b]
    return bodies, expected


def table(count: int = 25):
    import pyarrow as pa

    bodies, expected = rows(count)
    data = pa.table({"id": list(range(count)), "body": bodies, "lang": ["en"] * count})
    return data, expected


def write_parquet(path: Path, count: int = 25) -> list[str]:
    import pyarrow.parquet as pq

    data, expected = table(count)
    pq.write_table(data, path, row_group_size=4)
    assert pq.ParquetFile(path).num_row_groups == -(-count // 4)
    return expected


def write_arrow_file(path: Path) -> list[str]:
    import pyarrow as pa

    data, expected = table()
    with pa.ipc.new_file(path, data.schema) as writer:
        writer.write_table(data, max_chunksize=4)
    return expected


def write_arrow_stream(path: Path) -> list[str]:
    import pyarrow as pa

    data, expected = table()
    with pa.ipc.new_stream(path, data.schema) as writer:
        writer.write_table(data, max_chunksize=4)
    return expected


def write_feather(path: Path) -> list[str]:
    import pyarrow.feather as feather

    data, expected = table()
    feather.write_feather(data, path, chunksize=4)
    return expected


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("rows.parquet", write_parquet),
        ("rows.arrow", write_arrow_file),
        ("stream.arrow", write_arrow_stream),
        ("rows.feather", write_feather),
    ],
)
def test_tables_give_one_document_per_row_of_the_text_field(tmp_path, monkeypatch, name, write):
    pytest.importorskip("pyarrow")
    from slm_train.data.formats import table as table_module

    monkeypatch.setattr(table_module, "BATCH_ROWS", 3)  # several batches per row group
    expected = write(tmp_path / name)
    assert list(read_file(tmp_path / name, "body")) == expected
    assert list(read_file(tmp_path / name, "lang")) == ["en"] * 25


def test_a_missing_or_non_text_column_names_the_columns_there_are(tmp_path):
    pytest.importorskip("pyarrow")
    write_parquet(tmp_path / "rows.parquet")
    with pytest.raises(CorpusError) as missing:
        list(read_file(tmp_path / "rows.parquet"))  # the default field, "text"
    assert str(missing.value) == (
        f"{tmp_path / 'rows.parquet'} has no column 'text'; its columns are id, body, lang: "
        "name the one holding the text with --text-field"
    )
    write_arrow_file(tmp_path / "rows.arrow")
    with pytest.raises(CorpusError, match=r"column 'id' holds int64, not text; .*body \(string\)"):
        list(read_file(tmp_path / "rows.arrow", "id"))


def test_a_damaged_table_is_skipped(tmp_path):
    pytest.importorskip("pyarrow")
    write_parquet(tmp_path / "good.parquet")
    whole = (tmp_path / "good.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "noise.arrow").write_bytes(b"not an arrow file " * 10)
    for name, kind in (("cut.parquet", "Parquet"), ("noise.arrow", "Arrow")):
        with pytest.raises(SkippedFile, match=f"not a readable {kind} file"):
            list(read_file(tmp_path / name, "body"))


# ---- All of them through prepare and the command line ----------------------------------------


def test_prepare_a_folder_of_mixed_formats(tmp_path):
    pytest.importorskip("pyarrow")
    pytest.importorskip("ebooklib")
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a_page.html").write_text(page())
    write_book(folder / "b_book.epub")
    documents = ["\n\n".join(ARTICLE), "\n\n".join(chapter_text(*c) for c in CHAPTERS)]
    documents += write_parquet(folder / "c_rows.parquet")
    documents += write_arrow_file(folder / "d_rows.arrow")
    (folder / "e_notes.md").write_text("# Notes\n\nA note in Markdown.\n")
    documents.append("# Notes\n\nA note in Markdown.")
    (folder / "f_broken.parquet").write_bytes(b"PAR1 and then nothing")

    with pytest.warns(DataWarning, match="skipped .*f_broken.parquet: not a readable Parquet"):
        # The Parquet and Arrow files hold the same rows and the note is short: cleaning
        # (tested in test_data_cleaning.py) is off so that every document comes through.
        everything = Cleaning(dedup=False, min_chars=0)
        data = prepare(
            str(folder), tmp_path / "data", "bpe:300", text_field="body", cleaning=everything
        )
    assert data.meta["train_documents"] + data.meta["val_documents"] == len(documents) == 49
    assert list(data.meta["skipped_files"]) == [str(folder / "f_broken.parquet")]
    tok = data.load_tokenizer()
    # Every 10th document (index 9, 19, ...) is validation; each ends with <|endoftext|>.
    train = "".join(d + EOT for i, d in enumerate(documents) if i % 10 != 9)
    val = "".join(d + EOT for i, d in enumerate(documents) if i % 10 == 9)
    assert tok.decode(data.tokens("train").tolist()) == train
    assert tok.decode(data.tokens("val").tolist()) == val


def test_prepare_command_with_a_text_field(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    from slm_cli.main import app

    monkeypatch.chdir(tmp_path)
    expected = write_parquet(tmp_path / "x.parquet", count=40)
    runner = CliRunner()
    args = ["prepare", "--data", "x.parquet", "--tokenizer", "bpe:300", "--out", "d"]
    result = runner.invoke(app, [*args, "--text-field", "body"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["train_documents"] + meta["val_documents"] == len(expected) == 38
    result = runner.invoke(app, [*args, "--out", "e"], catch_exceptions=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "has no column 'text'; its columns are id, body, lang" in lines[0]
    assert "--text-field" in lines[0]


def test_importing_slm_train_loads_no_document_library():
    """The document libraries load when a file of theirs is read, so `slm-cli --help` stays fast."""
    code = (
        "import sys, slm_train, slm_train.data.formats, slm_cli.main\n"
        "heavy = {'pyarrow', 'trafilatura', 'ebooklib', 'lxml', 'pypdf', 'datasets'}\n"
        "heavy = (heavy | {'datasketch'}) & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
