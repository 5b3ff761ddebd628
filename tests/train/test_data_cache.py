"""The extracted-text cache: a slow format is parsed once per file version, and a damaged or
stale entry is never used."""

from __future__ import annotations

import os

import pytest
from slm_train.data.formats import html, read_file

PAGE = "<html><body><article><p>{}</p></article></body></html>"
TEXT = "A paragraph long enough for trafilatura to take it as the main text of the page."


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """Calls of the HTML reader's `read`, with the cache in a fresh folder."""
    pytest.importorskip("trafilatura")
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    original = html.read

    def read(path, text_field="text"):
        calls.append(path)
        return original(path, text_field)

    monkeypatch.setattr(html, "read", read)
    return calls


def test_a_page_is_parsed_once_and_again_when_it_changes(tmp_path, counted):
    page = tmp_path / "page.html"
    page.write_text(PAGE.format(TEXT))
    assert list(read_file(page)) == [TEXT] == list(read_file(page))
    assert len(counted) == 1

    page.write_text(PAGE.format(TEXT + " Edited."))
    os.utime(page, ns=(1, 1))  # a different modification time, whatever the clock's resolution
    assert list(read_file(page)) == [TEXT + " Edited."]
    assert len(counted) == 2


def test_a_damaged_entry_is_read_again_not_trusted(tmp_path, counted):
    page = tmp_path / "page.html"
    page.write_text(PAGE.format(TEXT))
    list(read_file(page))
    [entry] = (tmp_path / "cache" / "extracted").glob("*.json")
    for damage in ('{"not": "a list"}', "[1, 2]", '["cut sh'):
        entry.write_text(damage)
        assert list(read_file(page)) == [TEXT]
    assert len(counted) == 4
    assert not [p for p in entry.parent.iterdir() if p.name.startswith(".")]


def test_a_skipped_file_is_not_cached(tmp_path, counted):
    from slm_train.data.formats import SkippedFile

    page = tmp_path / "empty.html"
    page.write_text("<html><body><script>var x = 1;</script></body></html>")
    for _ in range(2):
        with pytest.raises(SkippedFile):
            list(read_file(page))
    assert len(counted) == 2
    assert not list((tmp_path / "cache" / "extracted").glob("*.json"))
