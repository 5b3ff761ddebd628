"""slm-cli inspect and compare end to end, on two tiny runs trained once for the module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import quick_config, story
from slm_cli.main import app
from slm_train import inspect_text, train
from typer.testing import CliRunner

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and never stalls
    tmp = tmp_path_factory.mktemp("cli-inspect")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n<|endoftext|>\n".join(story(i) for i in range(40)) + "\n")
    short = dict(max_steps=4, warmup_steps=2, eval_interval=4, log_interval=1, sample_tokens=0)
    first = train(quick_config(tmp, corpus, out_dir=str(tmp / "gpt"), **short)).run_dir
    second = quick_config(tmp, corpus, out_dir=str(tmp / "llama"), preset="llama-tiny", **short)
    yield first, train(second).run_dir
    torch.set_num_threads(threads)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def one_red_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_inspect_prints_surprise_next_tokens_and_lens_on_80_columns(runs, tmp_path):
    result = invoke("inspect", "The cat sat on the mat", "--run", runs[1], "--out", tmp_path)
    assert result.exit_code == 0, result.output
    out = result.output
    flat = " ".join(out.split())  # rich wraps at 80 columns, where a long tmp path ends
    assert "The cat sat on the mat" in flat and "coloured by surprise" in flat
    assert "0-1" in out and "7+" in out and "most surprising" in out  # the legend
    assert "Next token" in out and "Logit lens" in out
    assert all(row in out for row in ("embeddings", "block 0", "block 1"))
    for name in ("attention.png", "next_tokens.png"):
        assert f"wrote {tmp_path / name}" in out.replace("\n", "")
        assert (tmp_path / name).read_bytes().startswith(PNG)
    assert max(len(line) for line in out.splitlines()) <= 80


def test_inspect_json_has_the_librarys_numbers(runs):
    result = invoke("inspect", "The dog ran", "--run", runs[0], "--json", "--top-k", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    expected = inspect_text(runs[0], "The dog ran", top_k=3).to_dict()
    assert data["next_tokens"] == expected["next_tokens"]
    assert (
        data["surprise"] == expected["surprise"]
        and len(data["surprise"]) == len(data["tokens"]) - 1
    )
    assert set(data["logit_lens"]) == {"embeddings", "block 0", "block 1"}
    assert data["plots"] == []


def test_inspect_one_attention_map(runs, tmp_path):
    result = invoke(
        "inspect", "The dog", "--run", runs[0], "--layer", "1", "--head", "0", "--out", tmp_path
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "attention.png").read_bytes().startswith(PNG)


def test_inspect_bad_input_one_line_each(runs):
    assert "layer 5 does not exist" in one_red_line(
        invoke("inspect", "The cat", "--run", runs[0], "--layer", "5")
    )
    assert "head 2 does not exist: this model has 2 heads" in one_red_line(
        invoke("inspect", "The cat", "--run", runs[0], "--head", "2")
    )
    assert "outside the text's" in one_red_line(
        invoke("inspect", "The cat", "--run", runs[0], "--at", "9")
    )
    long = invoke("inspect", "the cat sat " * 40, "--run", runs[0])
    assert long.exit_code == 0
    assert "warning: the text has" in long.output and "inspecting the last 32" in long.output


def test_compare_writes_the_plot_and_the_table(runs, tmp_path):
    png = tmp_path / "curves.png"
    result = invoke("compare", *runs, "--out", png, "--prompt", "The cat", "--max-new-tokens", "5")
    assert result.exit_code == 0, result.output
    assert png.read_bytes().startswith(PNG)
    out = result.output
    for row in ("parameters", "tokens/s", "best val loss", "model.pos", "learned", "rope"):
        assert row in out, row
    assert "'The cat' continued by each run" in out and "loss curves" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_compare_a_run_without_metrics(runs, tmp_path):
    """A run not trained here (imported, say) shows "-" for what it lacks, not an error."""
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_bytes((runs[0] / "config.json").read_bytes())
    result = invoke("compare", runs[0], bare, "--out", tmp_path / "x.png")
    assert result.exit_code == 0, result.output
    best = next(line for line in result.output.splitlines() if "best val loss" in line)
    assert best.rstrip(" │").endswith("-") and "(step" in best
    assert (tmp_path / "x.png").exists()
    result = invoke("compare", bare, bare, "--out", tmp_path / "y.png")
    assert result.exit_code == 0, result.output
    assert "no loss curves: none of these runs was trained here" in result.output
