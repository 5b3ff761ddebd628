"""Learning BPE merges from text.

The textbook loop ("count all pairs in the corpus, merge the most frequent,
repeat") re-reads the whole corpus for every merge: hours for 32,000 merges.
Two observations make it fast:

1. Merges never cross pre-token boundaries, so the corpus is fully described by
   its distinct pre-tokens and how often each occurs. English has a few tens of
   thousands of distinct words where it has millions of running words.
2. A merge only changes the words that contain the merged pair. We keep, for
   every pair, its total count and the set of words it occurs in; after a merge
   we revisit just those words and apply the change in pair counts.

The most frequent pair comes from a heap with lazy deletion: every count change
pushes a fresh entry, and entries whose count is out of date are skipped when
they reach the top.

Ties between equally frequent pairs go to the lexicographically greatest pair of
byte strings, which makes training deterministic and comparable with other
implementations that use the same rule.
"""

from __future__ import annotations

import heapq
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import pairwise

import regex

from .base import replace_surrogates, require_str
from .merge import merge_pair
from .patterns import compile_pattern

Pair = tuple[int, int]


def count_pre_tokens(
    text: str | Iterable[str], special_tokens: list[str], pattern: str
) -> Counter[str]:
    """Count the pre-tokens of the corpus, never letting one span a special token."""
    pre_tokenizer = compile_pattern(pattern)
    splitter = (
        regex.compile(
            "|".join(regex.escape(s) for s in sorted(special_tokens, key=len, reverse=True))
        )
        if special_tokens
        else None
    )
    counts: Counter[str] = Counter()
    for chunk in [text] if isinstance(text, (str, bytes, bytearray)) else text:
        chunk = require_str(chunk, "each text")
        for segment in splitter.split(chunk) if splitter else (chunk,):
            counts.update(pre_tokenizer.findall(replace_surrogates(segment)))
    return counts


def learn_merges(
    text: str | Iterable[str], vocab_size: int, special_tokens: list[str], pattern: str
) -> list[tuple[bytes, bytes]]:
    """Return the merges, in learning order, that bring the vocabulary to `vocab_size`."""
    num_merges = merges_wanted(vocab_size, special_tokens)
    index = PairIndex(count_pre_tokens(text, special_tokens, pattern))
    merges: list[tuple[bytes, bytes]] = []
    while len(merges) < num_merges:
        pair = index.pop_most_frequent()
        if pair is None:
            warnings.warn(
                f"the corpus ran out of pairs to merge after {len(merges)} merges; "
                f"the vocabulary has {256 + len(merges) + len(special_tokens)} tokens, "
                f"not the {vocab_size} asked for (train on more text for a larger one)",
                stacklevel=3,
            )
            break
        merges.append(index.merge(pair))
    return merges


def merges_wanted(vocab_size: int, special_tokens: list[str]) -> int:
    """Check the arguments and say how many merges make a vocabulary of `vocab_size`."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if len(set(special_tokens)) != len(special_tokens) or not all(
        isinstance(s, str) and s for s in special_tokens
    ):
        raise ValueError("special_tokens must be distinct non-empty strings")
    minimum = 256 + len(special_tokens)
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size {vocab_size} is too small: it must cover the 256 byte tokens and "
            f"{len(special_tokens)} special tokens, so at least {minimum}"
        )
    return vocab_size - minimum


def _descending(token: bytes) -> tuple[int, ...]:
    """A key that sorts byte strings in reverse order, so a min-heap pops the greatest.

    Complementing each byte reverses the order of unequal bytes; the final 256,
    larger than any complemented byte, makes a string sort before its prefixes.
    """
    return (*(255 - b for b in token), 256)


class PairIndex:
    """The corpus as distinct words of token ids, with every pair's count and words.

    `pop_most_frequent` and `merge` are the two steps of the training loop; the
    index stays exact after each merge without re-reading the corpus.
    """

    def __init__(self, word_counts: Counter[str]) -> None:
        self.words: list[list[int]] = []
        self.counts: list[int] = []
        for word, count in word_counts.items():
            encoded = word.encode("utf-8")
            if len(encoded) > 1:  # single bytes hold no pairs
                self.words.append(list(encoded))
                self.counts.append(count)
        self.pair_counts: defaultdict[Pair, int] = defaultdict(int)
        self.pair_words: defaultdict[Pair, set[int]] = defaultdict(set)
        for index, (word, count) in enumerate(zip(self.words, self.counts, strict=True)):
            for pair in pairwise(word):
                self.pair_counts[pair] += count
                self.pair_words[pair].add(index)
        self.token_bytes = [bytes([b]) for b in range(256)]
        self.sort_keys = [_descending(t) for t in self.token_bytes]
        self.heap = [self._heap_entry(pair, count) for pair, count in self.pair_counts.items()]
        heapq.heapify(self.heap)

    def _heap_entry(self, pair: Pair, count: int) -> tuple:
        """Most frequent first; among equals, the greatest pair of byte strings."""
        return (-count, (self.sort_keys[pair[0]], self.sort_keys[pair[1]]), pair)

    def pop_most_frequent(self) -> Pair | None:
        """Pop heap entries until one matches its pair's current count (None: no pairs left)."""
        heap, pair_counts = self.heap, self.pair_counts
        while heap:
            negative_count, _, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) == -negative_count and negative_count < 0:
                return pair
        return None

    def merge(self, pair: Pair) -> tuple[bytes, bytes]:
        """Merge `pair` into a new token in every word that has it; return the merge's bytes."""
        first, second = pair
        new_id = len(self.token_bytes)
        merge = (self.token_bytes[first], self.token_bytes[second])
        self.token_bytes.append(merge[0] + merge[1])
        self.sort_keys.append(_descending(self.token_bytes[-1]))
        delta = self._merge_in_words(pair, new_id)
        for changed, change in delta.items():
            if change:
                total = self.pair_counts[changed] + change
                self.pair_counts[changed] = total
                if total > 0:
                    heapq.heappush(self.heap, self._heap_entry(changed, total))
        self.pair_counts.pop(pair, None)
        return merge

    def _merge_in_words(self, pair: Pair, new_id: int) -> defaultdict[Pair, int]:
        """Rewrite the words that contain `pair`; return the change in each pair's count."""
        first, second = pair
        delta: defaultdict[Pair, int] = defaultdict(int)
        for index in self.pair_words.pop(pair):
            word = self.words[index]
            merged = merge_pair(word, first, second, new_id)
            if len(merged) == len(word):
                continue  # a stale entry: an earlier merge already used this pair up
            count = self.counts[index]
            for old in pairwise(word):
                delta[old] -= count
            for new in pairwise(merged):
                delta[new] += count
                self.pair_words[new].add(index)
            self.words[index] = merged
        return delta
