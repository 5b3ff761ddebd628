"""Learning BPE merges from text.

The textbook loop ("count all pairs in the corpus, merge the most frequent,
repeat") re-reads the whole corpus for every merge: hours for 32,000 merges.
Two observations make it fast:

1. Merges never cross pre-token boundaries, so the corpus is fully described by
   its distinct pre-tokens and how often each occurs. English has a few tens of
   thousands of distinct words where it has millions of running words. Counting
   them is the one pass over the corpus, done in worker processes (`counting`).
2. A merge only changes the words that contain the merged pair, and in those
   only the pairs next to each merged occurrence. We keep, for every pair, its
   total count and the set of words it occurs in; after a merge we revisit just
   those words and adjust just those pairs (`PairIndex.merge`).

The most frequent pair comes from a heap with lazy updates: a count that grows
pushes a fresh entry; an entry that overstates a count that shrank is pushed
back with the true count when it reaches the top.

Ties between equally frequent pairs go to the lexicographically greatest pair of
byte strings, which makes training deterministic and comparable with other
implementations that use the same rule.
"""

from __future__ import annotations

import heapq
import operator
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable

from .counting import count_pre_tokens


def learn_merges(
    text: str | Iterable[str],
    vocab_size: int,
    special_tokens: list[str],
    pattern: str,
    workers: int = 1,
) -> list[tuple[bytes, bytes]]:
    """Return the merges, in learning order, that bring the vocabulary to `vocab_size`.

    `workers` processes count the pre-tokens (see `counting`); the merges do
    not depend on it.
    """
    num_merges = merges_wanted(vocab_size, special_tokens)
    index = PairIndex(count_pre_tokens(text, special_tokens, pattern, workers))
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

    A word is stored as a `str` with one character per token (`chr(id)`), and a
    pair as the two-character string of its tokens. That lets C do the work per
    merge: `pair in word` skips words an earlier merge already changed, and
    `word.replace(pair, new)` merges left to right exactly as BPE does.
    """

    def __init__(self, word_counts: Counter[str]) -> None:
        self.words: list[str] = []
        self.counts: list[int] = []
        for word, count in word_counts.items():
            # Latin-1 maps byte b to chr(b): the word's byte tokens, one character each.
            tokens = word.encode("utf-8").decode("latin-1")
            if len(tokens) > 1:  # single bytes hold no pairs
                self.words.append(tokens)
                self.counts.append(count)
        self.pair_counts: defaultdict[str, int] = defaultdict(int)
        self.pair_words: defaultdict[str, set[int]] = defaultdict(set)
        for index, (word, count) in enumerate(zip(self.words, self.counts, strict=True)):
            for pair in map(operator.add, word, word[1:]):
                self.pair_counts[pair] += count
                self.pair_words[pair].add(index)
        self.token_bytes = [bytes([b]) for b in range(256)]
        self.sort_keys = [_descending(t) for t in self.token_bytes]
        self.heap = [self._heap_entry(pair, count) for pair, count in self.pair_counts.items()]
        heapq.heapify(self.heap)

    def _heap_entry(self, pair: str, count: int) -> tuple:
        """Most frequent first; among equals, the greatest pair of byte strings."""
        return (-count, self.sort_keys[ord(pair[0])], self.sort_keys[ord(pair[1])], pair)

    def pop_most_frequent(self) -> str | None:
        """The pair with the highest count now, or None when no pairs are left.

        Counts that grow push a fresh heap entry; counts that shrink do not, so
        an entry may overstate its pair's count. Such an entry is pushed back
        with the true count when it reaches the top, and an entry whose count
        is true is then the maximum, since no entry understates a count.
        """
        heap, pair_counts = self.heap, self.pair_counts
        while heap:
            entry = heapq.heappop(heap)
            count = pair_counts.get(entry[3], 0)
            if count == -entry[0]:
                return entry[3]
            if count > 0:
                heapq.heappush(heap, (-count, *entry[1:]))
        return None

    def merge(self, pair: str) -> tuple[bytes, bytes]:
        """Merge `pair` into a new token in every word that has it; return the merge's bytes."""
        first, second = ord(pair[0]), ord(pair[1])
        merge = (self.token_bytes[first], self.token_bytes[second])
        new_token = chr(len(self.token_bytes))
        self.token_bytes.append(merge[0] + merge[1])
        self.sort_keys.append(_descending(self.token_bytes[-1]))
        gained = self._merge_in_words(pair, new_token)
        del self.pair_counts[pair]  # every occurrence is gone
        for new_pair, count in gained.items():
            self.pair_counts[new_pair] = count
            heapq.heappush(self.heap, self._heap_entry(new_pair, count))
        return merge

    def _merge_in_words(self, pair: str, new: str) -> defaultdict[str, int]:
        """Rewrite the words that contain `pair`; return the counts of the pairs it creates.

        Only the pairs around a merged occurrence N (for pair ab) change: a
        token x before it turns pair xa into xN (or, if x is an N itself, ba
        into NN), and a token y after it turns by into Ny. The lost counts are
        taken off `pair_counts` here; the pairs with N are all new.
        """
        a, b = pair
        words, counts, pair_words, pair_counts = (
            self.words,
            self.counts,
            self.pair_words,
            self.pair_counts,
        )
        gained: defaultdict[str, int] = defaultdict(int)
        for index in pair_words.pop(pair):
            word = words[index]
            if pair not in word:
                continue  # a stale entry: an earlier merge already used this pair up
            merged = words[index] = word.replace(pair, new)
            count = counts[index]
            at = merged.find(new)
            while at >= 0:
                if at:
                    before = merged[at - 1]
                    pair_counts[(b if before == new else before) + a] -= count
                    new_pair = before + new
                    gained[new_pair] += count
                    pair_words[new_pair].add(index)
                after = merged[at + 1 : at + 2]
                if after and after != new:
                    pair_counts[b + after] -= count
                    new_pair = new + after
                    gained[new_pair] += count
                    pair_words[new_pair].add(index)
                at = merged.find(new, at + 1)
        return gained
