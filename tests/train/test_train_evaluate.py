"""`evaluate_loss` is the mean over target tokens, checked against a by-hand formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from slm_model import GPTConfig, GPTModel
from slm_train.data.datasets import DataTooSmallError
from slm_train.evaluate import evaluate_loss


def _model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(GPTConfig(block_size=16, vocab_size=50, n_layer=1, n_head=2, n_embd=16))


def _batch(rows: int, length: int, masked: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 50, (rows, length), generator=generator)
    y = torch.randint(0, 50, (rows, length), generator=generator)
    y[:, :masked] = -100  # a masked prompt
    return x, y


def test_each_target_weighs_alike_whatever_its_batch():
    model = _model()
    # A full batch, a short last batch, one mostly masked, and one with nothing to score.
    batches = [_batch(4, 12, 0, 1), _batch(1, 12, 0, 2), _batch(4, 12, 10, 3), _batch(2, 12, 12, 4)]
    model.train()
    measured = evaluate_loss(model, batches, torch.device("cpu"))
    assert model.training  # the mode is restored
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x).flatten(0, 1) for x, _ in batches])
        targets = torch.cat([y.flatten() for _, y in batches])
        by_hand = F.cross_entropy(logits, targets, ignore_index=-100, reduction="sum")
        by_hand = by_hand / (targets != -100).sum()
    assert measured == pytest.approx(by_hand.item(), rel=1e-5)


def test_nothing_to_score_is_refused():
    with pytest.raises(DataTooSmallError, match="no batches"):
        evaluate_loss(_model(), [_batch(2, 12, 12, 5)], torch.device("cpu"))


@pytest.mark.parametrize("max_batches", [None, 2])
def test_evaluate_run_scores_whole_windows_and_counts_what_it_scored(
    tmp_path, monkeypatch, max_batches
):
    """`evaluate_run` on other text: the loss is the by-hand mean over the windows it
    scores (a short last batch included), and `tokens` is exactly how many it scored."""
    import numpy as np
    from chat_runs import make_chat_run
    from helpers import story
    from slm_train.data.prepare import default_data_dir, load_prepared
    from slm_train.evaluate import evaluate_run

    monkeypatch.chdir(tmp_path)
    run = make_chat_run(tmp_path / "run", block_size=16)
    (tmp_path / "text.txt").write_text("\n".join(story(seed) for seed in range(12)))
    result = evaluate_run(run, "text.txt", batch_size=3, max_batches=max_batches, device="cpu")

    prepared = load_prepared(default_data_dir("text.txt", f"tokenizer-of-{run.path.name}"))
    tokens = np.concatenate([prepared.tokens("train"), prepared.tokens("val")])
    windows = (len(tokens) - 1) // 16
    assert windows % 3 and windows > 6  # a short last batch, and more than two batches
    windows = min(windows, 3 * (max_batches or windows))
    ids = torch.as_tensor(tokens[: windows * 16 + 1].astype(np.int64))
    model = run.load_model("best")
    with torch.no_grad():
        logits = model(ids[:-1].view(windows, 16))
    by_hand = F.cross_entropy(logits.flatten(0, 1), ids[1:])
    assert result.tokens == windows * 16
    assert result.loss == pytest.approx(by_hand.item(), rel=1e-5)


def test_evaluations_are_kept_one_file_each_in_the_shared_shape(tmp_path):
    """Two evaluations of one kind in the same second both survive, named in time order."""
    import json
    from datetime import datetime, timezone

    from slm_train import save_evaluation
    from slm_train.evals import score

    now = datetime(2026, 12, 7, 20, 41, 5, tzinfo=timezone.utc)
    scores = [score("hellaswag", "acc", 0.25, stderr=0.01, n=100, chance=0.25)]
    first = save_evaluation(tmp_path, "lm-eval", scores, {"results": {}}, now=now)
    second = save_evaluation(tmp_path, "lm-eval", scores, now=now)
    assert [first.name, second.name] == [
        "20261207-204105-lm-eval.json",
        "20261207-204106-lm-eval.json",
    ]
    record = json.loads(first.read_text())
    assert record == {
        "created": "2026-12-07T20:41:05+00:00",
        "kind": "lm-eval",
        "scores": [{"task": "hellaswag", "metric": "acc", "value": 0.25, "stderr": 0.01, "n": 100,
                    "chance": 0.25, "baseline": None}],
        "raw": {"results": {}},
    }  # fmt: skip
    assert json.loads(second.read_text())["created"] == record["created"]
    with pytest.raises(ValueError, match="no field 'chanse'"):
        score("x", "acc", 1.0, chanse=0.5)
