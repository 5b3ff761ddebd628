"""The training loop: learning, accumulation, exact resume, precision, checkpoints, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import StopAt, quick_config
from slm_model import GPTModel, get_gpt_config
from slm_train import (
    CheckpointError,
    ConfigError,
    DataTooSmallError,
    Run,
    RunError,
    Task,
    TrainConfig,
    TrainingError,
    accumulate_gradients,
    command_line_names,
    learning_rate,
    make_optimizer,
    plan_training,
    read_checkpoint,
    save_checkpoint,
    train,
)


class NextToken(Task):
    """Next-token prediction on given batches: every position a target."""

    def loss(self, model, batch):
        return model(*batch)[1]


def step_losses(result) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in result.history if r["type"] == "step"}


def test_loss_falls_far_below_uniform_on_a_repetitive_corpus(tmp_path):
    path = tmp_path / "rhyme.txt"
    path.write_text("Twinkle, twinkle, little star, how I wonder what you are.\n" * 300)
    config = quick_config(tmp_path, path, max_steps=150, eval_interval=50, tokenizer="bpe:280")
    result = train(config)
    assert result.last_val_loss < 0.25 * math.log(280), result.last_val_loss
    evals = [r for r in result.history if r["type"] == "eval"]
    assert [r["step"] for r in evals] == [50, 100, 150]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    run = Run(result.run_dir)
    assert (run.path / "loss.png").read_bytes().startswith(b"\x89PNG")
    assert [r["step"] for r in run.metrics() if r["type"] == "eval"] == [50, 100, 150]


def test_gradient_accumulation_equals_the_larger_batch():
    torch.manual_seed(0)
    model = GPTModel(get_gpt_config("tiny", block_size=16))
    x = torch.randint(0, 512, (8, 16))
    y = torch.randint(0, 512, (8, 16))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    cpu, task = torch.device("cpu"), NextToken()
    loss_whole = accumulate_gradients(model, [(x, y)], task, scaler, cpu, "fp32")
    whole = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    halves = [(x[:4], y[:4]), (x[4:], y[4:])]
    loss_halves = accumulate_gradients(model, halves, task, scaler, cpu, "fp32")
    torch.testing.assert_close(loss_halves, loss_whole)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, whole[name], atol=1e-6, rtol=1e-5, msg=name)


def test_resume_is_exact(tmp_path, corpus_file):
    common = dict(
        max_steps=24, eval_interval=8, model={"block_size": 32, "dropout": 0.1}, grad_accum_steps=2
    )
    straight = train(quick_config(tmp_path, corpus_file, out_dir=str(tmp_path / "a"), **common))

    config = quick_config(tmp_path, corpus_file, out_dir=str(tmp_path / "b"), **common)
    stopped = train(config, reporter=StopAt(13))
    assert stopped.interrupted and stopped.step == 13
    assert read_checkpoint(tmp_path / "b" / "last").state["step"] == 13
    resumed = train(config, resume=True)
    assert resumed.step == 24 and not resumed.interrupted

    expected, got = step_losses(straight), step_losses(resumed)
    assert sorted(got) == list(range(1, 25))  # metrics.jsonl holds every step exactly once
    assert all(got[s] == expected[s] for s in range(14, 25)), (got, expected)
    assert resumed.best_val_loss == straight.best_val_loss
    a = read_checkpoint(tmp_path / "a" / "last").build_model()
    b = read_checkpoint(tmp_path / "b" / "last").build_model()
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_bf16_autocast_on_cpu(tmp_path, corpus_file):
    result = train(quick_config(tmp_path, corpus_file, precision="bf16", max_steps=10))
    losses = step_losses(result)
    assert all(math.isfinite(v) for v in losses.values())
    assert losses[10] < losses[1]


def test_learning_rate_schedule():
    config = TrainConfig(
        schedule="cosine", learning_rate=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110
    )
    assert learning_rate(config, 0, 0.0) == pytest.approx(1e-4)
    assert learning_rate(config, 9, 9 / 110) == pytest.approx(1e-3)
    assert learning_rate(config, 10, 10 / 110) == pytest.approx(1e-3)
    assert learning_rate(config, 60, 60 / 110) == pytest.approx(5.5e-4)
    assert learning_rate(config, 110, 1.0) == pytest.approx(1e-4)


def test_weight_decay_skips_biases_norms_and_embeddings():
    model = GPTModel(get_gpt_config("tiny"))
    decay, no_decay = make_optimizer(
        model, TrainConfig(optimizer="adamw"), torch.device("cpu")
    ).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decayed and all(
        n.endswith("weight") and ("qkv" in n or "proj" in n or "fc" in n) for n in decayed
    )
    assert "tok_emb.weight" in {names[id(p)] for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_checkpoint_round_trip_and_damage(tmp_path):
    torch.manual_seed(0)
    model = GPTModel(get_gpt_config("tiny"))
    save_checkpoint(tmp_path / "ck", model, {"step": 3}, {"optimizer": {"x": torch.ones(2)}})
    checkpoint = read_checkpoint(tmp_path / "ck")
    assert checkpoint.state == {"step": 3} and checkpoint.config == model.config
    restored = checkpoint.build_model()
    assert all(
        torch.equal(p, q)
        for p, q in zip(model.state_dict().values(), restored.state_dict().values(), strict=True)
    )
    assert restored.lm_head.weight is restored.tok_emb.weight  # tying survives
    assert torch.equal(checkpoint.optimizer_state()["optimizer"]["x"], torch.ones(2))

    weights = tmp_path / "ck" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        read_checkpoint(tmp_path / "ck")
    weights.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="manifest"):
        read_checkpoint(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_checkpoint(tmp_path / "nothing")


def test_checkpoint_write_survives_a_crash_between_renames(tmp_path):
    model = GPTModel(get_gpt_config("tiny"))
    save_checkpoint(tmp_path / "last", model, {"step": 1})
    (tmp_path / "last").rename(tmp_path / ".last.old")  # the moment between the two renames
    assert read_checkpoint(tmp_path / "last").state == {"step": 1}


def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path, corpus_file, monkeypatch):
    original = GPTModel.forward
    calls = {"n": 0}

    def poisoned(self, idx, targets=None):
        result = original(self, idx, targets)
        if targets is not None and self.training:
            calls["n"] += 1
            if calls["n"] > 12:
                return result[0], result[1] * float("nan")
        return result

    monkeypatch.setattr(GPTModel, "forward", poisoned)
    config = quick_config(tmp_path, corpus_file, max_steps=30, eval_interval=10)
    with pytest.raises(
        TrainingError, match=r"loss became nan at step 13; the last good checkpoint is .*last"
    ):
        train(config)
    assert read_checkpoint(tmp_path / "run" / "last").state["step"] == 10


def test_refuses_to_overwrite_another_run(tmp_path, corpus_file):
    config = quick_config(tmp_path, corpus_file, max_steps=2, eval_interval=2)
    train(config)
    # From Python the fix names Python's keywords; the command line names its flags.
    python_fix = r"already holds a run; pass resume=True .* force=True .* another out_dir$"
    with pytest.raises(RunError, match=python_fix):
        train(config)
    with command_line_names(), pytest.raises(RunError, match=r"pass --resume .* --force .* --out$"):
        train(config)
    assert train(config, force=True).step == 2
    with pytest.raises(ConfigError, match=r"^resume=True continues a run and force=True"):
        train(config, force=True, resume=True)


def test_resume_with_other_model_or_tokenizer_is_refused(tmp_path, corpus_file):
    config = quick_config(tmp_path, corpus_file, max_steps=4, eval_interval=2)
    train(config)
    bigger = config.replace(model={"block_size": 32, "n_layer": 3}, max_steps=8)
    with pytest.raises(RunError, match="different model"):
        train(bigger, resume=True)
    other = config.replace(tokenizer="bpe:290", max_steps=8)
    with pytest.raises(RunError, match="another tokenizer"):
        train(other, resume=True)
    with pytest.raises(TrainingError, match="already reached step 4"):
        train(config, resume=True)


def test_resume_from_a_corrupt_checkpoint_is_refused(tmp_path, corpus_file):
    config = quick_config(tmp_path, corpus_file, max_steps=4, eval_interval=2)
    train(config)
    weights = tmp_path / "run" / "last" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        train(config.replace(max_steps=8), resume=True)


def test_data_smaller_than_the_context_is_refused(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("Just a few words here.\n" * 3)
    with pytest.raises(DataTooSmallError, match="fewer than one window of block_size"):
        train(quick_config(tmp_path, path, tokenizer="bpe:260"))
    assert not (tmp_path / "run").exists()


def test_config_from_toml_and_bad_values(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text('preset = "tiny"\nbatch_size = 4\nmax_steps = 7\n[model]\nblock_size = 16\n')
    config = TrainConfig.from_toml(
        path, max_steps=9, batch_size=None
    )  # None: keep the file's value
    assert (config.preset, config.batch_size, config.max_steps, config.model) == (
        "tiny",
        4,
        9,
        {"block_size": 16},
    )
    path.write_text("batch_sise = 4\n")
    with pytest.raises(ConfigError, match="unknown training option 'batch_sise'"):
        TrainConfig.from_toml(path)
    path.write_text("batch_size = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        TrainConfig.from_toml(path)
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ConfigError, match="at least one budget"):
        TrainConfig(max_steps=None)
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=0)


def test_budgets_given_replace_the_default_pair(tmp_path, corpus_file):
    """No budget: 2000 steps or 8 minutes. Any budget given (command line, file, resumed run)
    is the whole budget: --max-time 2h is not cut at 2000 steps, nor --max-steps at 8 minutes."""
    budget = lambda c: (c.max_steps, c.max_tokens, c.max_time)  # noqa: E731
    assert budget(plan_training({})) == (2000, None, 480.0)
    assert budget(plan_training({"max_time": 7200.0})) == (None, None, 7200.0)
    assert budget(plan_training({"max_steps": 5000})) == (5000, None, None)
    assert budget(plan_training({"max_tokens": 10, "max_steps": 3})) == (3, 10, None)
    path = tmp_path / "train.toml"
    path.write_text("max_tokens = 4096\n")
    assert budget(plan_training({}, config_file=path)) == (None, 4096, None)
    assert budget(plan_training({"max_steps": 4}, config_file=path)) == (4, None, None)
    path.write_text("batch_size = 4\n")
    assert budget(plan_training({}, config_file=path)) == (2000, None, 480.0)

    first = train(quick_config(tmp_path, corpus_file, max_steps=2, max_time=600.0, warmup_steps=1))
    resumed = plan_training({"out_dir": str(first.run_dir)}, resume=True)
    assert budget(resumed) == (2, None, 600.0) and resumed.out_dir == str(first.run_dir)
    longer = plan_training({"out_dir": str(first.run_dir), "max_steps": 40}, resume=True)
    assert budget(longer) == (40, None, None) and longer.batch_size == 8  # the run's own


def test_unknown_preset_is_a_config_error(tmp_path, corpus_file):
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        train(quick_config(tmp_path, corpus_file, preset="huge"))


def test_metrics_records_have_throughput(tmp_path, corpus_file):
    result = train(quick_config(tmp_path, corpus_file, max_steps=3, eval_interval=3))
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    step = next(r for r in lines if r["type"] == "step")
    assert step["tokens_per_s"] > 0 and step["flops_per_s"] > 0 and 0 < step["lr"] <= 3e-3


def test_time_budget_reserves_the_final_evaluation(monkeypatch):
    """The loop stops early enough for the last evaluation to fit inside max_time."""
    from slm_train.budget import Budget
    from slm_train.task import TrainState

    now = {"t": 100.0}
    monkeypatch.setattr("slm_train.budget.time.perf_counter", lambda: now["t"])
    budget = Budget(TrainConfig(max_steps=None, max_time=60), spent_before=0, preparation=6)
    assert budget.elapsed() == 6  # data preparation counts against the budget
    with budget.phase("evaluation"):
        now["t"] += 10  # an evaluation that takes 10 s
    with budget.phase("training"):
        now["t"] += 2  # a step that takes 2 s
    state = TrainState(step=1)
    assert budget.spent(state) == pytest.approx(18 / 48)  # 60 s less 10 + 2 s in reserve
    now["t"] += 29.9
    assert budget.spent(state) < 1
    now["t"] += 0.2  # 48 s spent: the next evaluation would end at 58 s, the next step at 60 s
    assert budget.spent(state) == 1
    assert budget.seconds == {"preparation": 6, "training": 2, "evaluation": 10}


def test_warmup_longer_than_the_budget_is_warned_about(tmp_path, corpus_file):
    from slm_train import ConfigWarning

    config = quick_config(tmp_path, corpus_file, max_steps=3, warmup_steps=10, eval_interval=3)
    with pytest.warns(ConfigWarning, match=r"warmup_steps \(10\) is longer than max_steps \(3\)"):
        train(config)


def test_time_budget_estimates_the_evaluation_before_timing_one(monkeypatch):
    from slm_train.budget import Budget
    from slm_train.task import TrainState

    now = {"t": 0.0}
    monkeypatch.setattr("slm_train.budget.time.perf_counter", lambda: now["t"])
    budget = Budget(TrainConfig(max_steps=None, max_time=60), eval_steps=5)
    with budget.phase("training"):
        now["t"] += 2  # one 2-s step: an evaluation is estimated at 5 steps, 10 s
    assert budget.spent(TrainState(step=1)) == pytest.approx(2 / 48)
    with budget.phase("evaluation"):
        now["t"] += 4  # once one is timed, its real duration counts
    assert budget.spent(TrainState(step=1)) == pytest.approx(6 / 54)
