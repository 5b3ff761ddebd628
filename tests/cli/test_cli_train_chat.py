"""`slm-cli train --chat`: from nothing to a chat run in one command (tiny, a few steps a stage)."""

from __future__ import annotations

from helpers import TINY
from slm_cli.main import app
from slm_tokenizer.chat import IM_END, IM_START
from slm_train import Run
from slm_train.chat_recipe import base_run_dir


def invoke(runner, *args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def test_train_chat_pretrains_then_chat_tunes_and_chat_answers(workdir, runner):
    result = invoke(runner, "train", "--chat", *TINY, "--max-steps", "6")
    assert result.exit_code == 0, result.output
    assert "Chat model ready" in result.output and "Who are you?" in result.output
    assert "slm-cli chat --run runs/chat" in result.output

    base, chat = Run(workdir / "runs" / "chat-base"), Run(workdir / "runs" / "chat")
    assert base.config.get("kind") != "chat" and chat.config["kind"] == "chat"
    assert chat.config["data"]["base"] == "runs/chat-base"
    # The tokenizer pre-training trained already holds the markers: nothing was added.
    assert {IM_START, IM_END} <= set(base.tokenizer().special_tokens)
    assert chat.config["data"]["markers_added"] == 0
    assert [r["step"] for r in base.metrics() if r["type"] == "eval"][-1] == 6
    assert [r["step"] for r in chat.metrics() if r["type"] == "eval"][-1] == 6

    talk = invoke(runner, "chat", "--run", "runs/chat", "--max-new-tokens", "8", input="Hi\n")
    assert talk.exit_code == 0, talk.output
    assert "you> Hi" in talk.output and "model> " in talk.output


def test_train_chat_names_the_two_runs_and_refuses_resume(workdir, runner):
    assert base_run_dir("runs/chat") == base_run_dir("runs/chat/").parent / "chat-base"
    result = invoke(runner, "train", "--chat", "--resume")
    assert result.exit_code == 1
    assert "slm-cli finetune chat --resume" in result.output and "Traceback" not in result.output
