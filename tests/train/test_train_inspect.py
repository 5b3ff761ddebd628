"""inspect_text and compare_runs on two tiny trained runs (a GPT-2 and a Llama-style model)."""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import quick_config, story
from slm_model import attention_maps, logit_lens, token_surprise, top_next_tokens
from slm_train import Run, RunError, compare_runs, inspect_text, train

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    """Two runs that differ in architecture and learning rate, trained for a few steps.

    On one thread: the models are tiny, and a busy machine stalls two spinning threads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("inspect")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n<|endoftext|>\n".join(story(i) for i in range(40)) + "\n")
    short = dict(max_steps=4, warmup_steps=2, eval_interval=4, log_interval=1, sample_tokens=0)
    gpt = train(quick_config(tmp, corpus, out_dir=str(tmp / "gpt"), **short)).run_dir
    llama = quick_config(
        tmp, corpus, out_dir=str(tmp / "llama"), preset="llama-tiny", learning_rate=1e-3, **short
    )
    yield gpt, train(llama).run_dir
    torch.set_num_threads(threads)


@pytest.mark.parametrize("which", [0, 1])
def test_inspect_text_gives_the_model_functions_numbers(runs, which, tmp_path):
    run = Run(runs[which])
    result = inspect_text(run, "The cat sat on the mat", at=2, top_k=4, out=tmp_path)
    model, tokenizer = run.load_model(), run.tokenizer()
    ids = tokenizer.encode("The cat sat on the mat")
    assert result.token_ids == ids and "".join(result.tokens) == "The cat sat on the mat"
    assert result.surprise == pytest.approx(token_surprise(model, ids).tolist(), abs=1e-6)
    expected = top_next_tokens(model, ids, 4, at=2)
    assert result.at == 2 and [c.id for c in result.next_tokens] == expected.token_ids
    lens = logit_lens(model, ids, 3)
    assert [[c.id for c in guesses] for guesses in result.lens[-1]] == lens.token_ids[-1].tolist()
    assert result.lens_rows == ["embeddings", "block 0", "block 1"]
    torch.testing.assert_close(result.attention, attention_maps(model, ids))
    assert [p.name for p in result.plots] == ["attention.png", "next_tokens.png"]
    assert all(p.read_bytes().startswith(PNG) for p in result.plots)
    data = json.loads(json.dumps(result.to_dict()))
    assert len(data["attention"]["weights"]) == model.config.n_layer


def test_inspect_text_narrows_to_a_layer_and_head(runs, tmp_path):
    result = inspect_text(runs[1], "The dog ran", layer=1, head=3, out=tmp_path)
    weights = result.to_dict()["attention"]
    assert weights["layers"] == [1] and weights["heads"] == [3]
    tokens = len(result.tokens)
    assert torch.tensor(weights["weights"]).shape == (1, 1, tokens, tokens)
    assert (tmp_path / "attention.png").read_bytes().startswith(PNG)


def test_inspect_text_bad_input(runs):
    with pytest.raises(
        ValueError, match=r"layer 2 does not exist: this model has 2 layers, 0\.\.1"
    ):
        inspect_text(runs[0], "The cat", layer=2)
    with pytest.raises(ValueError, match=r"head 4 does not exist: this model has 4 heads, 0\.\.3"):
        inspect_text(runs[1], "The cat", head=4)
    with pytest.raises(ValueError, match="outside the text's"):
        inspect_text(runs[0], "The cat", at=50)
    with pytest.warns(
        UserWarning, match="more than the model's context of 32; inspecting the last"
    ):
        long = inspect_text(runs[0], " ".join(["the cat sat on the mat"] * 20))
    assert len(long.tokens) == 32 and long.dropped > 0


def test_a_classifier_run_is_refused(runs, tmp_path):
    classifier = tmp_path / "classifier"
    shutil.copytree(runs[0], classifier)
    config = json.loads((classifier / "config.json").read_text())
    config = {k: v for k, v in config.items() if k != "checksum"} | {"kind": "classifier"}
    (classifier / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="is a classifier, not a text generator"):
        inspect_text(classifier, "The cat")


def test_compare_runs_table_and_plot(runs, tmp_path):
    comparison = compare_runs(runs, out=tmp_path / "compare.png", prompt="The cat")
    assert comparison.plot.read_bytes().startswith(PNG)
    gpt, llama = comparison.runs
    assert (gpt.name, llama.name) == ("gpt", "llama")
    assert comparison.differences["model.pos"] == ["learned", "rope"]
    assert comparison.differences["train.learning_rate"] == [3e-3, 1e-3]
    assert "train.out_dir" not in comparison.differences  # always differs, says nothing
    assert "model.n_layer" not in comparison.differences  # the same in both
    records = Run(runs[0]).metrics()
    evals = [m["val_loss"] for m in records if m["type"] == "eval"]
    speeds = [m["tokens_per_s"] for m in records if m["type"] == "step"]
    assert gpt.best_val_loss == min(evals) and gpt.tokens_per_s == statistics.median(speeds)
    assert gpt.parameters == Run(runs[0]).summary().parameters != llama.parameters
    assert gpt.tokens == 4 * 8 * 32
    assert all(isinstance(s.sample, str) and s.sample for s in comparison.runs)
    again = compare_runs(runs, prompt="The cat")
    assert [s.sample for s in again.runs] == [s.sample for s in comparison.runs]  # seeded
    assert again.plot is None


def test_a_run_without_metrics_is_compared_on_what_it_has(runs, tmp_path):
    """An imported run has no metrics.jsonl: its size, settings and samples still compare."""
    empty = tmp_path / "empty"
    shutil.copytree(runs[0], empty)
    (empty / "metrics.jsonl").unlink()
    comparison = compare_runs([runs[0], empty], out=tmp_path / "c.png", prompt="The cat")
    trained, bare = comparison.runs
    assert (bare.tokens, bare.elapsed, bare.best_val_loss, bare.tokens_per_s) == (None,) * 4
    assert bare.parameters == trained.parameters and bare.sample == trained.sample
    assert comparison.plot == tmp_path / "c.png"  # the trained run's curves
    alone = compare_runs([empty, empty], out=tmp_path / "none.png")
    assert alone.plot is None and not (tmp_path / "none.png").exists()


def test_compare_runs_bad_input(runs):
    with pytest.raises(ValueError, match="at least two runs"):
        compare_runs([runs[0]])
