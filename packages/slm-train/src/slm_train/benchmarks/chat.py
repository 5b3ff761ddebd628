"""The chat tasks: a chat run's answers to held-out checkable problems, checked.

The four skills of `chat/checkable.py` (arithmetic, counting letters,
spelling, reversing a list), `PROBLEMS` held-out problems each (problems that
chat training never sees, whatever the seed), answered greedily and checked
by the same code as `train --chat`'s scorecard (`chat/scoring.py`).

Chance is the accuracy of always giving the most common answer of the
problems asked; the baseline is the unigram model's greedy reply, its most
common token over and over, checked the same way.
"""

from __future__ import annotations

from ..chat.checkable import TASKS, task_conversations
from ..chat.mixture import Example
from ..chat.scoring import score_chat
from ..data.sources import CorpusError
from ..evals import mean_stderr, score
from ..run import RunError
from .context import TaskContext
from .heldout import BenchmarkError

PROBLEMS = 40  # per skill, as the built-in mixture's test split
SEED = 1  # any seed gives held-out problems; not the mixture's, so these are other ones
MAX_REPLY_TOKENS = 64


def chat_examples(per_task: int = PROBLEMS, seed: int = SEED) -> list[Example]:
    """Held-out problems of every checkable skill, as one-question conversations."""
    return [
        Example(conversation, name, check)
        for name, task in TASKS.items()
        for conversation, check in task_conversations(task, per_task, seed, held_out=True)
    ]


def chat_task(context: TaskContext, limit: int | None) -> list[dict]:
    """Each skill's accuracy, beside the most common answer's and the unigram model's."""
    if context.run.config.get("prompt_format") == "template":
        raise BenchmarkError(
            f"the chat task asks its questions in ChatML, and {context.run.path} was imported "
            "with its own chat template; score it with lm-eval's tasks (--apply-chat-template)"
        )
    if context.run.config.get("prompt_format") != "chatml":
        kind = context.run.config.get("kind", "pre-trained")
        raise BenchmarkError(
            f"the chat task needs a chat run, and {context.run.path} is {kind}; make one with "
            "slm-cli train --chat, or slm-cli finetune chat --run RUN"
        )
    examples = chat_examples(min(limit, PROBLEMS) if limit else PROBLEMS)
    advance = context.counter("chat", len(examples))
    card = score_chat(context.model, context.tokenizer, examples, max_reply_tokens=MAX_REPLY_TOKENS)
    advance(len(examples))
    unigram = _unigram_reply(context)
    scores = []
    for name, result in card.tasks.items():
        checks = [e.check for e in examples if e.source == name]
        replies = [r for r in card.replies if r.source == name]
        baseline = None if unigram is None else sum(c(unigram) for c in checks) / len(checks)
        hits = [float(bool(r.correct)) for r in replies]
        accuracy, stderr = result.accuracy, mean_stderr(hits)
        scores.append(score(f"chat:{name}", "acc", accuracy, n=result.count, stderr=stderr,
                            chance=result.baseline, baseline=baseline))  # fmt: skip
    return scores


def _unigram_reply(context: TaskContext) -> str | None:
    """The unigram model's greedy reply, or None for a run without training tokens here."""
    try:
        unigram = context.unigram
    except (BenchmarkError, CorpusError, RunError):
        return None
    if unigram.most_common in context.tokenizer.special_tokens.values():
        return ""  # <|im_end|> or another marker first: an empty reply
    return context.tokenizer.decode(unigram.greedy(MAX_REPLY_TOKENS))
