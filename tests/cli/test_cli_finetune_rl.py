"""`slm-cli finetune rl`: a one-step run from a tiny chat run, and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_runs import make_chat_run
from slm_cli.main import app
from slm_train import Run

TINY_RUN = ["--problems", "2", "--eval-problems", "2", "--samples", "2", "--batch-size", "2"]
TINY_RUN += ["--max-reply-tokens", "2", "--precision", "fp32", "--device", "cpu"]


def invoke(runner, *args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def talker(workdir) -> Path:
    return make_chat_run(workdir / "runs" / "talker").path


def test_a_run_reports_pass_at_1_and_k(talker, runner):
    args = ["finetune", "rl", "--task", "counting", "--run", talker, "--out", "runs/rl"]
    result = invoke(runner, *args, *TINY_RUN)
    assert result.exit_code == 0, result.output
    assert "val pass at 1" in result.output and "pass@2" in result.output
    assert Run("runs/rl").config["kind"] == "rl"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "chess"], "unknown --task 'chess'; choose one of: arithmetic, counting"),
        (["--samples", "0"], "samples must be a positive integer, got 0"),
        (["--run", "runs/base"], "is not a chat run"),
    ],
)
def test_bad_input_is_one_red_line(talker, runner, extra, message):
    make_chat_run("runs/base", extra={})  # a run with no prompt format: pre-trained
    result = invoke(runner, "finetune", "rl", "--run", talker, *TINY_RUN, *extra)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert message in lines[0] and lines[0].startswith("error: ")
