"""`slm-cli eval --tasks`: lm-eval's tasks on a run, the table, lm-eval's files, the copy kept
in RUN/evals, runs imported from transformers, and one red line for each mistake."""

from __future__ import annotations

import json
import sys

import pytest
from chat_runs import make_chat_run
from harness_tasks import write_tasks
from slm_cli.main import app

pytest.importorskip("lm_eval")


@pytest.fixture
def setup(workdir, monkeypatch):
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    run = make_chat_run(workdir / "runs" / "chat")
    return run.path, write_tasks(workdir / "tasks", workdir / "datasets-cache")


def ok(runner, *args) -> str:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def one_red_line(runner, *args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


def kept(run) -> dict:
    (path,) = (run / "evals").glob("*-lm-eval.json")
    return json.loads(path.read_text())


def test_tasks_are_scored_shown_written_and_kept(setup, runner, workdir):
    run, tasks = setup
    out = ok(
        runner, "eval", "--run", run, "--tasks", "slm_choice,slm_rolling", "--include-path",
        tasks, "--limit", "3", "--batch-size", "2", "--output-path", "results", "--log-samples",
        "--num-fewshot", "1",
    )  # fmt: skip
    record = kept(run)
    assert record["kind"] == "lm-eval" and record["created"].endswith("+00:00")
    (results_file,) = (workdir / "results").glob("*/results_*.json")
    lm_evals = json.loads(results_file.read_text())
    results = lm_evals["results"]
    assert lm_evals["n-shot"] == {"slm_choice": 1, "slm_rolling": 1}
    scores = {(s["task"], s["metric"]): s for s in record["scores"]}
    assert scores["slm_choice", "acc"]["value"] == results["slm_choice"]["acc,none"]
    assert scores["slm_choice", "acc"]["n"] == 3 and scores["slm_choice", "acc"]["chance"] == 0.25
    bpb = scores["slm_rolling", "bits_per_byte"]
    assert bpb["value"] == results["slm_rolling"]["bits_per_byte,none"] and bpb["stderr"] is None
    assert record["raw"]["results"] == json.loads(json.dumps(results))
    assert {p.name.split("_2")[0] for p in results_file.parent.glob("samples_*")} == {
        "samples_slm_choice",
        "samples_slm_rolling",
    }
    assert "slm_choice" in out and "bits_per_byte" in out and f"{bpb['value']:.4f}" in out
    assert "evals" in out and "results" in out


def test_a_run_imported_from_transformers_scores_as_the_original(setup, runner, workdir):
    run, tasks = setup
    ok(runner, "export", run, "--format", "hf", "--out", "hf")
    ok(runner, "import", "hf", "hf", "--out", "runs/imported")
    both = [workdir / "runs" / "imported", run]
    for each in both:
        ok(runner, "eval", "--run", each, "--tasks", "slm_choice", "--include-path", tasks)
    imported, original = ([s["value"] for s in kept(each)["scores"]] for each in both)
    assert imported == pytest.approx(original)


def test_mistakes_get_one_line(setup, runner, workdir, monkeypatch):
    run, tasks = setup
    pretrained = make_chat_run(workdir / "runs" / "base", extra={}).path
    classifier = make_chat_run(workdir / "runs" / "spam", extra={"kind": "classifier"}).path
    common = ["--tasks", "slm_choice", "--include-path", tasks]
    line = one_red_line(runner, "eval", "--run", pretrained, *common, "--apply-chat-template")
    assert "not a chat run" in line and "finetune chat" in line
    assert "not a text generator" in one_red_line(runner, "eval", "--run", classifier, *common)
    line = one_red_line(runner, "eval", "--run", run, *common, "--data", "x.txt")
    assert "--data" in line and "--tasks" in line
    monkeypatch.setitem(sys.modules, "slm_eval", None)  # as if the extra were not installed
    line = one_red_line(runner, "eval", "--run", run, *common)
    assert "not installed" in line and "uv sync --extra eval" in line


def test_an_unknown_task_is_named_with_close_matches(setup, runner):
    """lm-eval's whole index is read for this (seconds): the name is in neither place."""
    run, tasks = setup
    line = one_red_line(runner, "eval", "--run", run, "--tasks", "slm_choise,arc_easy",
                        "--include-path", tasks)  # fmt: skip
    assert "'slm_choise'" in line and "slm_choice" in line and "ls tasks" in line


def test_slms_own_tasks_and_lm_evals_in_one_command(setup, runner, workdir):
    """bpb and cloze go to slm_train.benchmarks, the rest to lm-eval: two records, one each,
    and the built-in scores equal run_builtin's."""
    from benchmark_runs import pretrained_run
    from slm_train.benchmarks import run_builtin

    _, tasks = setup
    run = pretrained_run(workdir / "base").path
    out = ok(runner, "eval", "--run", run, "--tasks", "bpb,cloze,slm_choice", "--include-path",
             tasks, "--limit", "3")  # fmt: skip
    (builtin,) = (run / "evals").glob("*-builtin.json")
    record = json.loads(builtin.read_text())
    assert record["scores"] == run_builtin(run, ["bpb", "cloze"], limit=3)
    assert record["raw"]["seconds"] >= 0 and kept(run)["scores"][0]["task"] == "slm_choice"
    assert "bits_per_byte" in out and "cloze" in out and "slm's tasks on" in out
