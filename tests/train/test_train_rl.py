"""RL on checkable tasks: the advantage and loss against a by-hand example, and tiny runs.

The runs start from a tiny random chat run (chat_runs.make_chat_run) on a
task made for the test that a random model gets right 10 to 25 % of the time
and learns in six steps (to above 93 % for each of six seeds tried, the
default one included): any reply holding the letter "a" is right.
"""

from __future__ import annotations

import random

import pytest
import torch
from chat_runs import make_chat_run
from helpers import StopAt
from slm_train import ConfigError, RLConfig, Run, finetune_rl
from slm_train.chat import checkable
from slm_train.chat.checkable import CheckableTask, Problem
from slm_train.finetune import advantages, policy_gradient_loss, sequence_logprobs
from slm_train.finetune.policy_gradient import pass_at
from slm_train.finetune.rl import collate_answers


class SayA(CheckableTask):
    """Right when the reply holds an "a"; problems differ only in their key (for the split)."""

    name = "say-a"

    def draw(self, rng: random.Random) -> Problem:
        return Problem(str(rng.randrange(1000)), "Who are you?", "", "a")

    def check(self, reply: str, answer: str) -> bool:
        return answer in reply


@pytest.fixture
def say_a(monkeypatch):
    monkeypatch.setitem(checkable.TASKS, SayA.name, SayA())


def test_advantage_and_loss_equal_a_by_hand_example():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    logps = torch.tensor([-2.0, -3.0, -1.0, -4.0, -5.0, -6.0, -7.0, -8.0], requires_grad=True)
    advantage = advantages(rewards)
    assert advantage.tolist() == [[0.5, -0.5, -0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]
    loss = policy_gradient_loss(logps, advantage.flatten())
    by_hand = -(0.5 * -2 - 0.5 * -3 - 0.5 * -1 + 0.5 * -4) / 8  # = 0.125
    assert loss.item() == pytest.approx(by_hand)
    loss.backward()  # d loss / d logp_i = -A_i / 8: up for the right answers, down for the wrong
    assert logps.grad.tolist() == pytest.approx([-1 / 16, 1 / 16, 1 / 16, -1 / 16, 0, 0, 0, 0])
    correct = torch.tensor([[True, False, False, False], [False, False, False, False]])
    assert pass_at(correct) == {"pass_at_1": 0.125, "pass_at_k": 0.5}


def test_the_loss_counts_the_answer_tokens_only():
    inputs, targets = collate_answers([([5, 6, 7], [8, 9]), ([5], [3, 4, 2])], pad_id=0)
    assert inputs.tolist() == [[5, 6, 7, 8], [5, 3, 4, 0]]
    assert targets.tolist() == [[-100, -100, 8, 9], [3, 4, 2, -100]]
    logits = torch.randn(2, 4, 10)
    logprobs = torch.log_softmax(logits, dim=-1)
    by_hand = [logprobs[0, 2, 8] + logprobs[0, 3, 9], logprobs[1, 0, 3] + logprobs[1, 1, 4]]
    by_hand[1] = by_hand[1] + logprobs[1, 2, 2]
    assert sequence_logprobs(logits, targets).tolist() == pytest.approx([v.item() for v in by_hand])


def rl_config(tmp_path, out: str, **overrides) -> RLConfig:
    values = dict(
        task="say-a",
        base_run=str(tmp_path / "chat"),
        out_dir=str(tmp_path / out),
        problems=24,
        eval_problems=8,
        samples=8,
        max_reply_tokens=3,
        batch_size=2,
        grad_accum_steps=2,
        learning_rate=1e-1,
        eval_interval=3,
        log_interval=1,
        precision="fp32",
        device="cpu",
    )
    return RLConfig(**(values | overrides))


def test_a_tiny_run_raises_the_reward_and_resumes_exactly(tmp_path, say_a):
    make_chat_run(tmp_path / "chat")
    result = finetune_rl(rl_config(tmp_path, "rl"))
    evals = [r for r in result.history if r["type"] == "eval"]
    assert len(evals) == 2 and evals[-1]["val_pass_at_k"] >= evals[-1]["val_pass_at_1"]
    assert result.before["pass_at_1"] < 0.5 and result.after["pass_at_1"] >= 0.75  # in 6 steps
    assert result.after["pass_at_k"] == 1.0
    run = Run(result.run_dir)
    assert (run.config["kind"], run.config["prompt_format"]) == ("rl", "chatml")
    assert run.metrics()[-1]["test_pass_at_1"] == result.after["pass_at_1"]

    # Ctrl-C after step 2 (with accumulation), then resume: the same samples, the same losses.
    assert finetune_rl(rl_config(tmp_path, "again"), reporter=StopAt(2)).interrupted
    resumed = finetune_rl(rl_config(tmp_path, "again"), resume=True)
    steps = {r["step"]: r["loss"] for r in result.history if r["type"] == "step"}
    again = {r["step"]: r["loss"] for r in Run(resumed.run_dir).metrics() if r["type"] == "step"}
    assert again == pytest.approx(steps, rel=1e-5, abs=1e-7) and len(steps) == 6


def test_bad_input_gets_one_clear_line(tmp_path):
    make_chat_run(tmp_path / "chat")
    with pytest.raises(ConfigError, match=r"unknown (--)?task 'chess'; choose one of: arithmetic"):
        finetune_rl(rl_config(tmp_path, "rl", task="chess"))
    make_chat_run(tmp_path / "base", extra={})
    with pytest.raises(ConfigError, match=r"is not a chat run; .* start from a run made by"):
        finetune_rl(rl_config(tmp_path, "rl", base_run=str(tmp_path / "base")))
