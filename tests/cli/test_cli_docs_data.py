"""docs/data.md's commands, run as written, in a folder holding the files they name.

The page shows `slm-cli prepare` on papers (PDF), a web site (HTML), books
(EPUB), Parquet shards, notes and two hub datasets: this test makes each of
those (the datasets on the fake hub of fakehub.py), runs every command of the
page in turn and checks what it wrote: so an option renamed, a format broken
or an example that no longer works fails here, not in a reader's terminal.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path

import pytest
from fakehub import fake_hub  # noqa: F401  (a fixture)
from helpers import story
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "data.md"

pytest.importorskip("pypdf")
pytest.importorskip("fpdf")
pytest.importorskip("ebooklib")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("datasets")

STORIES = [story(seed, sentences=8) for seed in range(60)]
VALIDATION = [story(seed, sentences=8) for seed in range(100, 105)]


def page_commands() -> list[list[str]]:
    """The page's `uv run slm-cli ...` lines, as argument lists without `uv run slm-cli`."""
    text = PAGE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = re.findall(r"^uv run slm-cli (.+)$", text, re.MULTILINE)
    return [shlex.split(line.split(" #")[0]) for line in lines]


def write_pdf(path: Path, paragraphs: list[str]) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    for paragraph in paragraphs:
        pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    pdf.output(str(path))


def write_epub(path: Path, chapters: list[str]) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("docs-data")
    book.set_title("A book")
    book.set_language("en")
    items = []
    for number, text in enumerate(chapters, start=1):
        item = epub.EpubHtml(title=f"Chapter {number}", file_name=f"c{number}.xhtml")
        item.content = f"<html><body><h1>Chapter {number}</h1><p>{text}</p></body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    epub.write_epub(str(path), book)


def parquet(texts: list[str], column: str = "text") -> bytes:
    buffer = io.BytesIO()
    table = pa.table({"id": list(range(len(texts))), column: texts, "url": ["x"] * len(texts)})
    pq.write_table(table, buffer)
    return buffer.getvalue()


def make_files(folder: Path) -> None:
    """papers/, site/, books/, shards/ and notes/, as the page's commands expect them."""
    (folder / "papers").mkdir()
    for number in range(3):
        write_pdf(folder / "papers" / f"paper{number}.pdf", STORIES[number * 20 : number * 20 + 20])
    (folder / "site").mkdir()
    for number in range(3):
        body = "".join(f"<p>{text}</p>" for text in STORIES[number * 10 : number * 10 + 10])
        nav = "<nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>"
        (folder / "site" / f"page{number}.html").write_text(
            f"<html><body>{nav}<article>{body}</article></body></html>"
        )
    (folder / "books").mkdir()
    write_epub(folder / "books" / "book.epub", STORIES[:30])
    (folder / "shards").mkdir()
    (folder / "shards" / "part-0.parquet").write_bytes(parquet(STORIES, column="content"))
    (folder / "notes").mkdir()
    for number, text in enumerate(STORIES[:40]):
        (folder / "notes" / f"note{number}.md").write_text(f"# Note {number}\n\n{text}\n")
    (folder / "notes" / "again.md").write_text("# Note 0\n\n" + STORIES[0] + "\n")


def hub_datasets(hub) -> None:
    """The two datasets the page names, small, on the fake hub."""
    hub.add_dataset(
        "roneneldan/TinyStories",
        {
            "data/train-00000-of-00001.parquet": parquet(STORIES),
            "data/validation-00000-of-00001.parquet": parquet(VALIDATION),
        },
    )
    card = "---\nconfigs:\n- config_name: sample-10BT\n  data_files:\n  - split: train\n"
    card += "    path: sample/10BT/*.parquet\n---\n"
    hub.add_dataset(
        "HuggingFaceFW/fineweb-edu",
        {"README.md": card, "sample/10BT/000_00000.parquet": parquet(STORIES * 3)},
    )


@pytest.fixture
def workdir(tmp_path, monkeypatch, fake_hub):  # noqa: F811  (the fixture imported above)
    make_files(tmp_path)
    hub_datasets(fake_hub)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert fake_hub.unhandled == []


def run_command(args: list[str]) -> str:
    from slm_cli.main import app

    if args[0] == "train":  # the page's training runs take minutes: here, a few tiny steps
        args = [*args, "--preset", "qwen3-tiny", "--max-steps", "2", "--eval-interval", "2"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, f"slm-cli {shlex.join(args)}\n{result.output}"
    assert "Traceback" not in result.output
    return result.output


def test_the_data_page_commands_run_as_written(workdir):
    commands = page_commands()
    assert len(commands) >= 8, "the page lost its examples"
    for args in commands:
        output = run_command(args)
        out = Path(args[args.index("--out") + 1])
        if args[0] == "prepare":
            meta = json.loads((out / "meta.json").read_text())
            assert meta["train_documents"] > 0 and meta["val_documents"] > 0, output
            assert "cleaning kept" in output
        else:
            assert (out / "config.json").is_file()
    notes = json.loads((workdir / "data" / "notes" / "meta.json").read_text())["cleaning"]
    assert notes["duplicates"]["documents"] == 1  # again.md repeats note0.md
    fineweb = json.loads((workdir / "data" / "fineweb" / "meta.json").read_text())
    assert fineweb["train_documents"] + fineweb["val_documents"] == 60  # 180 rows, 120 repeats
