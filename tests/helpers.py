"""Helpers the tests share (plain code; the fixtures live in the conftest.py files).

Everything here is made by the tests themselves: simple repetitive English, tiny
training configurations, and a web server on loopback that can misbehave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
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


# ------------------------------------------------ a web server on loopback
@dataclass
class FakeServer:
    """What the handler serves and how it misbehaves, plus a log of what it saw."""

    base_url: str
    files: dict[str, bytes] = field(default_factory=dict)
    ignore_ranges: bool = False
    break_after: int | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url + path


class ServerHandler(BaseHTTPRequestHandler):
    state: FakeServer  # set on a per-fixture subclass

    def do_GET(self) -> None:
        state = self.state
        range_header = self.headers.get("Range")
        state.requests.append((self.path, range_header))
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return

        start = 0
        if range_header is not None and not state.ignore_ranges:
            start = int(range_header.removeprefix("bytes=").removesuffix("-"))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if state.break_after is not None:
            # Promise the whole body, deliver only part of it, then hang up.
            self.wfile.write(payload[: state.break_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


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
