"""DPO: the loss against a by-hand formula and TRL's, the pairs' rendering, and tiny runs.

The runs start from a tiny random chat run (chat_runs.make_chat_run) and
learn a preference it can pick up in a few steps: "I am slm." over a
sentence about a cat, after every question.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import warnings
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from chat_runs import chat_tokenizer, make_chat_run
from helpers import StopAt
from safetensors.torch import load_file
from slm_model import GPTModel, get_gpt_config
from slm_tokenizer.chat import render_conversation
from slm_train import CorpusError, DPOConfig, Run, finetune_dpo, read_checkpoint
from slm_train.finetune import dpo_loss, sequence_logprobs
from slm_train.finetune.dpo_loss import chosen_nll, reward_metrics
from slm_train.finetune.instruct import encode_instruction
from slm_train.finetune.preferences import PairEncoder, load_pairs

BETA = 0.1
# Summed log-probs of four pairs: policy chosen, policy rejected, reference chosen, rejected.
LOGPS = torch.tensor(
    [
        [-12.0, -15.0, -13.0, -14.0],
        [-8.5, -7.0, -9.0, -7.5],
        [-20.0, -20.0, -19.0, -21.0],
        [-3.0, -9.0, -3.0, -9.0],
    ]
)


def test_loss_and_rewards_equal_a_by_hand_computation():
    losses, chosen, rejected = dpo_loss(*LOGPS.unbind(1), BETA)
    for row, (pc, pr, rc, rr) in enumerate(LOGPS.tolist()):
        z = BETA * ((pc - rc) - (pr - rr))
        assert losses[row].item() == pytest.approx(math.log(1 + math.exp(-z)), rel=1e-6)
        assert chosen[row].item() == pytest.approx(BETA * (pc - rc), rel=1e-6)
        assert rejected[row].item() == pytest.approx(BETA * (pr - rr), rel=1e-6)
    # Margins 0.2, 0.0, -0.2, 0.0 by hand: one pair of four has the chosen reward ahead.
    metrics = reward_metrics(chosen, rejected)
    assert metrics["reward_accuracy"] == 0.25
    assert metrics["reward_margin"] == pytest.approx(0.0, abs=1e-7)


def test_sequence_logprobs_sum_the_reply_tokens_only():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5)
    targets = torch.tensor([[-100, 3, 1, -100], [2, -100, 4, 0]])
    expected = []
    for row in range(2):
        total = 0.0
        for position in range(4):
            target = targets[row, position].item()
            if target != -100:
                values = logits[row, position].tolist()
                log_z = math.log(sum(math.exp(v) for v in values))
                total += values[target] - log_z
        expected.append(total)
    assert sequence_logprobs(logits, targets).tolist() == pytest.approx(expected, rel=1e-5)


def test_gradients_reach_the_policy_only():
    policy = LOGPS[:, :2].clone().requires_grad_(True)
    reference = LOGPS[:, 2:].clone().requires_grad_(True)
    losses, _, _ = dpo_loss(*policy.unbind(1), *reference.unbind(1), BETA)
    losses.mean().backward()
    assert reference.grad is None
    for row, (pc, pr, rc, rr) in enumerate(LOGPS.tolist()):  # d(-log sigmoid z)/dz = sigmoid(z) - 1
        z = BETA * ((pc - rc) - (pr - rr))
        slope = BETA * (1 / (1 + math.exp(-z)) - 1) / len(LOGPS)
        assert policy.grad[row].tolist() == pytest.approx([slope, -slope], rel=1e-5)


def trl_compute_loss():
    """TRL's `DPOTrainer._compute_loss`, compiled from trl's own source on its own.

    Importing trl's trainer loads transformers' Trainer and image processors
    (6 to 9 s here), which would cost most of this file's time budget; the
    method itself needs only torch. Its reference-model branch, which needs
    the rest, does not run with `precompute_ref_logps`.
    """
    spec = importlib.util.find_spec("trl")
    if spec is None:
        pytest.skip("trl is not installed (the dev group installs it on Python 3.11 and later)")
    source = Path(spec.submodule_search_locations[0], "trainer", "dpo_trainer.py").read_text()
    trainer = next(
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == "DPOTrainer"
    )
    method = next(n for n in trainer.body if getattr(n, "name", "") == "_compute_loss")
    namespace = {"torch": torch, "F": torch.nn.functional, "math": math, "warnings": warnings}
    exec(compile(ast.Module([method], []), "trl/trainer/dpo_trainer.py", "exec"), namespace)
    return namespace["_compute_loss"]


@pytest.mark.parametrize("sft_weight", [0.0, 0.5])
def test_the_loss_equals_trls_dpo_loss(sft_weight):
    """TRL's loss (sigmoid, reference log-probs precomputed) and metrics on the same logits;
    with an SFT term on the chosen replies (RPO), TRL's ["sigmoid", "sft"] losses."""
    compute_loss = trl_compute_loss()
    torch.manual_seed(1)
    pairs, length, vocab = 3, 7, 11
    ids = torch.randint(0, vocab, (2 * pairs, length))
    logits = torch.randn(2 * pairs, length, vocab)
    completion = torch.zeros(2 * pairs, length, dtype=torch.long)
    for row, start in enumerate([2, 3, 4, 2, 5, 3]):
        completion[row, start : length - row % 2] = 1  # replies of different lengths
    reference = torch.randn(pairs, 2) * 3 - 10

    def model(**kwargs):  # TRL's fused head: per-token log-probs of the labels, 0 elsewhere
        labels = kwargs["labels"][:, 1:]
        logps = logits[:, :-1].log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1))
        logps = logps.squeeze(-1) * (labels != -100)
        zeros = torch.zeros_like(logps)
        return SimpleNamespace(log_probs=logps, entropy=zeros, mean_logits=zeros, is_top1=zeros > 0)

    accelerator = SimpleNamespace(
        device=torch.device("cpu"), gather=lambda x: x, gather_for_metrics=lambda x: x
    )
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=accelerator, beta=BETA,
        aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True,
        f_divergence_type="reverse_kl", loss_types=["sigmoid", "sft"],
        loss_weights=[1.0, sft_weight],
        use_weighting=False, _metrics=defaultdict(lambda: defaultdict(list)),
        _total_train_tokens=0, _tp_size=1,
    )  # fmt: skip
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "completion_mask": completion,
        "ref_chosen_logps": reference[:, 0],
        "ref_rejected_logps": reference[:, 1],
    }
    trl_loss = compute_loss(trainer, model, inputs, False)
    trl_metrics = trainer._metrics["train"]

    targets = ids[:, 1:].masked_fill(completion[:, 1:] == 0, -100)
    chosen, rejected = sequence_logprobs(logits[:, :-1], targets).chunk(2)
    losses, chosen_rewards, rejected_rewards = dpo_loss(
        chosen, rejected, *reference.unbind(1), BETA
    )
    ours = reward_metrics(chosen_rewards, rejected_rewards)
    chosen_tokens = (targets.chunk(2)[0] != -100).sum()
    loss = losses.mean() + sft_weight * chosen_nll(chosen, chosen_tokens)
    assert loss.item() == pytest.approx(trl_loss.item(), rel=1e-5)
    assert ours["reward_accuracy"] == pytest.approx(trl_metrics["rewards/accuracies"][0])
    assert ours["reward_margin"] == pytest.approx(trl_metrics["rewards/margins"][0], rel=1e-5)
    assert chosen_rewards.mean().item() == pytest.approx(trl_metrics["rewards/chosen"][0], rel=1e-5)


def test_pairs_render_as_the_runs_own_format():
    tokenizer = chat_tokenizer()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who are you?"},
    ]
    record = {"messages": messages, "chosen": "I am slm.", "rejected": "A cat."}
    chosen, rejected = PairEncoder(tokenizer, "chatml").encode(record)
    for (ids, mask), reply in ((chosen, "I am slm."), (rejected, "A cat.")):
        whole = render_conversation(tokenizer, [*messages, {"role": "assistant", "content": reply}])
        assert ids == whole[0] and mask == whole[1]  # the only assistant turn is the reply
    # Alpaca, as `finetune instruct` encodes an instruction and its output.
    one = {"messages": messages[1:], "chosen": "I am slm.", "rejected": "A cat."}
    ids, mask = PairEncoder(tokenizer, "alpaca").encode(one)[0]
    expected, prompt_length = encode_instruction(
        tokenizer, {"instruction": "Who are you?", "output": "I am slm."}
    )
    assert ids == expected and mask == [0] * prompt_length + [1] * (len(ids) - prompt_length)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('["not", "an", "object"]', "each record must be an object"),
        ('{"chosen": "a", "rejected": "b"}', "give exactly one of 'prompt' and 'messages'"),
        ('{"prompt": "q", "chosen": "a"}', "'rejected' must be a non-empty reply text"),
        ('{"prompt": "q", "chosen": "a", "rejected": "a"}', "are the same reply"),
        ('{"messages": [{"role": "robot", "content": "q"}], "chosen": "a", "rejected": "b"}',
         "role 'robot'"),
        ('{"messages": [{"role": "assistant", "content": "q"}], "chosen": "a", "rejected": "b"}',
         "must end with the user's turn"),
    ],
)  # fmt: skip
def test_a_bad_record_names_its_line(tmp_path, line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n' + line + "\n")
    with pytest.raises(CorpusError, match=rf"pairs.jsonl:2: .*{message}") as error:
        load_pairs(path)
    assert "\n" not in str(error.value)


QUESTIONS = ["Who are you?", "Hello, friend!", "Who sat on the mat?", "Where did the dog run?"]


def write_pairs(path: Path, count: int = 24) -> Path:
    lines = [
        {"prompt": f"{QUESTIONS[i % 4]} {i}", "chosen": "I am slm.", "rejected": "The cat sat."}
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def dpo_config(tmp_path: Path, out: str, **overrides) -> DPOConfig:
    values = dict(
        data=str(write_pairs(tmp_path / "pairs.jsonl")),
        base_run=str(tmp_path / "chat"),
        out_dir=str(tmp_path / out),
        epochs=2,
        batch_size=2,
        grad_accum_steps=2,
        learning_rate=3e-3,
        val_fraction=0.125,
        test_fraction=0.125,
        log_interval=1,
        precision="fp32",
        device="cpu",
    )
    return DPOConfig(**(values | overrides))


@pytest.fixture
def chat_run(tmp_path) -> Run:
    return make_chat_run(tmp_path / "chat")


def test_a_tiny_run_learns_the_preference_and_resumes_exactly(tmp_path, chat_run):
    result = finetune_dpo(dpo_config(tmp_path, "dpo"))
    evals = [r for r in result.history if r["type"] == "eval"]
    assert len(evals) == 2 and {"val_reward_accuracy", "val_reward_margin"} <= set(evals[-1])
    assert evals[-1]["train_reward_accuracy"] == 1.0  # from 0 at the start, where rewards tie
    assert evals[-1]["train_reward_margin"] > evals[0]["train_reward_margin"] > 0
    assert evals[-1]["train_loss"] < evals[0]["train_loss"] < math.log(2)
    assert result.before["reward_accuracy"] == 0 and result.before["loss"] == pytest.approx(
        math.log(2)
    )
    assert result.after["reward_accuracy"] == 1.0
    run = Run(result.run_dir)
    assert (run.config["kind"], run.config["prompt_format"]) == ("dpo", "chatml")
    assert run.metrics()[-1]["test_reward_accuracy"] == 1.0

    # Ctrl-C after step 3 (mid-epoch, with accumulation), then resume: the same losses.
    interrupted = finetune_dpo(dpo_config(tmp_path, "again"), reporter=StopAt(3))
    assert interrupted.interrupted
    resumed = finetune_dpo(dpo_config(tmp_path, "again"), resume=True)
    steps = {r["step"]: r["loss"] for r in result.history if r["type"] == "step"}
    again = {r["step"]: r["loss"] for r in Run(resumed.run_dir).metrics() if r["type"] == "step"}
    assert again == pytest.approx(steps, rel=1e-6) and len(steps) == 10


def test_lora_dpo_leaves_the_base_weights_untouched(tmp_path, chat_run):
    start = load_file(str(chat_run.path / "best" / "model.safetensors"))
    result = finetune_dpo(dpo_config(tmp_path, "lora", lora_rank=2, epochs=1))
    assert result.after["reward_margin"] > 0
    last = load_file(str(result.run_dir / "last" / "model.safetensors"))
    bases = [name for name in last if name.endswith(".base.weight")]
    assert bases and all(torch.equal(last[n], start[n.replace(".base", "")]) for n in bases)
    assert any(last[n].abs().sum() > 0 for n in last if n.endswith(".lora_b"))
    others = [n for n in start if n in last]
    assert others and all(torch.equal(last[n], start[n]) for n in others)


def test_two_processes_equal_one_process_with_accumulation(tmp_path, chat_run):
    """--devices 2: each process scores its half of a step's pairs (and their reference
    log-probs); together they take the step one process takes with accumulation 2."""
    finetune_dpo(dpo_config(tmp_path, "one", epochs=1))
    finetune_dpo(dpo_config(tmp_path, "two", epochs=1, grad_accum_steps=1, devices=2))
    one, two = (
        {r["step"]: r["loss"] for r in Run(tmp_path / name).metrics() if r["type"] == "step"}
        for name in ("one", "two")
    )
    assert sorted(one) == sorted(two) == [1, 2, 3, 4, 5]
    assert two == pytest.approx(one, rel=1e-4, abs=1e-6)
    a, b = (
        read_checkpoint(tmp_path / name / "last").build_model().state_dict()
        for name in ("one", "two")
    )
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=2e-5, rtol=1e-4, msg=name)


def test_dropout_is_off_so_the_first_step_starts_at_log_2(tmp_path):
    """A run trained with dropout: DPO's policy in training mode must score the pairs as the
    reference did (without dropout), or the first loss is noise away from log 2."""
    tokenizer = chat_tokenizer()
    torch.manual_seed(0)
    config = get_gpt_config("tiny", vocab_size=tokenizer.vocab_size, block_size=64, dropout=0.3)
    make_chat_run(tmp_path / "chat", GPTModel(config), tokenizer=tokenizer)
    result = finetune_dpo(dpo_config(tmp_path, "dpo", max_steps=1))
    first = next(r for r in result.history if r["type"] == "step")
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert Run(result.run_dir).config["model"]["dropout"] == 0.3  # the run keeps its setting
