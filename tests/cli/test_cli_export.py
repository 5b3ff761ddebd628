"""slm-cli export and slm-cli import hf, end to end on a tiny run (issue 12)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers import quick_config, story
from slm_cli.main import app
from slm_train import Run, export_hf, import_hf, train
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


def test_eval_of_an_imported_run_asks_for_data(run_dir, tmp_path):
    """An imported run has no token files: eval asks for --data, then matches the original."""
    back = import_hf(export_hf(run_dir, tmp_path / "hf"), tmp_path / "back").path
    runner = CliRunner()
    refused = runner.invoke(app, ["eval", "--run", str(back)])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert (
        "no validation split of its own" in refused.output
        and "some text with --data" in refused.output
    )
    text = tmp_path / "text.txt"
    text.write_text(" ".join(story(i) for i in range(8)))

    def loss(run: Path) -> float:
        args = ["eval", "--run", str(run), "--data", str(text), "--max-batches", "2"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return float(re.search(r"│\s*[\d,]+\s*│\s*([\d.]+)\s*│", result.output).group(1))

    assert loss(back) == pytest.approx(loss(run_dir), abs=1e-4)


def test_gpt2_as_the_hub_serves_it_imports_and_works(tmp_path, monkeypatch):
    """The hub's GPT-2 tokenizer.json has <|endoftext|> in the vocabulary and as an added token."""
    import json

    from hf_folders import gpt2_hub_folder
    from slm_tokenizer import gpt2
    from slm_tokenizer.gpt2 import tiktoken_gpt2

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    folder = gpt2_hub_folder(tmp_path / "hub-gpt2")
    hub = json.loads((folder / "tokenizer.json").read_text())
    assert hub["model"]["vocab"]["<|endoftext|>"] == 50256
    assert [(t["id"], t["special"]) for t in hub["added_tokens"]] == [(50256, True)]

    runner = CliRunner()
    result = runner.invoke(app, ["import", "hf", str(folder), "--out", "runs/gpt2"])
    assert result.exit_code == 0, result.output
    run = Run("runs/gpt2")
    tokenizer = run.tokenizer()
    assert tokenizer.vocab == gpt2().vocab and tokenizer.eot_id == 50256
    text = "Hello world<|endoftext|> It's 2026, naïve café 😀!\n\n  x"
    assert tokenizer.encode(text, allowed_special="all") == tiktoken_gpt2().encode(
        text, allowed_special="all"
    )

    def ok(*args, input=None):
        result = runner.invoke(app, [str(a) for a in args], input=input)
        assert result.exit_code == 0, result.output
        return result.output

    generated = ok("generate", "Hello", "--run", "runs/gpt2", "--max-new-tokens", "3")
    assert generated.startswith("Hello")
    chat = ok("chat", "--run", "runs/gpt2", "--max-tokens", "2", input="Hi\n/quit\n")
    assert chat.count("model> ") == 1
    rows = "".join(f"the {w} sat,{w}\n" for w in ["cat", "dog"] * 10)
    (tmp_path / "pets.csv").write_text("text,label\n" + rows)
    records = [{"instruction": "Say it.", "input": w, "output": w} for w in ["cat", "dog"] * 5]
    (tmp_path / "say.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    tiny = ["--run", "runs/gpt2", "--epochs", "1", "--max-steps", "2", "--batch-size", "4"]
    ok("finetune", "classify", "--data", "pets.csv", "--out", "runs/clf", *tiny)
    assert ok("classify", "the cat sat", "--run", "runs/clf").split()[0] in ("cat", "dog")
    ok("finetune", "instruct", "--data", "say.jsonl", "--out", "runs/inst", "--max-new-tokens", "2",
       *tiny)  # fmt: skip
    ok("generate", "Say it.", "--run", "runs/inst", "--max-new-tokens", "2")


def test_import_help_names_every_architecture_it_imports():
    from slm_train.export.import_hf import MODEL_TYPES

    names = {"gpt2": "GPT-2", "llama": "Llama", "qwen2": "Qwen2", "qwen3": "Qwen3"}
    assert set(MODEL_TYPES) == set(names)  # a new architecture needs its name here and in --help
    result = CliRunner().invoke(app, ["import", "hf", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert [name for name in names.values() if name not in result.output] == []
