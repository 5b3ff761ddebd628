"""The modern family end to end: a Llama-style model trained with Muon and WSD, then used."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import TINY
from slm_cli.main import app
from slm_train import read_checkpoint


def invoke(runner, *args, input=None):
    result = runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_llama_tiny_trains_generates_chats_and_fine_tunes(workdir, runner):
    # TINY with the modern preset, fewer steps and one evaluation: this test is about plumbing.
    args = [{"tiny": "llama-tiny", "20": "8", "10": "8"}.get(a, a) for a in TINY]
    invoke(runner, "train", *args, "--optimizer", "muon", "--schedule", "wsd", "--out", "runs/l")
    checkpoint = read_checkpoint("runs/l/last")
    assert checkpoint.config.pos == "rope" and checkpoint.config.n_kv_head == 2
    assert sorted(checkpoint.optimizer_state()["optimizer"]) == ["adamw", "muon"]

    generated = invoke(runner, "generate", "The cat", "--max-new-tokens", "8", "--seed", "1")
    assert generated.startswith("The cat") and len(generated.strip()) > len("The cat")
    assert invoke(runner, "chat", "--seed", "0", input="The dog\n/quit\n").count("model> ") == 1

    rows = [
        ("the dog ran" + (" goal" if i % 2 else ""), "sport" if i % 2 else "home")
        for i in range(40)
    ]
    Path("sport.csv").write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    common = ["--run", "runs/l", "--epochs", "1", "--batch-size", "8"]
    classified = invoke(
        runner, "finetune", "classify", "--data", "sport.csv", *common, "--out", "runs/c",
        "--lora-rank", "4",
    )  # fmt: skip
    assert "Test set: accuracy" in classified
    assert invoke(runner, "classify", "a goal", "--run", "runs/c").split()[0] in ("sport", "home")

    records = [
        {"instruction": "Repeat the word.", "input": w, "output": w} for w in ["cat", "dog"] * 10
    ]
    Path("repeat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    instructed = invoke(
        runner, "finetune", "instruct", "--data", "repeat.jsonl", *common, "--out", "runs/i",
        "--max-new-tokens", "4",
    )  # fmt: skip
    assert "exact match" in instructed
    answer = invoke(
        runner, "generate", "Repeat the word.", "--run", "runs/i", "--max-new-tokens", "4"
    )
    assert "### Instruction" not in answer
