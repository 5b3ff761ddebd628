"""`slm-cli import hf OWNER/NAME`, through the fake hub, then `generate` and `chat` on the run."""

from __future__ import annotations

import io
import json

import pytest
from fakehub import fake_hub  # noqa: F401  (a fixture)
from hf_folders import llama3_style_folder, repo_files, tiny_hub_model
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


def test_an_imported_llama32_with_smollm2s_tokenizer_is_inspected_evaluated_and_lora_tuned(
    fake_hub,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """The issue's workflow on a tiny stand-in: a Llama 3.2-style model (llama3 RoPE scaling)
    with SmolLM2's tokenizer layout, imported from the hub, then `inspect`, `eval --data`,
    LoRA chat tuning, `chat` with the tuned run, `compare` of the two, `export` back to
    transformers, and classification and instruction tuning from the import."""
    import json

    monkeypatch.chdir(tmp_path)
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 32}  # fmt: skip
    config = transformers.LlamaConfig(
        vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=True, rope_scaling=scaling,
    )  # fmt: skip
    folder = tiny_hub_model(tmp_path / "model", config, smollm2_layout=True)
    fake_hub.add_repo("me/tiny-smol", repo_files(folder), "models")
    turn = [{"role": "user", "content": "where is the cat?"},
            {"role": "assistant", "content": "the cat sat on the mat."}]  # fmt: skip
    lines = [json.dumps({"messages": turn}) for _ in range(40)]
    (tmp_path / "talk.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "text.txt").write_text("the cat sat on the mat. a dog ran to the park. " * 100)
    rows = [json.dumps({"text": f"the {w} sat", "label": w}) for w in ("cat", "dog") * 10]
    (tmp_path / "labels.jsonl").write_text("\n".join(rows) + "\n")
    asks = [{"instruction": "Where is the cat?", "output": "On the mat."}] * 20
    (tmp_path / "asks.jsonl").write_text("\n".join(json.dumps(a) for a in asks) + "\n")
    runner = CliRunner()

    def ok(*args, input=None):
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == 0, result.output
        return result.output

    ok("import", "hf", "me/tiny-smol", "--out", "runs/smol")
    assert "block 1" in ok("inspect", "the cat sat on the mat", "--run", "runs/smol")
    assert "text.txt" in ok("eval", "--run", "runs/smol", "--data", "text.txt")
    tune = ["--data", "talk.jsonl", "--lora-rank", "4", "--max-steps", "4", "--eval-interval", "2"]
    ok("finetune", "chat", "--run", "runs/smol", *tune, "--out", "runs/tuned")
    chat = ok("chat", "--run", "runs/tuned", "--max-tokens", "3", input="Hi\n/quit\n")
    assert chat.count("model> ") == 1
    compared = ok("compare", "runs/smol", "runs/tuned", "--out", "c.png")
    assert "lora" in compared and (tmp_path / "c.png").exists()  # the tuned run's curves
    short = ["--max-steps", "1", "--batch-size", "4"]
    ok("finetune", "classify", "--run", "runs/smol", "--data", "labels.jsonl", *short,
       "--out", "runs/labels")  # fmt: skip
    ok("finetune", "instruct", "--run", "runs/smol", "--data", "asks.jsonl", *short,
       "--out", "runs/asks")  # fmt: skip
    ok("export", "runs/tuned", "--format", "hf", "--out", "exported")
    tuned = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "exported")
    assert tuned.config.rope_scaling["rope_type"] == "llama3"


def test_chat_and_inspect_use_an_imported_models_own_template(tmp_path, monkeypatch):
    """A Llama 3-style import chats through its own template: the prompt is the template's
    (as transformers renders it), and a reply stops at <|eot_id|>, never shown."""
    monkeypatch.chdir(tmp_path)
    folder = llama3_style_folder(tmp_path / "llama3")
    runner = CliRunner()
    result = runner.invoke(app, ["import", "hf", str(folder), "--out", "runs/l3"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["chat", "--run", "runs/l3", "--max-tokens", "6", "--seed", "0",
                                 "--system", "be brief"], input="hi\nagain\n/quit\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.count("model> ") == 2 and "<|" not in result.output
    inspected = runner.invoke(app, ["inspect", "hi", "--run", "runs/l3", "--json"])
    tokens = [t["token"] for t in json.loads(inspected.output)["tokens"]]
    assert tokens[0] == "<|begin_of_text|>"
    assert "".join(tokens).endswith("user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>"
                                    "assistant<|end_header_id|>\n\n")  # fmt: skip
