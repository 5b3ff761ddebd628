"""Text files are read in blocks and cut at `<|endoftext|>` lines: the same documents as by line."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slm_tokenizer import END_OF_TEXT
from slm_train import resolve
from slm_train.data.formats import text as text_format


def documents_by_line(content: str) -> list[str]:
    """The rule, read the slow way (as slm did before): line by line, as a file with newline=""."""
    documents, current = [], []
    for line in io.StringIO(content, newline=""):
        if line.strip() == END_OF_TEXT:
            documents.append("".join(current))
            current = []
        else:
            current.append(line)
    documents.append("".join(current))
    return [d.strip("\r\n") for d in documents if d.strip("\r\n").strip()]


PIECES = [END_OF_TEXT, "\n", "\r", "\r\n", " ", "\t", "\u2028", "\x0c", "word", "é", "<|end"]


@settings(max_examples=300, deadline=None)
@given(
    content=st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
    block=st.integers(min_value=1, max_value=40),
)
def test_blocks_of_any_size_give_the_documents_that_lines_give(
    tmp_path_factory, monkeypatch_module, content, block
):
    monkeypatch_module.setattr(text_format, "BLOCK_CHARS", block)
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_bytes(content.encode("utf-8"))
    assert list(resolve(str(path)).documents()) == documents_by_line(content)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
def test_documents_come_back_as_written(tmp_path, monkeypatch, block):
    monkeypatch.setattr(text_format, "BLOCK_CHARS", block)
    documents = [
        "def f():\r\n    return '<|endoftext|>'  # not a separator\r\n",
        "A story.\nIt ends here.",
        "x" * 300,
        "Windows\r\nand old Mac\rline ends",
    ]
    path = tmp_path / "corpus.txt"
    separators = ["\n<|endoftext|>\n", "\r\n  <|endoftext|>\t\r\n", "\r<|endoftext|>\r"]
    content = documents[0]
    for i, document in enumerate(documents[1:]):
        content += separators[i % len(separators)] + document
    path.write_bytes(content.encode("utf-8"))
    expected = [d.strip("\r\n") for d in documents]
    assert list(resolve(str(path)).documents()) == expected


def test_a_long_document_without_line_breaks(tmp_path, monkeypatch):
    monkeypatch.setattr(text_format, "BLOCK_CHARS", 16)
    path = tmp_path / "one-line.txt"
    path.write_text("a" * 1000 + "\n<|endoftext|>\n" + "b" * 999 + "\n<|endoftext|>", "utf-8")
    assert list(resolve(str(path)).documents()) == ["a" * 1000, "b" * 999]
