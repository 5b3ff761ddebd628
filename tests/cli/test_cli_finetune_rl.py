"""`slm-cli finetune rl`: docs/fine-tuning.md's commands as written, and its one-line errors.

The commands start from a tiny random chat run (chat_runs.make_chat_run) in the
place of the page's `runs/talker`, with tiny-run settings added (one step).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from chat_runs import make_chat_run
from slm_cli.main import app
from slm_train import Run

PAGE = Path(__file__).resolve().parents[2] / "docs" / "fine-tuning.md"
TINY_RUN = ["--problems", "2", "--eval-problems", "2", "--samples", "2", "--batch-size", "2"]
TINY_RUN += ["--max-reply-tokens", "2", "--precision", "fp32", "--device", "cpu"]


def invoke(runner, *args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def talker(workdir) -> Path:
    return make_chat_run(workdir / "runs" / "talker").path


def page_commands() -> list[list[str]]:
    """The page's `uv run slm-cli finetune rl ...` lines, as argument lists."""
    lines = re.findall(r"^uv run slm-cli (finetune rl .+)$", PAGE.read_text(), re.MULTILINE)
    return [shlex.split(line) for line in lines]


def page_files() -> dict[str, str]:
    """The files the page writes with `cat > NAME <<'END'` ... `END`."""
    found = re.findall(r"^cat > (\S+) <<'(\w+)'\n(.*?)^\2$", PAGE.read_text(), re.M | re.S)
    return {name: body for name, _, body in found}


def test_the_pages_commands_run_and_report_pass_at_1_and_k(talker, runner):
    for name, body in page_files().items():
        Path(name).write_text(body)  # the task file and its checker
    commands = page_commands()
    assert len(commands) == 3 and set(page_files()) == {"sums.jsonl", "sums_check.py"}
    for args in commands:
        result = invoke(runner, *args, *TINY_RUN)  # the later --samples 2 wins
        assert result.exit_code == 0, result.output
        assert "val pass at 1" in result.output and "pass@2" in result.output
        out = args[args.index("--out") + 1]
        assert Run(out).config["kind"] == "rl"


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
