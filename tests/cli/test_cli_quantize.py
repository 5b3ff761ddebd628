"""--quantize int8|int4 on generate, chat and serve, end to end on a tiny run (issue 26).

The run is scripted (tests/chat_runs.py): its greedy reply to anything is REPLY,
by logit margins wide enough that weight-only quantization keeps every token.
"""

from __future__ import annotations

import importlib.util

import pytest
from chat_runs import scripted_chat_run
from slm_cli.main import app

pytest.importorskip("torchao")

REPLY = "The dog ran to the park."


def invoke(runner, *args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def one_red_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture
def run_dir(workdir):
    return scripted_chat_run(workdir / "runs" / "chat", REPLY, block_size=256).path


@pytest.mark.parametrize("how", ["int8", "int4"])
def test_generate_and_chat_quantized_give_the_scripted_reply(run_dir, runner, how):
    chat = invoke(
        runner, "chat", "--run", run_dir, "--temperature", "0", "--quantize", how,
        input="Who are you?\n/quit\n",
    )  # fmt: skip
    assert chat.exit_code == 0, chat.output
    assert f"model> {REPLY}" in chat.output.splitlines()
    generated = invoke(
        runner, "generate", "Who are you?", "--run", run_dir, "--temperature", "0",
        "--quantize", how,
    )  # fmt: skip
    assert generated.exit_code == 0, generated.output
    assert REPLY in generated.output


@pytest.mark.parametrize("command", [["generate", "Hi"], ["chat"], ["serve"]])
def test_an_unknown_kind_is_one_line(run_dir, runner, command):
    line = one_red_line(invoke(runner, *command, "--run", run_dir, "--quantize", "int3"))
    assert "int3" in line and "none, int8, int4" in line


def test_missing_torchao_is_one_line_with_the_install_command(run_dir, runner, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a)
    )
    line = one_red_line(invoke(runner, "generate", "Hi", "--run", run_dir, "--quantize", "int8"))
    assert "torchao" in line and "uv sync --extra quantize" in line
