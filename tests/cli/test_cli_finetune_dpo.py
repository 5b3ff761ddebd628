"""`slm-cli finetune dpo`: docs/fine-tuning.md's commands as written, and its one-line errors.

The commands start from a tiny random chat run (chat_runs.make_chat_run) in the
place of the page's `runs/talker`, with a few tiny-run settings added.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from chat_runs import make_chat_run
from slm_cli.main import app
from slm_train import Run

PAGE = Path(__file__).resolve().parents[2] / "docs" / "fine-tuning.md"
TINY_RUN = ["--epochs", "1", "--batch-size", "2", "--precision", "fp32", "--device", "cpu"]


def page_commands() -> list[list[str]]:
    """The page's `uv run slm-cli finetune dpo ...` lines, as argument lists."""
    lines = re.findall(r"^uv run slm-cli (finetune dpo .+)$", PAGE.read_text(), re.MULTILINE)
    return [shlex.split(line.split(" #")[0]) for line in lines]


def invoke(runner, *args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def talker(workdir) -> Path:
    make_chat_run(workdir / "runs" / "talker")
    lines = [
        {"prompt": f"Who are you? {i}", "chosen": "I am slm.", "rejected": "The cat sat."}
        for i in range(20)
    ]
    Path("pairs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return workdir / "runs" / "talker"


def test_the_pages_dpo_commands_run_as_written(talker, runner):
    commands = page_commands()
    assert len(commands) == 3, "the page lost its DPO examples"
    for args in commands:
        result = invoke(runner, *args, *TINY_RUN)
        assert result.exit_code == 0, result.output
        assert "val reward accuracy" in result.output and "Test pairs" in result.output
        run = Run(args[args.index("--out") + 1])
        assert run.config["kind"] == "dpo" and run.config["prompt_format"] == "chatml"
        assert run.metrics()[-1]["type"] == "test"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "bad.jsonl"], "error: bad.jsonl:2: 'rejected' must be a non-empty reply text"),
        (
            ["--data", "pairs.jsonl", "--beta", "0"],
            "error: beta must be a positive number, got 0.0",
        ),
        (["--data", "pairs.jsonl", "--run", "runs/base"], "has no prompt format to render"),
    ],
)
def test_bad_input_is_one_red_line(talker, runner, extra, message):
    Path("bad.jsonl").write_text(
        '{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": "a"}\n'
    )
    make_chat_run("runs/base", extra={})  # a run with no prompt format: pre-trained
    result = invoke(runner, "finetune", "dpo", "--run", talker, *extra)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert message in lines[0] and lines[0].startswith("error: ")
