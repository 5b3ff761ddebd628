"""slm-cli export and slm-cli import hf, end to end on a tiny run (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import quick_config, story
from slm_cli.main import app
from slm_train import Run, train
from typer.testing import CliRunner

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("export")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n<|endoftext|>\n".join(story(i) for i in range(40)) + "\n")
    config = quick_config(folder, corpus, max_steps=4, eval_interval=4, warmup_steps=1)
    return train(config).run_dir


def test_export_and_import_round_trip(run_dir, tmp_path):
    runner = CliRunner()
    hf = tmp_path / "hf"
    result = runner.invoke(app, ["export", str(run_dir), "--format", "hf", "--out", str(hf)])
    assert result.exit_code == 0, result.output
    assert (hf / "model.safetensors").is_file() and (hf / "tokenizer.json").is_file()

    gguf_file = tmp_path / "model.gguf"
    args = ["export", str(run_dir), "--format", "gguf", "--out", str(gguf_file), "--dtype", "f16"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert gguf_file.read_bytes()[:4] == b"GGUF"
    assert "FROM" in result.output

    back = tmp_path / "back"
    result = runner.invoke(app, ["import", "hf", str(hf), "--out", str(back)])
    assert result.exit_code == 0, result.output
    assert Run(back).model_config == Run(run_dir).model_config
    args = ["generate", "The cat", "--run", str(back), "--max-new-tokens", "3", "--seed", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "{run}", "--out", "{tmp}"], "already exists; pass --force"),
        (["export", "{run}", "--format", "onnx", "--out", "{tmp}/x"], "must be hf or gguf"),
        (["export", "{run}", "--format", "gguf", "--dtype", "q4", "--out", "{tmp}/x"], "f32, f16"),
        (["import", "hf", "{tmp}/nothing", "--out", "{tmp}/run"], "no folder at"),
    ],
)
def test_bad_input_is_one_red_line(run_dir, tmp_path, args, message):
    args = [a.format(run=run_dir, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "run").exists()


def test_eval_of_a_run_without_token_files_asks_for_data(tmp_path, monkeypatch):
    from slm_train import RunError, evaluate_run
    from slm_train.run import Run

    run = Run.__new__(Run)
    run.path = tmp_path
    run.config = {"data": {"source": "hf:folder", "dir": str(tmp_path), "train": 0}}
    monkeypatch.setattr(Run, "tokenizer", lambda self: None)
    with pytest.raises(RunError, match=r"no validation split of its own.*--data FILE"):
        evaluate_run(run)
