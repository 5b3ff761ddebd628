"""Conversations that teach a chat model who it is, with the facts of its own run.

Asked "Who are you?", a model fine-tuned on someone else's chat data answers
with someone else's story. These conversations are written by code from a
`ModelFacts` (name, size, training data, training time) read from the run
being fine-tuned (`model_facts`), so what the model learns to say is true.

The questions come in two disjoint sets of phrasings: `TRAIN_QUESTIONS`, which
the model is trained on, and `HELD_OUT_QUESTIONS`, which only evaluation asks
(issue 20 measures the share of identity questions answered correctly in words
the model has not seen). `IdentityCheck` says whether a reply answers what its
question asked: the name, a size or a time correct to the precision stated,
the training data's name.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from dataclasses import dataclass

import torch
from slm_model import GPTModel

from ..data.hub import display_name, is_hub_spec
from ..run import Run

Conversation = list[dict[str, str]]
FACTS = ("name", "size", "data", "time")
SOURCE_NAMES = {"builtin:bbe": "The Bible in Basic English"}


def _asking(facts: set[str], *phrasings: str) -> list[tuple[str, frozenset[str]]]:
    return [(phrasing, frozenset(facts)) for phrasing in phrasings]


# (phrasing, what it asks for). "who" asks for the name, and its reply tells all the facts.
TRAIN_QUESTIONS = [
    *_asking({"who"}, "Who are you?", "What are you?", "Tell me about yourself.",
             "Introduce yourself.", "Can you tell me who you are?", "Describe yourself."),
    *_asking({"name"}, "What's your name?", "What is your name?", "What are you called?",
             "Do you have a name?", "What should I call you?", "Your name, please?"),
    *_asking({"size"}, "How big are you?", "How many parameters do you have?",
             "What is your size?", "How large is your model?", "How large are you?",
             "What's your model size?"),
    *_asking({"data"}, "What were you trained on?", "What data did you learn from?",
             "What text were you trained with?", "Which dataset did you learn from?",
             "What did you learn from?", "What data were you trained on?"),
    *_asking({"time"}, "How long did your training take?", "How long were you trained?",
             "How much time did your training take?", "How long did it take to train you?",
             "How long did you train?", "How long was your training?"),
    *_asking({"name", "size"}, "What's your name and how big are you?"),
    *_asking({"size", "time"}, "How big are you, and how long did your training take?"),
    *_asking({"data", "time"}, "What were you trained on, and how long did it take?"),
]  # fmt: skip
HELD_OUT_QUESTIONS = [
    *_asking({"who"}, "Who am I talking to?", "Could you introduce yourself?", "Who is this?"),
    *_asking({"name"}, "May I know your name?", "Tell me your name.", "What do people call you?"),
    *_asking({"size"}, "What's your parameter count?", "How many weights do you have?",
             "What size of model are you?"),
    *_asking({"data"}, "What was your training data?", "Which corpus were you trained on?",
             "Where does your knowledge come from?"),
    *_asking({"time"}, "What was your training time?", "For how long were you trained?",
             "How much time did you spend training?"),
    *_asking({"name", "size"}, "Tell me your name and your parameter count."),
    *_asking({"data", "time"}, "Which data did you learn from, and for how long?"),
]  # fmt: skip

REPLIES = {
    "who": (
        "I'm {name}, a small language model with {size}. I was trained on {data} for {time}.",
        "I am {name}, a small language model. I have {size} and was trained on {data} for {time}.",
    ),
    "name": ("I'm {name}.", "My name is {name}.", "I am {name}, a small language model."),
    "size": ("I have {size}.", "I'm a small language model with {size}.", "My model has {size}."),
    "data": ("I was trained on {data}.", "I learned from {data}.", "My training data was {data}."),
    "time": ("My training took {time}.", "I was trained for {time}.", "Training me took {time}."),
}


@dataclass(frozen=True)
class ModelFacts:
    """What a chat model says about itself; `model_facts` reads them from a run."""

    name: str
    parameters: int
    training_data: str  # a name people know, e.g. "The Bible in Basic English"
    training_time_s: float

    def words(self) -> dict[str, str]:
        """The facts as they appear in replies: "4.2 million parameters", "6 minutes"."""
        return {
            "name": self.name,
            "size": f"{count_in_words(self.parameters)} parameters",
            "data": self.training_data,
            "time": duration_in_words(self.training_time_s),
        }


def model_facts(run: Run, *, name: str = "slm", vocab_size: int | None = None) -> ModelFacts:
    """The facts of a pre-trained run: its size, data and time (metrics.jsonl's last elapsed).

    `vocab_size` counts the parameters as they will be after fine-tuning grows
    the vocabulary (chat tokens), so that the size the model states is its own.
    """
    config = run.model_config
    if vocab_size is not None:
        config = dataclasses.replace(config, vocab_size=vocab_size)
    with torch.device("meta"):  # shapes only: no memory, no weights read
        parameters = GPTModel(config).num_parameters()
    elapsed = [record["elapsed"] for record in run.metrics() if "elapsed" in record]
    return ModelFacts(
        name=name,
        parameters=parameters,
        training_data=source_name(run.config["data"]["source"]),
        training_time_s=max(elapsed, default=0.0),
    )


def source_name(spec: str) -> str:
    """A data source spec as a reply names it: "builtin:bbe" -> "The Bible in Basic English"."""
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    return " and ".join(_source_name(part) for part in parts)


def _source_name(part: str) -> str:
    """One source: its known name, a hub dataset's name ("TinyStories"), or a file's name."""
    if part in SOURCE_NAMES:
        return SOURCE_NAMES[part]
    if is_hub_spec(part):
        return display_name(part)
    return part.rstrip("/").rsplit("/", 1)[-1]


def count_in_words(n: int) -> str:
    """4213456 -> "4.2 million", 12400000 -> "12 million"; exact below a thousand."""
    for scale, word in ((1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {word}" if value < 10 else f"{value:.0f} {word}"
    return str(n)


def duration_in_words(seconds: float) -> str:
    """385 -> "6 minutes": seconds below 90, minutes below 90, hours (one decimal) above."""
    if seconds < 90:
        return _plural(round(seconds), "second")
    if seconds < 90 * 60:
        return _plural(round(seconds / 60), "minute")
    return f"{seconds / 3600:.1f} hours"


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def identity_conversations(
    facts: ModelFacts, count: int, seed: int, *, held_out: bool = False
) -> list[tuple[Conversation, IdentityCheck]]:
    """`count` conversations, each with the check of its last reply.

    Training (`held_out=False`) asks `TRAIN_QUESTIONS`, sometimes lowercased or
    without the question mark, and a fifth of the conversations ask a second
    question. Held out asks one question from `HELD_OUT_QUESTIONS`, as written.
    """
    rng, questions = random.Random(seed), HELD_OUT_QUESTIONS if held_out else TRAIN_QUESTIONS
    conversations = []
    for _ in range(count):
        turns = 1 if held_out or rng.random() < 0.8 else 2
        messages: Conversation = []
        for question, asks in rng.sample(questions, turns):
            text = question if held_out else _vary(question, rng)
            messages += [
                {"role": "user", "content": text},
                {"role": "assistant", "content": reply(facts, asks, rng)},
            ]
        conversations.append((messages, IdentityCheck(facts, asks)))
    return conversations


def reply(facts: ModelFacts, asks: frozenset[str], rng: random.Random) -> str:
    """A true answer to a question that asks for `asks`, in one of several wordings."""
    words = facts.words()
    order = ["who"] if "who" in asks else [fact for fact in FACTS if fact in asks]
    return " ".join(rng.choice(REPLIES[fact]).format(**words) for fact in order)


def _vary(question: str, rng: random.Random) -> str:
    if rng.random() < 0.2:
        question = question.lower()
    if rng.random() < 0.2:
        question = question.rstrip("?.")
    return question


@dataclass(frozen=True)
class IdentityCheck:
    """Whether a reply states, truly, every fact its question asked for."""

    facts: ModelFacts
    asks: frozenset[str]

    def __call__(self, reply: str) -> bool:
        checks = {
            "who": states_name,
            "name": states_name,
            "size": states_size,
            "data": states_data,
            "time": states_time,
        }
        return all(checks[fact](self.facts, reply) for fact in self.asks)


def states_name(facts: ModelFacts, reply: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(facts.name)}(?!\w)", reply, re.IGNORECASE) is not None


def states_data(facts: ModelFacts, reply: str) -> bool:
    name = re.sub(r"^the\s+", "", _normal(facts.training_data))
    return name in _normal(reply)


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "billion": 1e9, "b": 1e9}
NUMBER = r"(\d[\d,]*(?:\.\d+)?)"


def states_size(facts: ModelFacts, reply: str) -> bool:
    """A number of parameters that is the true one rounded to the precision it is stated in."""
    not_a_time = r"(?!\s*(?:second|sec|minute|min|hour|hr)s?\b)"
    pattern = NUMBER + not_a_time + r"\s*(thousand|million|billion|[kKmMbB](?![a-zA-Z]))?"
    for number, scale in re.findall(pattern, reply):
        value, unit = _stated(number)
        factor = SCALES[scale.lower()] if scale else 1.0
        if value > 0 and abs(value * factor - facts.parameters) <= unit * factor / 2:
            return True
    return False


UNITS = {"second": 1.0, "sec": 1.0, "minute": 60.0, "min": 60.0, "hour": 3600.0, "hr": 3600.0}


def states_time(facts: ModelFacts, reply: str) -> bool:
    """A duration (the sum of its parts: "1 hour and 5 minutes") true to its stated precision."""
    pattern = NUMBER + r"\s*(second|sec|minute|min|hour|hr)s?\b"
    parts = re.findall(pattern, reply, re.IGNORECASE)
    if not parts:
        return False
    total, precision = 0.0, math.inf
    for number, unit in parts:
        value, step = _stated(number)
        total += value * UNITS[unit.lower()]
        precision = min(precision, step * UNITS[unit.lower()])
    return total > 0 and abs(total - facts.training_time_s) <= precision / 2


def _stated(number: str) -> tuple[float, float]:
    """ "4.2" -> (4.2, 0.1); "4,200,000" -> (4200000, 100000): a value and its precision."""
    digits = number.replace(",", "")
    if "." in digits:
        return float(digits), 10.0 ** -len(digits.split(".")[1])
    zeros = len(digits) - len(digits.rstrip("0")) if digits.strip("0") else 0
    return float(digits), 10.0**zeros
