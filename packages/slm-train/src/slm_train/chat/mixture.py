"""The built-in chat data: chatterbot's small talk, identity and checkable tasks, mixed and split.

`builtin_conversations(facts, seed)` is what `finetune chat` trains on when
the user gives no data, and what `train --chat` uses end to end. The default
`Mixture`, with chatterbot-corpus 1.3.3 in English:

    source        train                        val           test
    chatterbot    ~590 of 737                  ~45-80        ~65-80
    identity      1000 (training phrasings)    20            40 (held-out phrasings)
    each task     1000 (4 tasks: 4000 in all)  20 each       40 each (held-out problems)

About 5,600 training conversations, a tenth of them small talk. The sizes were
measured (bench/chat.py, `train --chat`'s 10 minutes, one thread): against 300
identity and 200 per task, identity questions answered rightly rose from 60 %
to 75 % and spelling from 0 % to 28 % (baseline 2 %), with replies ending as
often (97 %, 98 %). Chatterbot's
737 conversations open with 644 different lines; a tenth of the openings go to
val and a tenth to test, so their sizes vary with the seed ("Tell me a joke"
alone has 30 replies). Every
held-out split is held out for its kind: chatterbot conversations are split by
their opening line (so "How are you?" with one reply in training and another
in test cannot happen), identity questions use phrasings training never asks,
and checkable problems come from the fifth of problems training never sees.
`val` gives the masked loss during training; `test` is for the scorecard
(scoring.py), each item with the check of its reply.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .builtin import DEFAULT_LANGUAGE, read_chatterbot
from .checkable import TASKS, task_conversations
from .identity import ModelFacts, identity_conversations

Conversation = list[dict[str, str]]


@dataclass(frozen=True)
class Mixture:
    """How many conversations of each kind; the defaults are the table above."""

    identity: int = 1000  # training conversations about the model itself
    per_task: int = 1000  # training problems per checkable task
    chatterbot_held_out: float = 0.1  # of chatterbot's openings, for val, and again for test
    identity_val: int = 20
    identity_test: int = 40
    task_val: int = 20
    task_test: int = 40
    language: str = DEFAULT_LANGUAGE  # of chatterbot's conversations (the rest is English)


@dataclass(frozen=True)
class Example:
    """A held-out conversation; `check`, if any, judges a reply given in place of its last turn."""

    messages: Conversation
    source: str  # "chatterbot", "identity", or a checkable task's name
    check: Callable[[str], bool] | None = None


class BuiltinConversations(NamedTuple):
    train: list[Conversation]
    val: list[Conversation]
    test: list[Example]


def builtin_conversations(
    facts: ModelFacts, seed: int = 0, mixture: Mixture = Mixture()
) -> BuiltinConversations:
    """Train, validation and test conversations of every kind; the same for the same seed."""
    rng = random.Random(seed)
    train, val, test = _chatterbot(mixture, rng)
    train += [c for c, _ in identity_conversations(facts, mixture.identity, rng.randrange(2**32))]
    held_out = identity_conversations(
        facts, mixture.identity_val + mixture.identity_test, rng.randrange(2**32), held_out=True
    )
    val += [c for c, _ in held_out[mixture.identity_test :]]
    test += [Example(c, "identity", check) for c, check in held_out[: mixture.identity_test]]
    for name, task in TASKS.items():
        train += [c for c, _ in task_conversations(task, mixture.per_task, rng.randrange(2**32))]
        held_out = task_conversations(
            task, mixture.task_val + mixture.task_test, rng.randrange(2**32), held_out=True
        )
        val += [c for c, _ in held_out[mixture.task_test :]]
        test += [Example(c, name, check) for c, check in held_out[: mixture.task_test]]
    rng.shuffle(train)
    return BuiltinConversations(train, val, test)


def _chatterbot(
    mixture: Mixture, rng: random.Random
) -> tuple[list[Conversation], list[Conversation], list[Example]]:
    """Chatterbot's conversations split by opening line: (train, val, test)."""
    groups: dict[str, list[Conversation]] = {}
    for conversation in read_chatterbot(mixture.language).conversations:
        opening = " ".join(conversation[0]["content"].lower().split())
        groups.setdefault(opening, []).append(conversation)
    openings = list(groups)
    rng.shuffle(openings)
    held_out = round(mixture.chatterbot_held_out * len(openings))
    val = [c for opening in openings[:held_out] for c in groups[opening]]
    test = [c for opening in openings[held_out : 2 * held_out] for c in groups[opening]]
    train = [c for opening in openings[2 * held_out :] for c in groups[opening]]
    return train, val, [Example(c, "chatterbot") for c in test]
