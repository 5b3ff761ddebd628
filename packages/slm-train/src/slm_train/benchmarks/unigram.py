"""The unigram baseline: how often each token occurred in training, and nothing else.

A score is only worth what it adds to a model that knows no context at all.
The unigram model gives every token the probability of its share of the
training tokens, with add-one (Laplace) smoothing so that a token training
never saw still costs a finite number of bits:

    p(t) = (count(t) + 1) / (N + V)

It scores any task the way the model does (log-likelihoods of the same
continuations, the same greedy reply), so the two numbers can be compared.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Unigram:
    def __init__(self, counts: np.ndarray) -> None:
        counts = np.asarray(counts, dtype=np.float64)
        self.log_probs = np.log(counts + 1.0) - np.log(counts.sum() + len(counts))
        self.most_common = int(np.argmax(counts))

    def log_likelihood(self, ids: Sequence[int]) -> float:
        """The sum of log p(t) over `ids` (nats): the context plays no part."""
        return float(self.log_probs[np.asarray(ids, dtype=np.int64)].sum())

    def greedy(self, length: int) -> list[int]:
        """The unigram model's greedy continuation: its most common token, again and again."""
        return [self.most_common] * length
