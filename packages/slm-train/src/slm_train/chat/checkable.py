"""Tasks whose answers a program checks: chat quality as a number (and, later, RL rewards).

Four small skills, each a `CheckableTask`: adding and subtracting numbers up
to 20, counting a letter in a word, spelling a word, reversing a list of
words. A task draws problems (`draw`), each in one of several phrasings with
the reply the model is trained on, and checks a free-text reply against an
answer (`check`): lenient about the words around the answer, strict about the
answer itself.

Problems are split once and for all by a hash of what they ask (`is_held_out`:
a fifth of them, whatever the phrasing or seed), so no held-out problem ever
appears in training. A score means something only beside a trivial one:
`constant_baseline` is the accuracy of always giving the most common answer
of the problems scored (about 25 % for counting, whose counts 0 to 3 are drawn
equally often; a few percent for arithmetic; one problem in the set for
spelling and reversing, whose answers are all different).
"""

from __future__ import annotations

import random
import re
import zlib
from collections import Counter
from dataclasses import dataclass

Conversation = list[dict[str, str]]
HELD_OUT_SHARE = 5  # one problem in five is held out

# Everyday words; many hold a letter two or three times, so that counting has every answer.
WORDS = """
apple banana cherry lemon orange grape melon peach pear plum berry strawberry coffee
butter bread cheese pepper salt sugar honey cookie pizza pasta rice bean carrot tomato
potato onion garlic cinnamon coconut pineapple papaya popcorn cabbage muffin lemonade
water river ocean island mountain valley forest desert garden flower tree grass stone
rock sand cloud rain snow storm thunder summer winter spring autumn morning evening
night moon star planet sun sky light shadow house door window table chair pillow
kitchen letter paper pencil book story music guitar piano violin drum song dance
balloon bubble bottle kettle mirror ladder basket hammer umbrella freezer igloo
rabbit kitten puppy horse sheep goose eagle parrot turtle monkey giraffe hippo zebra
tiger lion bear mouse cat dog fish bird frog bee ant owl fox wolf deer duck hen
anaconda cocoon terrier grasshopper red green yellow purple silver golden black white
happy sleepy little small tall quick excellent giggle lullaby tattoo error horror
school teacher doctor engineer farmer sailor baker artist friend sister brother mother
father daddy mummy village city street bridge tunnel castle tower market museum
library hospital tomorrow parallel success address nineteen sentence difference
independent bookkeeper assistant business mammal attention recorder barrier
""".split()  # noqa: SIM905


@dataclass(frozen=True)
class Problem:
    key: str  # what is asked, whatever the phrasing: "7+5", "strawberry/r"
    question: str
    reply: str  # what the model is trained to say
    answer: str  # what `check` looks for; a reply of exactly this is correct


class CheckableTask:
    name: str

    def draw(self, rng: random.Random) -> Problem:
        raise NotImplementedError

    def check(self, reply: str, answer: str) -> bool:
        raise NotImplementedError


def last_number(text: str) -> str | None:
    numbers = re.findall(r"\d+", text)
    return numbers[-1] if numbers else None


class Arithmetic(CheckableTask):
    """a + b or a - b with a, b in 0..20 (never below zero); the last number is the answer."""

    name = "arithmetic"
    PLUS = ("What is {a} + {b}?", "What's {a} plus {b}?", "Calculate {a} + {b}.", "{a} + {b} = ?",
            "Add {a} and {b}.")  # fmt: skip
    MINUS = ("What is {a} - {b}?", "What's {a} minus {b}?", "Calculate {a} - {b}.",
             "{a} - {b} = ?", "Subtract {b} from {a}.")  # fmt: skip

    def draw(self, rng: random.Random) -> Problem:
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        if rng.random() < 0.5:
            op, value, phrasings = "+", a + b, self.PLUS
        else:
            a, b = max(a, b), min(a, b)
            op, value, phrasings = "-", a - b, self.MINUS
        question = rng.choice(phrasings).format(a=a, b=b)
        return Problem(f"{a}{op}{b}", question, f"{a} {op} {b} = {value}.", str(value))

    def check(self, reply: str, answer: str) -> bool:
        return last_number(reply) == answer


class CountLetters(CheckableTask):
    """How often a letter occurs in a word; counts 0 to 3 are drawn equally often."""

    name = "counting"
    PHRASINGS = ("How many times does the letter '{l}' appear in '{w}'?",
                 "How many {l}'s are in the word {w}?", "Count the letter {l} in {w}.",
                 "How many times does {l} occur in {w}?")  # fmt: skip

    def __init__(self, words: list[str] = WORDS) -> None:
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.by_count = {
            count: [(w, c) for w in words for c in letters if w.count(c) == count]
            for count in range(4)
        }

    def draw(self, rng: random.Random) -> Problem:
        count = rng.randrange(4)
        word, letter = rng.choice(self.by_count[count])
        question = rng.choice(self.PHRASINGS).format(l=letter, w=word)
        times = "time" if count == 1 else "times"
        reply = f"{word} is spelled {'-'.join(word)}, so '{letter}' appears {count} {times}."
        return Problem(f"{word}/{letter}", question, reply, str(count))

    def check(self, reply: str, answer: str) -> bool:
        return last_number(reply) == answer


class Spell(CheckableTask):
    """A word letter by letter; the last run of single letters must be the word."""

    name = "spelling"
    PHRASINGS = ("Spell the word '{w}'.", "How do you spell {w}?", "Spell {w} letter by letter.",
                 "What are the letters of '{w}'?")  # fmt: skip
    RUN = re.compile(r"(?<![A-Za-z])[A-Za-z](?:[ ,\-]{1,3}[A-Za-z](?![A-Za-z]))+")

    def __init__(self, words: list[str] = WORDS) -> None:
        self.words = words

    def draw(self, rng: random.Random) -> Problem:
        word = rng.choice(self.words)
        question = rng.choice(self.PHRASINGS).format(w=word)
        return Problem(word, question, f"{word} is spelled {'-'.join(word)}.", "-".join(word))

    def check(self, reply: str, answer: str) -> bool:
        runs = self.RUN.findall(reply)
        spelled = re.sub(r"[^A-Za-z]", "", runs[-1]).lower() if runs else None
        return spelled == answer.replace("-", "").lower()


class ReverseList(CheckableTask):
    """Three to five different words in reverse order; the last comma-separated list counts."""

    name = "reversing"
    PHRASINGS = ("Reverse this list: {items}.", "Reverse the order of: {items}",
                 "Write {items} backwards.", "What is {items} in reverse order?")  # fmt: skip
    LIST = re.compile(r"[A-Za-z]+(?:\s*,\s*(?:and\s+)?[A-Za-z]+)+")

    def __init__(self, words: list[str] = WORDS) -> None:
        self.words = words

    def draw(self, rng: random.Random) -> Problem:
        items = rng.sample(self.words, rng.randint(3, 5))
        question = rng.choice(self.PHRASINGS).format(items=", ".join(items))
        answer = ", ".join(reversed(items))
        return Problem(",".join(items), question, f"Reversed: {answer}.", answer)

    def check(self, reply: str, answer: str) -> bool:
        lists = self.LIST.findall(reply)
        return bool(lists) and _items(lists[-1]) == _items(answer)


def _items(text: str) -> list[str]:
    return [re.sub(r"^and\s+", "", item.strip()).lower() for item in text.split(",")]


TASKS: dict[str, CheckableTask] = {
    task.name: task for task in (Arithmetic(), CountLetters(), Spell(), ReverseList())
}


def is_held_out(task: str, key: str) -> bool:
    """Whether a problem belongs to the held-out fifth: fixed by what it asks, for any seed."""
    return zlib.crc32(f"{task}:{key}".encode()) % HELD_OUT_SHARE == 0


def problems(
    task: CheckableTask, count: int, seed: int, *, held_out: bool = False
) -> list[Problem]:
    """`count` problems of one split, deterministic for a seed.

    Held-out problems are all different (so there may be fewer than `count`
    when the task has fewer: spelling has one word in five); training
    problems may repeat, in other phrasings.
    """
    split = "held-out" if held_out else "train"
    rng = random.Random(f"{task.name}/{split}/{seed}")
    found: list[Problem] = []
    keys: set[str] = set()
    for _ in range(100 * count):
        if len(found) == count:
            break
        problem = task.draw(rng)
        if is_held_out(task.name, problem.key) != held_out or (held_out and problem.key in keys):
            continue
        found.append(problem)
        keys.add(problem.key)
    return found


@dataclass(frozen=True)
class Expected:
    """The check of one reply: does it give this task's `answer`?"""

    task: str
    answer: str

    def __call__(self, reply: str) -> bool:
        return TASKS[self.task].check(reply, self.answer)


def task_conversations(
    task: CheckableTask, count: int, seed: int, *, held_out: bool = False
) -> list[tuple[Conversation, Expected]]:
    """One question and its reply per problem, with the check of the reply."""
    return [
        (
            [
                {"role": "user", "content": problem.question},
                {"role": "assistant", "content": problem.reply},
            ],
            Expected(task.name, problem.answer),
        )
        for problem in problems(task, count, seed, held_out=held_out)
    ]


def constant_baseline(checks: list[Expected]) -> float:
    """The accuracy of always replying with the most common answer among `checks`."""
    if not checks:
        return 0.0
    mode, _ = Counter(check.answer for check in checks).most_common(1)[0]
    return sum(check(mode) for check in checks) / len(checks)
