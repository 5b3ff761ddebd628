"""`slm-cli import hf OWNER/NAME`, through the fake hub, then `generate` and `chat` on the run."""

from __future__ import annotations

import io

import pytest
from fakehub import fake_hub  # noqa: F401  (a fixture)
from hf_folders import repo_files, tiny_hub_model
from rich.console import Console
from slm_cli.main import app
from typer.testing import CliRunner

transformers = pytest.importorskip("transformers")


def test_import_a_hub_id_then_generate_and_chat(fake_hub, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    config = transformers.Qwen3Config(
        vocab_size=304, max_position_embeddings=64, hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
    )  # fmt: skip
    folder = tiny_hub_model(tmp_path / "qwen3", config)
    fake_hub.add_repo("me/tiny-qwen3", repo_files(folder), "models")
    runner = CliRunner()

    def ok(*args, input=None):
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == 0, result.output
        return result.output

    assert "created" in ok("import", "hf", "me/tiny-qwen3", "--out", "runs/q")
    assert ok("generate", "the cat", "--run", "runs/q", "--max-new-tokens", "3").strip()
    chat = ok("chat", "--run", "runs/q", "--max-tokens", "2", input="Hi\n/quit\n")
    assert chat.count("model> ") == 1
    missing = runner.invoke(app, ["import", "hf", "me/nothing", "--out", "runs/n"])
    assert missing.exit_code == 1
    assert missing.output.count("\n") == 1 and "no model me/nothing on the hub" in missing.output


def test_the_download_bar_draws_only_once_bytes_come():
    from slm_cli.export_commands import download_bar

    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=100)
    with download_bar(console):
        pass
    assert output.getvalue() == ""  # nothing downloaded (a cached model): no bar, no blank line
    with download_bar(console) as progress:
        progress(1_000_000, 4_000_000)
        progress(4_000_000, 4_000_000)
    assert "downloading" in output.getvalue() and "4.0/4.0 MB" in output.getvalue()
