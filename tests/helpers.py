"""Helpers the tests share (plain code; the fixtures live in the conftest.py files).

Everything here is made by the tests themselves: simple repetitive English, tiny
training configurations (the fake Hugging Face hub is in fakehub.py).
"""

from __future__ import annotations

import random
from pathlib import Path

from slm_train import Reporter, TrainConfig

WORDS = "the cat sat on a mat and the dog ran to the park while birds sang in old trees".split()  # noqa: SIM905


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def story(seed: int, sentences: int = 6) -> str:
    """A short document (deterministic for a seed)."""
    rng = random.Random(seed)
    return " ".join(sentence(rng, rng.randint(4, 9)) for _ in range(sentences))


class StopAt(Reporter):
    """Presses Ctrl-C after a given step (as a person would, to test what a stop saves)."""

    def __init__(self, step: int) -> None:
        self.stop = step

    def step(self, record):
        if record["step"] == self.stop:
            raise KeyboardInterrupt


def quick_config(tmp_path: Path, data: Path | str, **overrides) -> TrainConfig:
    """A tiny model and a short budget: seconds on a CPU.

    The recipe is pinned to AdamW + cosine, which these tests were written
    for; tests of Muon and WSD ask for them (the CLI tests use the defaults).
    """
    values = dict(
        optimizer="adamw",
        schedule="cosine",
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
        precision="fp32",
    )
    values.update(overrides)
    return TrainConfig(**values)


# Command-line options for a tiny training run (tests/cli).
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


def checkpoint_writer(run: Path, step: int, events) -> None:
    """Save `last/` checkpoints in a loop, every weight equal to the step (the fault tests)."""
    import torch
    from slm_model import GPTModel, get_gpt_config
    from slm_train.checkpoint import save_training

    torch.set_num_threads(1)
    model = GPTModel(get_gpt_config("tiny", block_size=16))
    optimizer = torch.optim.AdamW(model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    events.put("ready")
    while True:
        step += 1
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(float(step))
        save_training(run / "last", model, {"step": step}, optimizer, scaler)
        events.put("saved")


def lock_holder(folder: Path, events) -> None:
    """Hold a run's writer lock until killed (the fault tests)."""
    import time

    from slm_train.lock import RunLock

    with RunLock(folder):
        events.put("locked")
        while True:
            time.sleep(60)
