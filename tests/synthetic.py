"""Text that the tests make themselves: simple, repetitive English, the same for a given seed."""

from __future__ import annotations

import random

WORDS = "the cat sat on a mat and the dog ran to the park while birds sang in old trees".split()  # noqa: SIM905


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def story(seed: int, sentences: int = 6) -> str:
    """A short document (deterministic for a seed)."""
    rng = random.Random(seed)
    return " ".join(sentence(rng, rng.randint(4, 9)) for _ in range(sentences))
