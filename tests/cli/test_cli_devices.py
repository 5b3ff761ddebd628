"""`--devices N`: slm starts the processes itself, and the README's torchrun lines work as typed.

Two processes (gloo on the CPU) must train exactly like one process with twice
the accumulation, report through the command's own reporter, fail with one
red line, and stop together on Ctrl-C. The tests wait on events (files,
process exit), each subprocess with a generous safety timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import WORDS
from safetensors.torch import load_file
from slm_cli.main import app
from slm_train import read_checkpoint
from torch.distributed.run import parse_args as torchrun_args

ROOT = Path(__file__).resolve().parents[2]
SAFETY = 600  # seconds: a net for a hang, never a wait for an event

TINY = ["--data", "corpus.txt", "--tokenizer", "bpe:300", "--preset", "tiny"]
TINY += ["--model", "block_size=32", "--batch-size", "4", "--eval-interval", "3"]
TINY += ["--precision", "fp32", "--optimizer", "adamw", "--schedule", "cosine"]
TINY += ["--warmup-steps", "2", "--log-interval", "1", "--sample-tokens", "0"]
CLASSIFY = ["--data", "spam.csv", "--run", "runs/base", "--train", "all", "--epochs", "1"]
CLASSIFY += ["--batch-size", "4", "--lr", "1e-3", "--precision", "fp32", "--log-interval", "1"]


def invoke(runner, *args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def slm_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "slm_cli", *args]


def step_losses(run: Path) -> dict[int, float]:
    records = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    return {r["step"]: r["loss"] for r in records if r["type"] == "step"}


def assert_same_training(one: Path, two: Path, steps: int) -> None:
    """Rank 0 alone logged every step, with the losses and weights of one process."""
    a, b = step_losses(one), step_losses(two)
    assert sorted(a) == sorted(b) == list(range(1, steps + 1))
    for step, loss in a.items():
        assert b[step] == pytest.approx(loss, rel=1e-4, abs=1e-5), step
    p, q = (load_file(run / "last" / "model.safetensors") for run in (one, two))
    for name in p:
        torch.testing.assert_close(q[name], p[name], atol=2e-5, rtol=1e-4, msg=name)


@pytest.fixture
def base(workdir, runner) -> Path:
    """A tiny pre-trained run in runs/base, and a labelled CSV beside it."""
    result = invoke(runner, "train", *TINY, "--max-steps", "2", "--out", "runs/base")
    assert result.exit_code == 0, result.output
    rng = random.Random(1)
    rows = [
        " ".join(rng.choices(WORDS, k=5)) + (" goal,sport" if i % 2 else ",home") for i in range(40)
    ]
    Path("spam.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    return workdir / "runs" / "base"


def test_train_on_two_devices_equals_one_process_with_accumulation(workdir, runner):
    one = invoke(
        runner, "train", *TINY, "--max-steps", "6", "--grad-accum", "2", "--out", "runs/one"
    )
    assert one.exit_code == 0, one.output
    two = invoke(runner, "train", *TINY, "--max-steps", "6", "--devices", "2", "--out", "runs/two")
    assert two.exit_code == 0, two.output
    # Rank 0's events reached this process's reporter: the table, evaluations, the summary.
    assert "x 2 processes" in two.output and "Evaluation at step 6" in two.output
    assert "Training finished" in two.output
    assert_same_training(workdir / "runs" / "one", workdir / "runs" / "two", 6)
    saved = json.loads((workdir / "runs" / "two" / "config.json").read_text())
    assert saved["train"]["devices"] == 2  # the run records its global batch


def test_finetune_classify_on_two_devices_equals_accumulation(base, runner):
    one = invoke(runner, "finetune", "classify", *CLASSIFY, "--grad-accum", "2", "--out", "runs/c1")
    assert one.exit_code == 0, one.output
    two = invoke(runner, "finetune", "classify", *CLASSIFY, "--devices", "2", "--out", "runs/c2")
    assert two.exit_code == 0, two.output
    accuracy = re.compile(r"Test set: accuracy [\d.]+%")
    assert accuracy.search(two.output).group() == accuracy.search(one.output).group()
    steps = len(step_losses(base.parent / "c1"))
    assert_same_training(base.parent / "c1", base.parent / "c2", steps)


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ("0", "devices must be a positive integer, got 0"),
        ("4096", "asks for 4096 processes, but this machine has"),  # GPUs, or CPU cores
    ],
)
def test_out_of_range_devices_are_refused_before_starting(workdir, runner, devices, message):
    result = invoke(
        runner, "finetune", "classify", "--data", "x.csv", "--run", "r", "--devices", devices
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and message in lines[0], lines
    assert re.search(r"must be a positive integer|use --devices \d+ or fewer", lines[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "missing.txt"], "missing.txt"),  # rank 0 fails while rank 1 waits for it
        (["--model", "vocab_size=100"], "vocab_size 100 is smaller"),  # a ConfigError in both
    ],
)
def test_a_worker_error_is_one_red_line(workdir, runner, args, message):
    prepared = invoke(runner, "prepare", "--data", "corpus.txt", "--tokenizer", "bpe:300")
    assert prepared.exit_code == 0, prepared.output  # no news of preparing in the output
    completed = subprocess.run(
        slm_cli("train", *TINY, "--max-steps", "2", "--devices", "2", *args),
        capture_output=True,
        text=True,
        timeout=SAFETY,
        check=False,
    )
    lines = [line for line in (completed.stdout + completed.stderr).splitlines() if line.strip()]
    assert completed.returncode == 1, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_a_worker_error_names_the_command_line_flags(base):
    """An error raised inside a training process names the fix as the command line spells
    it (--resume, --force, --out), not as Python does (resume=True), like a one-process run."""
    completed = subprocess.run(
        slm_cli("train", *TINY, "--max-steps", "2", "--devices", "2", "--out", "runs/base"),
        capture_output=True,
        text=True,
        timeout=SAFETY,
        check=False,
    )
    lines = [line for line in (completed.stdout + completed.stderr).splitlines() if line.strip()]
    assert completed.returncode == 1 and len(lines) == 1, lines
    assert re.search(r"already holds a run; pass --resume .* --force .* another --out$", lines[0])


@pytest.mark.parametrize("whom", ["process group", "parent alone"])
def test_ctrl_c_stops_every_process_and_saves_once(workdir, whom):
    """A terminal's Ctrl-C reaches the whole foreground group; `kill -INT` the parent alone."""
    process = subprocess.Popen(
        slm_cli("train", *TINY, "--max-steps", "100000", "--devices", "2", "--out", "runs/stop"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own process group, like a terminal's foreground job; SIGINT not ignored.
        preexec_fn=lambda: (os.setpgrp(), signal.signal(signal.SIGINT, signal.SIG_DFL)),
    )
    metrics = workdir / "runs" / "stop" / "metrics.jsonl"
    deadline = time.monotonic() + 2 * SAFETY
    # Wait for an event (three steps logged), not for a time: a loaded machine is only slower.
    while process.poll() is None and time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[0]  # still training
    if whom == "process group":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=SAFETY)
    assert process.returncode == 130, output
    assert output.count("interrupted at step") == 1 and "--resume" in output, output
    assert "Traceback" not in output and "error" not in output.lower(), output
    saved = int(re.search(r"interrupted at step (\d+)", output).group(1))
    assert read_checkpoint(workdir / "runs" / "stop" / "last").state["step"] == saved >= 3
    assert not any(p.name.startswith(".") for p in (workdir / "runs" / "stop").iterdir())
    # No worker outlived the command (multiprocessing's resource tracker leaves just after it).
    while live_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not live_members(process.pid)


def live_members(group: int) -> list[int]:
    """The processes of a process group that still run (a zombie only waits for init)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == group and state != "Z":
                members.append(int(stat.parent.name))
    return members


def readme_torchrun_lines() -> list[str]:
    texts = [
        (ROOT / "README.md").read_text(),
        (ROOT / "packages/slm-cli/src/slm_cli/main.py").read_text(),
    ]
    texts += [path.read_text() for path in ROOT.glob("packages/*/README.md")]
    lines = [line for text in texts for line in text.splitlines()]
    found = [re.search(r"torchrun [^`#\"]*-m slm_cli[^`#\"]*", line) for line in lines]
    return [m.group().strip() for m in found if m]


def test_every_torchrun_line_reaches_slm_cli_whole(runner):
    """torchrun's own parser takes none of slm's options (`--run` matched `--run-path`)."""
    lines = readme_torchrun_lines()
    assert any("finetune classify --run" in line for line in lines)  # the command
    for line in lines:
        words = shlex.split(line.replace("...", ""))[1:]
        command = words[words.index("slm_cli") + 1 :]
        parsed = torchrun_args(words)
        assert parsed.module and parsed.training_script == "slm_cli", line
        assert parsed.training_script_args == [w for w in command if w != "--"], line
        assert invoke(runner, *parsed.training_script_args, "--help").exit_code == 0, line
    # If a Python's argparse passes the "--" on, slm-cli takes it too.
    assert invoke(runner, "--", "train", "--help").exit_code == 0


def test_the_readmes_finetune_torchrun_line_runs_as_typed(base):
    line = next(line for line in readme_torchrun_lines() if "finetune classify --run" in line)
    words = shlex.split(line)
    words = words[words.index("torchrun") + 1 :]
    tiny = ["--train", "all", "--epochs", "1", "--batch-size", "4", "--precision", "fp32"]
    command = [sys.executable, "-m", "torch.distributed.run", *words, *tiny, "--out", "runs/tr"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=SAFETY, check=False)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    assert "Test set: accuracy" in completed.stdout
    assert (base.parent / "tr" / "best" / "model.safetensors").is_file()
