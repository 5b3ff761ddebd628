"""The engine under fine-tuning: accumulation, fp16 with a scaler, Ctrl-C + exact resume, DDP."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import WORDS, StopAt, quick_config, story
from slm_train import (
    ClassifyConfig,
    InstructConfig,
    TrainConfig,
    finetune_classifier,
    finetune_instructions,
    load_classifier,
    read_checkpoint,
    train,
)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("engine-base")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n<|endoftext|>\n".join(story(i) for i in range(60)))
    config = quick_config(folder, corpus, max_steps=10, model={"block_size": 160})
    return train(config).run_dir


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("engine-data")
    rng = random.Random(0)
    rows = []
    for i in range(48):
        words = [rng.choice(WORDS) for _ in range(5)] + (["goal"] if i % 2 else [])
        rows.append((" ".join(words), "sport" if i % 2 else "home"))
    with open(folder / "labels.csv", "w", newline="") as file:
        csv.writer(file).writerows([("text", "label"), *rows])
    records = [
        {"instruction": "Repeat the words.", "input": text, "output": text} for text, _ in rows
    ]
    (folder / "repeat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return {"classify": folder / "labels.csv", "instruct": folder / "repeat.jsonl"}


def make_config(kind: str, data_files, base_run, out: Path, **overrides):
    common = dict(base_run=str(base_run), out_dir=str(out), epochs=2, batch_size=8)
    common |= dict(learning_rate=1e-3, precision="fp32", log_interval=1)
    if kind == "classify":
        return ClassifyConfig(data=str(data_files["classify"]), train="all", **common | overrides)
    return InstructConfig(data=str(data_files["instruct"]), max_new_tokens=4, **common | overrides)


FINETUNE = {"classify": finetune_classifier, "instruct": finetune_instructions}


def step_losses(run_dir: Path) -> dict[int, float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if r["type"] == "step"}


def weights(run_dir: Path, which: str = "last") -> dict[str, torch.Tensor]:
    return read_checkpoint(run_dir / which).build_model().state_dict()


@pytest.mark.parametrize("kind", ["classify", "instruct"])
def test_ctrl_c_then_resume_repeats_the_uninterrupted_losses(tmp_path, base_run, data_files, kind):
    straight = tmp_path / "straight"
    FINETUNE[kind](make_config(kind, data_files, base_run, straight))

    config = make_config(kind, data_files, base_run, tmp_path / "stopped")
    stopped = FINETUNE[kind](config, reporter=StopAt(3))
    assert stopped.interrupted
    assert read_checkpoint(tmp_path / "stopped" / "last").state["step"] == 3
    FINETUNE[kind](config, resume=True)

    expected, got = step_losses(straight), step_losses(tmp_path / "stopped")
    assert sorted(got) == sorted(expected) == list(range(1, 11))  # 2 epochs of 5 steps
    assert got == expected
    if kind == "classify":
        a = load_classifier(straight, "last")[0].state_dict()
        b = load_classifier(tmp_path / "stopped", "last")[0].state_dict()
    else:
        a, b = weights(straight), weights(tmp_path / "stopped")
    assert all(torch.equal(a[name], b[name]) for name in a)


@pytest.mark.parametrize("kind", ["classify", "instruct"])
def test_gradient_accumulation_equals_the_larger_batch(tmp_path, base_run, data_files, kind):
    whole = make_config(kind, data_files, base_run, tmp_path / "whole", batch_size=8)
    halves = make_config(
        kind, data_files, base_run, tmp_path / "halves", batch_size=4, grad_accum_steps=2
    )
    FINETUNE[kind](whole)
    FINETUNE[kind](halves)
    losses_whole, losses_halves = step_losses(tmp_path / "whole"), step_losses(tmp_path / "halves")
    assert sorted(losses_whole) == sorted(losses_halves) == list(range(1, 11))
    if kind == "classify":  # one mean over 8 examples == the mean of two means over 4
        for step, loss in losses_whole.items():
            assert losses_halves[step] == pytest.approx(loss, rel=1e-4, abs=1e-5)


def test_fp16_uses_the_gradient_scaler(tmp_path, base_run, data_files):
    config = make_config("classify", data_files, base_run, tmp_path / "fp16", precision="fp16")
    result = finetune_classifier(config)
    saved = read_checkpoint(result.run_dir / "last").optimizer_state()
    assert saved["scaler"]["scale"] > 0  # an enabled scaler saves its scale; a disabled one {}
    fp32 = make_config("classify", data_files, base_run, tmp_path / "fp32")
    assert (
        read_checkpoint(finetune_classifier(fp32).run_dir / "last").optimizer_state()["scaler"]
        == {}
    )


def test_lora_last_checkpoint_resumes_and_loads_merged(tmp_path, base_run, data_files):
    config = make_config(
        "instruct", data_files, base_run, tmp_path / "lora", lora_rank=2, learning_rate=1e-2
    )
    stopped = finetune_instructions(config, reporter=StopAt(4))
    assert stopped.interrupted
    checkpoint = read_checkpoint(tmp_path / "lora" / "last")
    assert checkpoint.lora_scale == 1.0  # adapters kept unmerged, for exact resume
    finetune_instructions(config, resume=True)
    last, best = weights(tmp_path / "lora", "last"), weights(tmp_path / "lora", "best")
    assert set(last) == set(best)  # last/ loads into a plain model: adapters merged on load
    assert not any("lora" in name for name in last)


DDP_SCRIPT = """
import json, sys
from slm_train import ClassifyConfig, InstructConfig, finetune_classifier, finetune_instructions
kind, values = sys.argv[1], json.loads(sys.argv[2])
if kind == "classify":
    finetune_classifier(ClassifyConfig(**values))
else:
    finetune_instructions(InstructConfig(**values))
"""


@pytest.mark.parametrize("kind", ["classify", "instruct"])
def test_two_processes_equal_one_process_with_accumulation(tmp_path, base_run, data_files, kind):
    single = make_config(
        kind, data_files, base_run, tmp_path / "one", batch_size=4, grad_accum_steps=2
    )
    FINETUNE[kind](single)
    double = make_config(kind, data_files, base_run, tmp_path / "two", batch_size=4)
    script = tmp_path / "ddp_finetune.py"
    script.write_text(DDP_SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(script), kind, json.dumps(double.to_dict())]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr[:3000] + completed.stderr[-3000:]
    one, two = step_losses(tmp_path / "one"), step_losses(tmp_path / "two")
    assert sorted(one) == sorted(two) == list(range(1, 11))  # rank 0 alone logged
    for step, loss in one.items():
        assert two[step] == pytest.approx(loss, rel=1e-4, abs=1e-5), step
    if kind == "instruct":
        a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
        for name in a:
            torch.testing.assert_close(b[name], a[name], atol=2e-5, rtol=1e-4, msg=name)


def test_every_learning_rate_is_reachable():
    """--lr below the old fixed min_lr used to be refused; min_lr now follows the peak."""
    config = TrainConfig(learning_rate=5e-5)
    assert config.final_lr == pytest.approx(5e-6)
    assert TrainConfig(learning_rate=5e-5, min_lr=0.0).final_lr == 0.0
