"""Fixtures for the training tests: a small corpus and a fake Hugging Face hub on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakehub import fake_hub  # noqa: F401  (a fixture)
from helpers import story


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    """60 documents separated by <|endoftext|> lines."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n<|endoftext|>\n".join(story(i) for i in range(60)) + "\n", encoding="utf-8")
    return path
