"""Cheaper evaluations inside the budget: fewer batches until the last, which is full;
best/ chosen on the batches every evaluation shares; the time reserve scaled to the last."""

from __future__ import annotations

import pytest
import torch
from helpers import quick_config
from slm_train import ConfigError, TrainConfig, read_checkpoint, train
from slm_train.data.datasets import RandomWindows
from slm_train.data.prepare import prepare_config
from slm_train.evaluate import evaluate_loss


def test_interim_evaluations_use_the_subset_and_the_last_all_batches(tmp_path, corpus_file):
    config = quick_config(
        tmp_path, corpus_file, max_steps=9, eval_interval=3, eval_batches=4, interim_eval_batches=1
    )
    result = train(config)
    evals = [r for r in result.history if r["type"] == "eval"]
    assert [(r["step"], r["eval_batches"]) for r in evals] == [(3, 1), (6, 1), (9, 4)]
    assert all(r["shared_val_loss"] == r["val_loss"] for r in evals[:2])

    # The last one, recomputed independently: all 4 validation batches, and the first alone.
    model = read_checkpoint(result.run_dir / "last").build_model().eval()
    data = prepare_config(config)
    val = RandomWindows(data.tokens("val"), 32, config.batch_size, config.seed + 2, "validation")
    device = torch.device("cpu")
    full = evaluate_loss(model, (val.batch(i) for i in range(4)), device)
    first = evaluate_loss(model, [val.batch(0)], device)
    assert evals[-1]["val_loss"] == pytest.approx(full, rel=1e-5)
    assert evals[-1]["shared_val_loss"] == pytest.approx(first, rel=1e-5)

    best = min(evals, key=lambda r: r["shared_val_loss"])  # comparable across all three
    assert result.best_val_loss == best["val_loss"]  # as that evaluation reported it
    assert read_checkpoint(result.run_dir / "best").state["step"] == best["step"]


def test_interim_batches_beyond_eval_batches_mean_every_evaluation_is_full(tmp_path, corpus_file):
    config = quick_config(
        tmp_path, corpus_file, max_steps=4, eval_interval=2, eval_batches=2, warmup_steps=1
    )
    assert config.interim_eval_batches == 5  # the default: more than this run's eval_batches
    evals = [r for r in train(config).history if r["type"] == "eval"]
    assert [r["eval_batches"] for r in evals] == [2, 2]
    with pytest.raises(ConfigError, match="interim_eval_batches must be a positive integer"):
        TrainConfig(interim_eval_batches=0)


def test_time_reserve_scales_a_cheaper_evaluation_up_to_the_last(monkeypatch):
    from slm_train.budget import Budget
    from slm_train.task import TrainState

    now = {"t": 0.0}
    monkeypatch.setattr("slm_train.budget.time.perf_counter", lambda: now["t"])
    budget = Budget(TrainConfig(max_steps=None, max_time=60), final_eval_cost=4)
    with budget.phase("evaluation"):
        now["t"] += 2  # a quarter-size evaluation: the last one will take 8 s
    with budget.phase("training"):
        now["t"] += 1
    assert budget.spent(TrainState(step=1)) == pytest.approx(3 / (60 - 8 - 1))
