"""The CLI tests run in a temporary folder, so runs/ and data/ land there."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from helpers import sentence
from typer.testing import CliRunner


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(0)
    documents = [" ".join(sentence(rng, 8) for _ in range(8)) for _ in range(80)]
    (tmp_path / "corpus.txt").write_text("\n<|endoftext|>\n".join(documents) + "\n")
    return tmp_path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
