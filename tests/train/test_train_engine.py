"""The engine under fine-tuning: accumulation (a mean over targets, not micro-batches), fp16 with
a scaler, Ctrl-C + exact resume, DDP."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import WORDS, StopAt, quick_config, story
from slm_model import GPTModel, get_gpt_config
from slm_tokenizer import BPETokenizer
from slm_train import (
    ClassifyConfig,
    InstructConfig,
    LoopConfig,
    Reporter,
    TrainConfig,
    accumulate_gradients,
    finetune_classifier,
    finetune_instructions,
    load_classifier,
    read_checkpoint,
    train,
)
from slm_train.engine import Task, Trainer
from slm_train.finetune.instruct import InstructTask


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


def last_weights(kind: str, run_dir: Path) -> dict[str, torch.Tensor]:
    if kind == "classify":
        return load_classifier(run_dir, "last")[0].state_dict()
    return weights(run_dir)


def assert_same_training(one: Path, two: Path, kind: str) -> None:
    """The same losses at every step (2 epochs of 5 steps), and the same weights at the end."""
    losses_one, losses_two = step_losses(one), step_losses(two)
    assert sorted(losses_one) == sorted(losses_two) == list(range(1, 11))
    for step, loss in losses_one.items():
        assert losses_two[step] == pytest.approx(loss, rel=1e-4, abs=1e-5), step
    a, b = last_weights(kind, one), last_weights(kind, two)
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=2e-5, rtol=1e-4, msg=name)


# The instruct runs mask the prompts: micro-batches then hold unequal numbers of targets.
MASKED = {"classify": {}, "instruct": {"mask_prompt": True}}


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
    a, b = last_weights(kind, straight), last_weights(kind, tmp_path / "stopped")
    assert all(torch.equal(a[name], b[name]) for name in a)


@pytest.mark.parametrize("kind", ["classify", "instruct"])
def test_gradient_accumulation_equals_the_larger_batch(tmp_path, base_run, data_files, kind):
    masked = MASKED[kind]
    whole = make_config(kind, data_files, base_run, tmp_path / "whole", batch_size=8, **masked)
    halves = make_config(
        kind, data_files, base_run, tmp_path / "halves", batch_size=4, grad_accum_steps=2, **masked
    )
    FINETUNE[kind](whole)
    FINETUNE[kind](halves)
    assert_same_training(tmp_path / "whole", tmp_path / "halves", kind)


@pytest.fixture(scope="module")
def masked_task() -> InstructTask:
    """Instructions whose responses are 1, 2, 12 and 15 words long, prompts masked."""
    tokenizer = BPETokenizer.train(" ".join(WORDS) * 20, 280, ["<|endoftext|>"], workers=1)
    records = [
        {"instruction": "Say the first words.", "output": " ".join(WORDS[:n])}
        for n in (1, 2, 12, 15)
    ]
    config = InstructConfig(data="unused.jsonl", base_run="unused", batch_size=2, mask_prompt=True)
    return InstructTask(tokenizer, (records, [], []), 256, config, 2)


def by_hand_loss(model, task: InstructTask) -> torch.Tensor:
    """The loss of all four examples as one batch: summed over response tokens, divided by hand."""
    inputs, targets = task.collate(task.encoded)
    logits = model(inputs).flatten(0, 1)
    summed = F.cross_entropy(logits, targets.flatten(), ignore_index=-100, reduction="sum")
    responses = sum(len(ids) - prompt for ids, prompt in task.encoded)  # with <|endoftext|>
    return summed / responses


def gradients_and_loss(model, batches, task) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """accumulate_gradients' gradients and loss, leaving the model's gradients at zero."""
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loss = accumulate_gradients(model, batches, task, scaler, torch.device("cpu"), "fp32")
    gradients = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    return gradients, loss


def assert_gradients(model, expected: dict[str, torch.Tensor]) -> None:
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(expected[name], parameter.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_accumulation_weighs_every_target_alike_across_micro_batches(masked_task):
    torch.manual_seed(0)
    model, task = GPTModel(get_gpt_config("tiny", block_size=256)), masked_task
    short, long = task.collate(task.encoded[:2]), task.collate(task.encoded[2:])
    assert task.count_targets(short) * 3 < task.count_targets(long)  # very unequal micro-batches
    gradients, loss = gradients_and_loss(model, [short, long], task)
    reference = by_hand_loss(model, task)
    reference.backward()
    assert_gradients(model, gradients)
    torch.testing.assert_close(loss, reference.detach())


def test_a_micro_batch_without_targets_weighs_nothing(masked_task):
    torch.manual_seed(0)
    model, task = GPTModel(get_gpt_config("tiny", block_size=256)), masked_task
    inputs, targets = task.collate(task.encoded[:2])
    empty = (inputs, torch.full_like(targets, -100))  # say, a conversation cut before its reply
    other = task.collate(task.encoded[2:])
    gradients, loss = gradients_and_loss(model, [empty, other], task)
    reference = model(*other)[1]  # the other micro-batch's mean, alone
    reference.backward()
    assert_gradients(model, gradients)
    torch.testing.assert_close(loss, reference.detach())


def test_fp16_with_the_scaler_follows_fp32(tmp_path, base_run, data_files):
    """fp16 really runs in fp16, takes every step of a healthy run, and stays near fp32."""
    # Read at the last token: the tolerance below was measured there (at an appended
    # end-of-text, this tiny run at lr 1e-3 amplifies rounding to 1.7 % by step 4).
    pinned = dict(read_at="last")
    fp16 = make_config(
        "classify", data_files, base_run, tmp_path / "fp16", precision="fp16", **pinned
    )
    fp32 = make_config("classify", data_files, base_run, tmp_path / "fp32", **pinned)
    half, full = finetune_classifier(fp16).run_dir, finetune_classifier(fp32).run_dir
    losses_half, losses_full = step_losses(half), step_losses(full)
    assert sorted(losses_half) == sorted(losses_full) == list(range(1, 11))
    assert losses_half != losses_full  # matmuls in fp16: not bit-identical to fp32
    # fp16 rounds to 11 significant bits (relative 5e-4); 3e-4 measured over 10 steps.
    for step, loss in losses_full.items():
        assert losses_half[step] == pytest.approx(loss, rel=3e-3), step
    scaler = read_checkpoint(half / "last").optimizer_state()["scaler"]
    assert scaler["scale"] == 2.0**16 and scaler["_growth_tracker"] == 10  # no step skipped
    assert read_checkpoint(full / "last").optimizer_state()["scaler"] == {}  # fp32: none


class OverflowAt(Task):
    """Next-token prediction on random tokens whose gradient overflows at one step.

    At that step the loss gains w * 1e38 - (w * 1e38), for one weight w: the loss stays
    finite, but its gradient, 1e38 times the scaler's 65536, is inf in float32, as an
    fp16 overflow would make it.
    """

    def __init__(self, vocab_size: int, overflow_step: int) -> None:
        self.vocab_size, self.overflow_step = vocab_size, overflow_step

    def batch(self, step: int, index: int):
        ids = torch.randint(self.vocab_size, (4, 9), generator=torch.Generator().manual_seed(step))
        return ids[:, :-1], ids[:, 1:], torch.tensor(step == self.overflow_step)

    def loss(self, model, batch):
        x, y, overflow = batch
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1).float(), y.flatten())
        if overflow:
            spike = model.tok_emb.weight[0, 0] * 1e38
            loss = loss + (spike - spike.detach())
        return loss

    def evaluate(self, model, step):
        return {"train_loss": 0.0, "val_loss": 0.0}, None


class Snapshots(Reporter):
    """The model's weights after every step."""

    def __init__(self, model) -> None:
        self.model, self.after = model, {}

    def step(self, record) -> None:
        self.after[record["step"]] = [p.detach().clone() for p in self.model.parameters()]

    def moved(self, step: int) -> bool:
        before, after = self.after[step - 1], self.after[step]
        return not all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_fp16_skips_a_step_whose_gradients_overflow_and_halves_the_scale(tmp_path, optimizer):
    torch.manual_seed(0)
    model = GPTModel(get_gpt_config("tiny", block_size=8, vocab_size=64))
    config = LoopConfig(
        optimizer=optimizer, max_steps=5, warmup_steps=0, eval_interval=5, log_interval=1
    )
    snapshots = Snapshots(model)
    trainer = Trainer(
        model, OverflowAt(64, overflow_step=2), config, tmp_path, device=torch.device("cpu"),
        precision="fp16", reporter=snapshots,
    )  # fmt: skip
    trainer.fit()
    # The logged steps count from 1: the batch of step index 2 is logged as step 3.
    moved = {step: snapshots.moved(step) for step in (2, 3, 4)}
    assert moved == {2: True, 3: False, 4: True}  # step 3 was skipped, and training went on
    assert trainer.scaler.get_scale() == 2.0**15  # backed off once from 2**16
    adamw = trainer.optimizer.optimizers["adamw"]
    assert {int(state["step"]) for state in adamw.state.values()} == {4}  # 5 steps, 1 skipped


def test_lora_resume_equals_the_uninterrupted_run_and_loads_merged(tmp_path, base_run, data_files):
    lora = dict(lora_rank=2, learning_rate=1e-2)
    straight = tmp_path / "straight"
    finetune_instructions(make_config("instruct", data_files, base_run, straight, **lora))
    config = make_config("instruct", data_files, base_run, tmp_path / "lora", **lora)
    stopped = finetune_instructions(config, reporter=StopAt(4))
    assert stopped.interrupted
    checkpoint = read_checkpoint(tmp_path / "lora" / "last")
    assert checkpoint.lora_scale == 1.0  # adapters kept unmerged, for exact resume
    finetune_instructions(config, resume=True)

    assert step_losses(tmp_path / "lora") == step_losses(straight)  # steps 1-10, all equal
    last, best = weights(tmp_path / "lora", "last"), weights(tmp_path / "lora", "best")
    assert set(last) == set(best)  # last/ loads into a plain model: adapters merged on load
    assert not any("lora" in name for name in last)
    for which, resumed in (("last", last), ("best", best)):
        uninterrupted = weights(straight, which)
        assert all(torch.equal(resumed[name], uninterrupted[name]) for name in resumed), which


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
def test_two_processes_equal_one_process_with_the_whole_batch(tmp_path, base_run, data_files, kind):
    """Each process trains on a micro-batch of 4; together they learn what one batch of 8 does."""
    masked = MASKED[kind]
    FINETUNE[kind](make_config(kind, data_files, base_run, tmp_path / "one", **masked))
    double = make_config(kind, data_files, base_run, tmp_path / "two", batch_size=4, **masked)
    script = tmp_path / "ddp_finetune.py"
    script.write_text(DDP_SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(script), kind, json.dumps(double.to_dict())]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr[:3000] + completed.stderr[-3000:]
    assert_same_training(tmp_path / "one", tmp_path / "two", kind)  # rank 0 alone logged


def test_every_learning_rate_is_reachable():
    """--lr below the old fixed min_lr used to be refused; min_lr now follows the peak."""
    config = TrainConfig(learning_rate=5e-5)
    assert config.final_lr == pytest.approx(5e-6)
    assert TrainConfig(learning_rate=5e-5, min_lr=0.0).final_lr == 0.0
