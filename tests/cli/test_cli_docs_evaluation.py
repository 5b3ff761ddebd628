"""docs/evaluation.md's offline example, run as written: the page's files are saved where it
says, then each `slm-cli eval` and `python -m slm_eval.harness` line that uses them runs.

The run the page calls runs/base is a tiny chat run made here (training one is not
what this test is about); the lines that download benchmarks are not run.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from chat_runs import make_chat_run
from slm_cli.main import app

pytest.importorskip("lm_eval")

PAGE = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"


def saved_files(text: str) -> dict[str, str]:
    """The page's "Save as `PATH`:" blocks."""
    return dict(re.findall(r"Save as `([^`]+)`:\n\n```\w*\n(.*?)```", text, re.DOTALL))


def offline_commands(text: str) -> list[list[str]]:
    """The page's `uv run ...` lines that read the local tasks (--include[-_]path)."""
    lines = re.findall(r"^uv run (.+)$", text, re.MULTILINE)
    return [shlex.split(line.split(" #")[0]) for line in lines if "include" in line]


def test_the_pages_local_task_runs_as_written(workdir, runner, monkeypatch):
    from slm_eval.harness import main as harness

    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(workdir / "datasets-cache"))
    text = PAGE.read_text(encoding="utf-8")
    for path, content in saved_files(text).items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content, encoding="utf-8")
    run = make_chat_run("runs/base").path
    commands = offline_commands(text)
    assert [c[0] for c in commands] == ["slm-cli", "slm-cli", "python"]
    for command in commands:
        if command[0] == "slm-cli":
            result = runner.invoke(app, command[1:], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            assert "animals" in result.output and "acc" in result.output
        else:
            assert command[1:3] == ["-m", "slm_eval.harness"]
            harness(command[3:])
    kept = sorted((run / "evals").glob("*-lm-eval.json"))
    assert len(kept) == 2
    scores = [json.loads(path.read_text())["scores"] for path in kept]
    assert scores[0] == scores[1] and scores[0][0]["n"] == 3
    files = sorted(
        (run / "lm-eval").glob("*/results_*.json"), key=lambda p: p.parent.name != "runs__base"
    )
    ours, theirs = files  # slm-cli's is named after the run; lm-eval names the other itself
    assert ours.parent.name == "runs__base"
    acc = json.loads(ours.read_text())["results"]["animals"]["acc,none"]
    assert json.loads(theirs.read_text())["results"]["animals"]["acc,none"] == acc
    assert acc == next(s["value"] for s in scores[0] if s["metric"] == "acc")
