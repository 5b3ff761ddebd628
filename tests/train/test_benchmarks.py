"""The offline tasks (slm_train.benchmarks), each against a number worked out by hand.

bpb: the model's loss summed token by token over the held-out split's text,
over its bytes; a model with zero logits scores exactly chance (a uniform
guess). cloze: a bigram model that knows every held-out sentence's last word
scores 100 % where chance is 1/4, and the unigram baseline is recomputed
from train.bin's counts. chat: a chat run that always says the same thing
scores what its checks accept of that reply.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from benchmark_runs import CLOZE_PAIRS, pretrained_run
from chat_runs import make_chat_run, scripted_chat_run, scripted_model
from slm_train import load_prepared
from slm_train.benchmarks import (
    BUILTIN_TASKS,
    BenchmarkError,
    read_evals,
    run_builtin,
    save_evaluation,
)
from slm_train.benchmarks.chat import chat_examples
from slm_train.benchmarks.cloze import cloze_items
from slm_train.benchmarks.heldout import held_out
from slm_train.benchmarks.loglik import continuation_log_likelihoods


def by_hand_bpb(run) -> tuple[float, float]:
    """(bits per byte, the unigram model's) over the whole held-out split, token by token."""
    prepared = load_prepared(run.config["data"]["dir"])
    tokens, train = prepared.tokens("val").astype(np.int64), prepared.tokens("train")
    tokenizer, model = run.tokenizer(), run.load_model()
    block = model.config.block_size
    windows = (len(tokens) - 1) // block
    counts = np.bincount(train, minlength=tokenizer.vocab_size)
    nats = unigram_nats = 0.0
    text_bytes = 0
    for w in range(windows):
        window = torch.from_numpy(tokens[w * block : (w + 1) * block + 1])
        with torch.no_grad():
            log_probs = F.log_softmax(model(window[None, :-1])[0].double(), dim=-1)
        for position, target in enumerate(window[1:].tolist()):
            if target == tokenizer.eot_id:  # stands for no text
                continue
            nats -= float(log_probs[position, target])
            unigram_nats -= math.log((counts[target] + 1) / (counts.sum() + len(counts)))
            text_bytes += len(tokenizer.decode_bytes([target]))
    return nats / math.log(2) / text_bytes, unigram_nats / math.log(2) / text_bytes


def test_bpb_is_the_loss_per_byte_worked_out_by_hand(tmp_path):
    run = pretrained_run(tmp_path)
    [result] = run_builtin(run.path, ["bpb"])
    expected, unigram = by_hand_bpb(run)
    assert result["task"] == "bpb" and result["metric"] == "bits_per_byte"
    assert result["value"] == pytest.approx(expected, rel=1e-5)
    assert result["baseline"] == pytest.approx(unigram, rel=1e-9)
    assert result["n"] > 0


def test_a_model_without_a_clue_scores_chance(tmp_path):
    run = pretrained_run(tmp_path)
    model = run.load_model()
    with torch.no_grad():
        model.lm_head.weight.zero_()  # every token equally likely
    zero = pretrained_run(tmp_path / "zero", model)
    [result] = run_builtin(zero.path, ["bpb"])
    assert result["value"] == pytest.approx(result["chance"], rel=1e-6)


def test_continuations_are_scored_as_a_whole_forward_pass_scores_them(tmp_path):
    run = pretrained_run(tmp_path)
    model = run.load_model()
    pairs = [([5, 6, 7], [8]), ([9], [10, 11, 12]), (list(range(20, 40)), [41, 42])]  # the last
    scored = continuation_log_likelihoods(model, pairs, batch_size=2)  # is cut to 16 tokens
    for (context, continuation), value in zip(pairs, scored, strict=True):
        ids = torch.tensor((context + continuation)[-17:])
        with torch.no_grad():
            log_probs = F.log_softmax(model(ids[None, :-1])[0].double(), dim=-1)
        tail = range(len(ids) - 1 - len(continuation), len(ids) - 1)
        expected = sum(float(log_probs[p, t]) for p, t in zip(tail, continuation, strict=True))
        assert value == pytest.approx(expected, abs=1e-4)


def test_cloze_items_are_the_same_every_time_and_fair(tmp_path):
    documents = held_out(pretrained_run(tmp_path)).documents
    items = cloze_items(documents)
    assert items == cloze_items(documents)
    assert items != cloze_items(documents, seed=1)
    assert len(items) == 8
    endings = {f" {word}" for _, word in CLOZE_PAIRS}
    for item in items:
        assert len(set(item.choices)) == 4 and set(item.choices) == endings
        before = item.context.split()[-1]
        assert item.choices[item.answer] == f" {dict(CLOZE_PAIRS)[before]}"
    assert len({item.answer for item in items}) > 1  # the answer is not always in one place


def test_a_model_that_knows_the_last_word_scores_everything(tmp_path):
    setup = pretrained_run(tmp_path / "setup")
    tokenizer = setup.tokenizer()
    words = [word for pair in CLOZE_PAIRS for word in pair]
    chain = [token for word in words for token in tokenizer.encode_ordinary(f" {word}")]
    knows = scripted_model(tokenizer, chain, block_size=16)
    run = pretrained_run(tmp_path, knows)
    train = load_prepared(run.config["data"]["dir"]).tokens("train")
    counts = np.bincount(train, minlength=tokenizer.vocab_size)
    acc, acc_norm = run_builtin(run.path, ["cloze"])
    assert (acc["value"], acc["chance"], acc["n"]) == (1.0, 0.25, 8)
    assert acc_norm["value"] == 1.0 and acc["stderr"] == 0.0
    # The unigram model picks the most common ending in training, whatever the context.
    common = max((counts[tokenizer.encode_ordinary(f" {w}")].sum(), w) for _, w in CLOZE_PAIRS)
    share = sum(word == common[1] for _, word in CLOZE_PAIRS) / len(CLOZE_PAIRS)
    assert acc["baseline"] == share


def test_the_chat_task_checks_replies_and_needs_a_chat_run(tmp_path):
    run = scripted_chat_run(tmp_path / "chat", "7")
    scores = run_builtin(run.path, ["chat"], limit=5)
    examples = chat_examples(5)
    skills = ("arithmetic", "counting", "spelling", "reversing")
    assert [s["task"] for s in scores] == [f"chat:{name}" for name in skills]
    for result in scores:
        checks = [e.check for e in examples if f"chat:{e.source}" == result["task"]]
        assert result["value"] == sum(check("7") for check in checks) / len(checks)
        assert result["n"] == len(checks) and result["baseline"] is None  # no training tokens
    pretrained = pretrained_run(tmp_path)
    with pytest.raises(BenchmarkError, match=r"needs a chat run.*slm-cli train --chat"):
        run_builtin(pretrained.path, ["chat"])


def test_bad_requests_get_one_line_each(tmp_path):
    with pytest.raises(
        BenchmarkError, match=r"unknown built-in task 'hellaswag'.*bpb, cloze, chat"
    ):
        run_builtin(tmp_path, ["hellaswag"])
    run = make_chat_run(tmp_path / "imported", extra={"kind": "imported"})
    with pytest.raises(BenchmarkError, match="no held-out text of its own"):
        run_builtin(run.path, ["bpb"])
    template = make_chat_run(
        tmp_path / "template", extra={"kind": "chat", "prompt_format": "template"}
    )
    with pytest.raises(BenchmarkError, match="asks its questions in ChatML"):
        run_builtin(template.path, ["chat"])
    assert set(BUILTIN_TASKS) == {"bpb", "cloze", "chat"}


def test_evaluations_are_kept_in_the_run(tmp_path):
    first = save_evaluation(tmp_path, "builtin", [{"task": "bpb", "value": 1.5}], raw={"n": 1})
    second = save_evaluation(tmp_path, "builtin", [])
    (tmp_path / "evals" / "broken.json").write_text("{", encoding="utf-8")
    records, problems = read_evals(tmp_path)
    assert first != second and first.parent == tmp_path / "evals"
    assert json.loads(first.read_text())["raw"] == {"n": 1}
    assert [r["kind"] for r in records] == ["builtin", "builtin"]
    assert len(problems) == 1 and "broken.json" in problems[0]
