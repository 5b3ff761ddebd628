"""slm's lm-eval model against lm-eval's own `hf` model on the run's transformers export.

The same three local tasks (multiple choice with one context longer than the
window, rolling log-likelihood over several windows, generation up to a stop
string) go through lm-eval's evaluator twice: with `slm` (batched, padded) and
with `hf` (one at a time) on the folder `export_hf` wrote. Every example's
log-likelihood must agree within 1e-4, every generation and accuracy exactly.
"""

from __future__ import annotations

import json

import pytest
from harness_tasks import TASKS
from slm_train import Run

pytest.importorskip("lm_eval")


def _hf(hf_folder, tasks_folder, names, **options):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(tasks_folder), include_defaults=False)
    return simple_evaluate(
        model="hf", model_args=f"pretrained={hf_folder},dtype=float32", tasks=list(names),
        batch_size=1, device="cpu", task_manager=manager, log_samples=True, **options,
    )  # fmt: skip


def _responses(samples: list[dict]) -> list:
    """Each example's answers from the model, in document order: per choice (log-likelihood,
    is-greedy), a document's log-likelihood, or the generated text."""
    ordered = sorted(samples, key=lambda sample: sample["doc_id"])
    return [[answer for (answer, *_) in sample["resps"]] for sample in ordered]


def _assert_same(ours: list, theirs: list) -> None:
    assert len(ours) == len(theirs)
    for mine, reference in zip(ours, theirs, strict=True):
        for a, b in zip(mine, reference, strict=True):
            if isinstance(a, str):
                assert a == b
            elif isinstance(a, tuple):  # (log-likelihood, is greedy)
                assert a[0] == pytest.approx(b[0], abs=1e-4) and a[1] == b[1]
            else:
                assert a == pytest.approx(b, abs=1e-4)


def test_every_example_scores_as_with_lm_evals_hf_model(lm_eval_setup):
    from slm_eval import evaluate_tasks

    runs, tasks = lm_eval_setup
    run, hf = runs["pre-trained"]
    tokenizer = Run(run).tokenizer()
    documents = [json.loads(line)["text"] for line in (tasks / "rolling.jsonl").open()]
    assert all(len(tokenizer.encode(text)) > 64 for text in documents)  # several windows each
    ours = evaluate_tasks(run, list(TASKS), include_path=tasks, batch_size=4, device="cpu")
    theirs = _hf(hf, tasks, TASKS)
    for task in TASKS:
        _assert_same(_responses(ours.samples[task]), _responses(theirs["samples"][task]))
    by_metric = {(s["task"], s["metric"]): s for s in ours.scores}
    for metric in ("acc", "acc_norm"):
        expected = theirs["results"]["slm_choice"][f"{metric},none"]
        assert by_metric["slm_choice", metric]["value"] == expected
        assert by_metric["slm_choice", metric]["chance"] == pytest.approx(1 / 4)
        assert by_metric["slm_choice", metric]["n"] == 6
    expected = theirs["results"]["slm_rolling"]["bits_per_byte,none"]
    assert by_metric["slm_rolling", "bits_per_byte"]["value"] == pytest.approx(expected, rel=1e-5)
    generated = [answer for (answer,) in _responses(ours.samples["slm_generate"])]
    assert all(generated) and not any("." in text for text in generated)  # cut at the stop


def test_a_chat_runs_template_is_the_one_transformers_applies(lm_eval_setup):
    """--apply_chat_template: slm renders the run's template and reads its markers as special
    tokens; hf applies the exported tokenizer's template. Same prompts, same scores."""
    from slm_eval import evaluate_tasks

    runs, tasks = lm_eval_setup
    run, hf = runs["chat"]
    names = ["slm_choice", "slm_generate"]
    ours = evaluate_tasks(
        run, names, include_path=tasks, limit=2, apply_chat_template=True, device="cpu"
    )
    theirs = _hf(hf, tasks, names, limit=2, apply_chat_template=True)
    for task in names:
        prompt = ours.samples[task][0]["arguments"][0][0]
        assert prompt.startswith("<|im_start|>user\n") and "<|im_start|>assistant\n" in prompt
        assert prompt == theirs["samples"][task][0]["arguments"][0][0]
        _assert_same(_responses(ours.samples[task]), _responses(theirs["samples"][task]))
