"""`slm-cli report`: the report card of a pre-trained run (docs/report.md's example, run as
written), of a chat run with its base, of an imported run, and of runs with damaged files (a
line each, never a traceback)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import struct
from pathlib import Path

from benchmark_runs import pretrained_run
from chat_runs import reply_chain, scripted_model
from slm_cli.main import app
from slm_train import Run, save_checkpoint

PAGE = Path(__file__).resolve().parents[2] / "docs" / "report.md"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIRST = ["Environment", "Stages and wall time", "Tokenizer"]  # every report's first sections


def sections(markdown: str) -> list[str]:
    return re.findall(r"^## (.+)$", markdown, re.MULTILINE)


def assert_pictures_are_pngs(run: Path, markdown: str) -> list[str]:
    """Every image the report links to is a PNG in the run, at least 100 x 100 pixels."""
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    for link in links:
        data = (run / link).read_bytes()
        assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 100 and height >= 100
    return links


def test_the_pages_example_writes_a_report_with_every_section(tmp_path, monkeypatch, runner):
    """docs/report.md's Python block and `uv run slm-cli` lines, run as written on runs/first
    (made in a second here, where the page trains it for minutes)."""
    run = pretrained_run(tmp_path, metrics=True, name="runs/first")
    monkeypatch.chdir(tmp_path)
    page = PAGE.read_text(encoding="utf-8")
    [python] = re.findall(r"```python\n(.*?)```", page, re.DOTALL)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(python, str(PAGE), "exec"), {})
    assert re.search(
        r"bpb +bits_per_byte +\d\.\d{3}  chance \d\.\d{3}  unigram", printed.getvalue()
    )
    commands = [
        c.split(" #")[0].strip() for c in re.findall(r"^uv run slm-cli (.+)$", page, re.MULTILINE)
    ]
    assert commands[0] == "train --out runs/first"  # done above, in a second
    [result] = [runner.invoke(app, shlex.split(command)) for command in commands[1:]]
    assert result.exit_code == 0, result.output
    markdown = (run.path / "report.md").read_text(encoding="utf-8")
    pretraining = "Pre-training (`runs/first`)"
    assert sections(markdown) == [*FIRST, pretraining, "Evaluations", "Samples"]
    pictures = ["report/pre-training-loss.png", "report/evaluations.png"]
    assert assert_pictures_are_pngs(run.path, markdown) == pictures
    assert "| bpb | bits_per_byte |" in markdown and "| cloze | acc_norm |" in markdown
    assert "**tokens** | 1,280 |" in markdown and "**steps** | 20 |" in markdown
    assert "best 3.2000 (step 20)" in markdown  # the lowest val_loss of write_metrics
    assert "**The**" in markdown and "Problems" not in markdown
    assert "Evaluations" in result.output and "wrote runs/first/report.md" in result.output


def test_a_chat_run_reports_the_pretraining_it_was_tuned_from(tmp_path, runner):
    base = pretrained_run(tmp_path, metrics=True)
    tokenizer = base.tokenizer()
    says = scripted_model(tokenizer, reply_chain(tokenizer, "I am the old dog."), block_size=16)
    chat = Run.create(
        tmp_path / "chat",
        model_config=says.config,
        train_config={
            "epochs": 1,
            "learning_rate": 3e-4,
            "precision": "fp32",
            "batch_size": 8,
            "grad_accum_steps": 1,
        },
        tokenizer_file=base.path / "tokenizer.json",
        tokenizer_info=base.config["tokenizer"],
        data_info={"base": str(base.path), "source": "builtin", "train": 90, "val": 5, "test": 5},
        extra={"kind": "chat", "prompt_format": "chatml"},
    )
    save_checkpoint(chat.path / "best", says, {"step": 4})
    records = [
        {"type": "eval", "step": 4, "tokens": 512, "epoch": 1.0, "train_loss": 2.5,
         "val_loss": 2.75, "elapsed": 3.0},
        {"type": "test", "test_loss": 2.875},
    ]  # fmt: skip
    (chat.path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = runner.invoke(app, ["report", str(chat.path), "--quiet"])
    assert result.exit_code == 0, result.output
    markdown = (chat.path / "report.md").read_text(encoding="utf-8")
    assert f"Pre-training (`{base.path}`)" in sections(markdown)
    assert f"Chat fine-tuning (`{chat.path}`)" in sections(markdown)
    assert "| chat fine-tuning |" in markdown and "test loss 2.8750" in markdown
    assert assert_pictures_are_pngs(chat.path, markdown) == [
        "report/pre-training-loss.png", "report/chat-fine-tuning-loss.png"]  # fmt: skip
    assert "**Who are you?** (greedy)\n\n```text\nI am the old dog.\n```" in markdown


def test_an_imported_run_gets_the_parts_that_apply(tmp_path, runner):
    base = pretrained_run(tmp_path)
    folder = tmp_path / "hf"
    imported = Run.create(  # as export/import_hf.py writes one
        tmp_path / "imported",
        model_config=base.model_config,
        train_config={"epochs": 0, "learning_rate": 0.0, "precision": "fp32"},
        tokenizer_file=base.path / "tokenizer.json",
        tokenizer_info={"spec": f"hf:{folder}", "vocab_size": 300, "eot_id": 256},
        data_info={
            "source": f"Hugging Face folder {folder}",
            "dir": str(folder),
            "train": 0,
            "val": 0,
            "test": 0,
        },
        extra={"kind": "imported"},
    )
    save_checkpoint(imported.path / "best", base.load_model(), {"imported_from": str(folder)})
    result = runner.invoke(app, ["report", str(imported.path), "--no-samples", "-q"])
    assert result.exit_code == 0, result.output
    markdown = (imported.path / "report.md").read_text(encoding="utf-8")
    imported_model = f"Imported model (`{imported.path}`)"
    assert sections(markdown) == [*FIRST, imported_model, "Evaluations"]
    assert f"**imported from** | {folder} |" in markdown
    assert "no held-out text" in markdown and "None yet" in markdown
    assert "Problems" not in markdown and "![" not in markdown


def test_damaged_files_cost_a_line_each_never_a_traceback(tmp_path, runner):
    assert "Example" in runner.invoke(app, ["report", "--help"]).output
    run = pretrained_run(tmp_path, metrics=True)
    (run.path / "evals").mkdir()
    (run.path / "evals" / "20261207-120000-builtin.json").write_text("{not json")
    (run.path / "evals" / "20261207-120001-lm-eval.json").write_text('{"scores": [1, 2]}')
    (tmp_path / "data" / "meta.json").write_text("{")  # the held-out split is unreadable
    result = runner.invoke(app, ["report", str(run.path), "--no-samples", "-q"])
    assert result.exit_code == 0, result.output
    problems = (run.path / "report.md").read_text().split("## Problems\n\n")[1].splitlines()
    assert len(problems) == 3
    assert problems[0].startswith("- Tokenizer: left out") and "meta.json is damaged" in problems[0]
    assert "20261207-120000-builtin.json is not an evaluation record" in problems[1]
    assert "20261207-120001-lm-eval.json is not an evaluation record" in problems[2]
    missing = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "error: no run directory at" in missing.output
    assert "Traceback" not in missing.output
