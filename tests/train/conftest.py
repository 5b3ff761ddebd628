"""Shared fixtures: small corpora the tests write themselves, and a quiet training config."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from slm_train import TrainConfig

WORDS = "the cat sat on a mat and the dog ran to the park while birds sang in old trees".split()


def story(seed: int, sentences: int = 6) -> str:
    """A short document of simple, repetitive English (deterministic for a seed)."""
    rng = random.Random(seed)
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))).capitalize() + "."
        for _ in range(sentences)
    )


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    """60 documents separated by <|endoftext|> lines."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n<|endoftext|>\n".join(story(i) for i in range(60)) + "\n", encoding="utf-8")
    return path


def quick_config(tmp_path: Path, data: Path | str, **overrides) -> TrainConfig:
    """A tiny model and a short budget: seconds on a CPU."""
    values = dict(
        data=str(data),
        tokenizer="bpe:300",
        data_dir=str(tmp_path / "data"),
        out_dir=str(tmp_path / "run"),
        preset="tiny",
        model={"block_size": 32},
        batch_size=8,
        max_steps=30,
        warmup_steps=5,
        eval_interval=10,
        eval_batches=2,
        log_interval=1,
        sample_tokens=8,
        learning_rate=3e-3,
    )
    values.update(overrides)
    return TrainConfig(**values)
