"""The CLI tests run in a temporary folder, so runs/ and data/ land there."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "and",
    "the",
    "dog",
    "ran",
    "to",
    "the",
    "park",
    "while",
    "birds",
    "sang",
    "in",
    "old",
    "trees",
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(0)
    documents = [
        " ".join(" ".join(rng.choice(WORDS) for _ in range(8)).capitalize() + "." for _ in range(8))
        for _ in range(80)
    ]
    (tmp_path / "corpus.txt").write_text("\n<|endoftext|>\n".join(documents) + "\n")
    return tmp_path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


TINY = [
    "--data",
    "corpus.txt",
    "--tokenizer",
    "bpe:300",
    "--preset",
    "tiny",
    "--model",
    "block_size=256",
    "--batch-size",
    "8",
    "--max-steps",
    "20",
    "--eval-interval",
    "10",
    "--precision",
    "fp32",
]
