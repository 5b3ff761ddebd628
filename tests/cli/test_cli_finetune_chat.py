"""`slm-cli finetune chat` end to end: a tiny base run, a tiny file of conversations."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from helpers import TINY, WORDS
from slm_cli.main import app
from slm_tokenizer.chat import IM_END, IM_START
from slm_train import Run


def invoke(runner, *args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def base(workdir, runner) -> Path:
    result = invoke(runner, "train", *TINY, "--max-steps", "10", "--out", "runs/base")
    assert result.exit_code == 0, result.output
    rng = random.Random(0)
    lines = []
    for _ in range(40):
        words = " ".join(rng.choices(WORDS, k=3))
        turns = [("human", "Say it back."), ("gpt", "Ready."), ("human", words), ("gpt", words)]
        record = {"conversations": [{"from": who, "value": text} for who, text in turns]}
        lines.append(json.dumps(record))
    Path("chats.jsonl").write_text("\n".join(lines) + "\n")
    return workdir / "runs" / "base"


def test_finetune_chat_writes_a_chat_run_and_a_bad_line_is_one_red_line(base, runner):
    args = ["finetune", "chat", "--data", "chats.jsonl", "--run", base, "--out", "runs/chat"]
    args += ["--epochs", "2", "--max-new-tokens", "6", "--lr", "3e-3", "--precision", "fp32"]
    result = invoke(runner, *args)
    assert result.exit_code == 0, result.output
    output = result.output
    assert "chat (ChatML, multi-turn" in output and "0 cut by whole turns, 0 dropped" in output
    assert output.count("val loss") == 2 and output.count("  sample: '") == 2
    assert "Test set: masked loss" in output and "Some test replies" in output
    assert "slm-cli chat --run runs/chat" in output

    run = Run(base.parent / "chat")
    assert (run.config["kind"], run.config["prompt_format"]) == ("chat", "chatml")
    assert {IM_START, IM_END} <= set(run.tokenizer().special_tokens)
    losses = [r["loss"] for r in run.metrics() if r["type"] == "step"]
    assert losses and all(math.isfinite(loss) for loss in losses)

    # A bad line in the data is one red line, its file and line first.
    Path("bad.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    bad = invoke(runner, "finetune", "chat", "--data", "bad.jsonl", "--run", base)
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert bad.exit_code == 1 and len(lines) == 1, bad.output
    assert lines[0] == (
        "error: bad.jsonl:1: no assistant turn, so nothing to learn; add the reply or drop the line"
    )
