"""Cloze: the last word of a held-out sentence, chosen among K candidates.

LAMBADA asks a model for the last word of a passage; HellaSwag has it pick
the ending among several. This task does both on text the run never
trained on: every sentence of the held-out split that ends in a word (of
three letters or more) becomes an item whose context is that sentence and up
to `PREVIOUS` sentences before it, and whose candidates are the true word and
K - 1 others drawn from the words that end the other held-out sentences (as
often as they end one, so distractors are as common as real endings). A
fixed seed per item makes the items the same on every machine.

The model picks the candidate with the highest log-likelihood after the
context (`acc`), or per byte of the candidate (`acc_norm`, lm-eval's
length-normalised accuracy). Chance is 1/K; the baseline is the unigram
model of the training tokens, which picks the most common word whatever
the context: what a model scores above it, it owes to context.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..evals import mean_stderr, score
from .context import TaskContext
from .loglik import continuation_log_likelihoods

CHOICES = 4  # K
PREVIOUS = 1  # sentences of context before the one whose last word is asked
DEFAULT_ITEMS = 1000  # items scored when no limit is given: K forward passes each
SENTENCE = re.compile(r"[^.!?]+[.!?]")
LAST_WORD = re.compile(r"\s([A-Za-z]{3,})[.!?]$")
MIN_WORDS = 4  # in the sentence, so that it gives some context of its own


@dataclass(frozen=True)
class ClozeItem:
    context: str
    choices: tuple[str, ...]  # continuations: " word"
    answer: int  # index of the true one


def cloze_items(documents: Sequence[str], choices: int = CHOICES, seed: int = 0) -> list[ClozeItem]:
    """Every eligible sentence of `documents` as an item; the same for the same arguments."""
    found = [found for document in documents for found in _sentence_ends(document)]
    pool = [word for _, word in found]
    if len({word.lower() for word in pool}) < choices:
        return []
    items = []
    for index, (context, word) in enumerate(found):
        rng = random.Random(f"cloze/{seed}/{index}")
        others: list[str] = []
        while len(others) < choices - 1:
            other = rng.choice(pool)
            if other.lower() != word.lower() and other.lower() not in map(str.lower, others):
                others.append(other)
        answer = rng.randrange(choices)
        candidates = [*others[:answer], word, *others[answer:]]
        items.append(ClozeItem(context, tuple(f" {c}" for c in candidates), answer))
    return items


def _sentence_ends(document: str) -> list[tuple[str, str]]:
    """(context, last word) for each sentence of `document` that ends in a word."""
    spans = [m.span() for m in SENTENCE.finditer(document)]
    ends = []
    for i, (start, end) in enumerate(spans):
        sentence = document[start:end]
        last = LAST_WORD.search(sentence)
        if last is None or len(sentence.split()) < MIN_WORDS:
            continue
        context = document[spans[max(0, i - PREVIOUS)][0] : start + last.start()].strip()
        ends.append((context, last.group(1)))
    return ends


def spread(items: list, limit: int) -> list:
    """At most `limit` items, evenly spaced through the list (not only its first chapters)."""
    if len(items) <= limit:
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


def cloze_task(context: TaskContext, limit: int | None) -> list[dict]:
    """acc and acc_norm on the held-out cloze items, beside 1/K and the unigram model."""
    items = spread(cloze_items(context.held_out.documents), limit or DEFAULT_ITEMS)
    if not items:
        raise ValueError(
            "the held-out text has too few sentences ending in a word for the cloze task"
        )
    encode = context.tokenizer.encode_ordinary
    pairs = [(encode(item.context), encode(choice)) for item in items for choice in item.choices]
    advance = context.counter("cloze", len(pairs))
    model_ll = continuation_log_likelihoods(context.model, pairs, advance=advance)
    unigram_ll = [context.unigram.log_likelihood(continuation) for _, continuation in pairs]
    model_picks, unigram_picks = _picks(items, model_ll), _picks(items, unigram_ll)
    scores = []
    for metric in ("acc", "acc_norm"):
        hits = _hits(model_picks[metric], items)
        baseline = sum(_hits(unigram_picks[metric], items)) / len(items)
        accuracy, stderr = sum(hits) / len(items), mean_stderr(hits)
        scores.append(score("cloze", metric, accuracy, n=len(items), stderr=stderr,
                            chance=1 / CHOICES, baseline=baseline))  # fmt: skip
    return scores


def _hits(picks: list[int], items: list[ClozeItem]) -> list[float]:
    return [float(pick == item.answer) for pick, item in zip(picks, items, strict=True)]


def _picks(items: list[ClozeItem], log_likelihoods: list[float]) -> dict[str, list[int]]:
    """Each item's chosen candidate, by log-likelihood and by log-likelihood per byte
    (`log_likelihoods` holds every item's candidates in turn)."""
    picks: dict[str, list[int]] = {"acc": [], "acc_norm": []}
    offset = 0
    for item in items:
        scores = log_likelihoods[offset : offset + len(item.choices)]
        offset += len(item.choices)
        per_byte = [s / len(c.encode()) for s, c in zip(scores, item.choices, strict=True)]
        picks["acc"].append(max(range(len(scores)), key=scores.__getitem__))
        picks["acc_norm"].append(max(range(len(scores)), key=per_byte.__getitem__))
    return picks
