"""Applying learned merges to one pre-token.

A merge table maps a pair of adjacent token ids to the merge's rank (256 +
its place in the list of merges). BPE encoding repeatedly merges the adjacent
pair of lowest rank, leftmost first, until no pair in the table is left.
Usually the rank is also the id of the token the merge makes: each merge makes
a new token, numbered in the order the merges were learned. Some files have
several merges that make the same token (Llama 3's, converted from tiktoken,
lists every split of a token into two tokens); for those, `results[rank]` is
the id of the token the merge of that rank makes (see `layout`).

Three implementations of that one rule live here:
- `merge_reference`: the rule written out literally, recomputing every pair's
  rank at each step. It is slow and obviously right; the tests check the other
  two against it.
- `merge_short`: the same steps, but it keeps the list of pair ranks and after
  a merge looks up only the two pairs next to it (as tiktoken does), so a step
  is a C-level `min` and `index` plus two dict look-ups. Fast for the short
  pre-tokens that make up almost all text.
- `merge_long`: a heap over a linked list, O(n log n) instead of O(n^2), for
  long pre-tokens such as a run of 10,000 spaces.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from itertools import pairwise, repeat

MergeTable = dict[tuple[int, int], int]

# Pre-tokens longer than this (in bytes) use the heap; shorter ones the simple loop.
LONG_PIECE = 64

_NO_MERGE = 1 << 62


def merge_reference(
    ids: list[int], merges: MergeTable, results: Sequence[int] | None = None
) -> list[int]:
    """Merge the leftmost lowest-rank pair, one at a time."""
    ids = list(ids)
    while len(ids) >= 2:
        ranks = [merges.get(pair, _NO_MERGE) for pair in pairwise(ids)]
        best = min(ranks)
        if best == _NO_MERGE:
            break
        i = ranks.index(best)
        ids[i : i + 2] = [best if results is None else results[best]]
    return ids


def merge_short(ids: list[int], merges: MergeTable) -> list[int]:
    """Merge the leftmost lowest-rank pair, one at a time, updating only its neighbours' ranks.

    `ranks[i]` is the rank of the pair (ids[i], ids[i + 1]); merging it at i
    removes that entry and changes just ranks[i - 1] and the new ranks[i].
    """
    ids = list(ids)
    get = merges.get
    ranks = list(map(get, pairwise(ids), repeat(_NO_MERGE)))
    while ranks:
        best = min(ranks)
        if best == _NO_MERGE:
            break
        i = ranks.index(best)
        ids[i] = best
        del ids[i + 1]
        del ranks[i]
        if i:
            ranks[i - 1] = get((ids[i - 1], best), _NO_MERGE)
        if i < len(ranks):
            ranks[i] = get((best, ids[i + 1]), _NO_MERGE)
    return ids


def merge_long(
    ids: list[int], merges: MergeTable, results: Sequence[int] | None = None
) -> list[int]:
    """Heap of candidate pairs keyed by (rank, position) over a linked list of tokens."""
    n = len(ids)
    tokens: list[int | None] = list(ids)
    next_node = list(range(1, n + 1))  # n marks the end
    prev_node = list(range(-1, n - 1))  # -1 marks the start
    get = merges.get
    heap = [
        (rank, i, ids[i], ids[i + 1])
        for i in range(n - 1)
        if (rank := get((ids[i], ids[i + 1]))) is not None
    ]
    heapq.heapify(heap)
    while heap:
        rank, left, first, second = heapq.heappop(heap)
        right = next_node[left]
        # Entries go stale when a neighbour merges; skip any that no longer hold.
        if tokens[left] != first or right >= n or tokens[right] != second:
            continue
        made = rank if results is None else results[rank]
        tokens[left] = made
        tokens[right] = None
        after = next_node[right]
        next_node[left] = after
        if after < n:
            prev_node[after] = left
            new_rank = get((made, tokens[after]))
            if new_rank is not None:
                heapq.heappush(heap, (new_rank, left, made, tokens[after]))
        before = prev_node[left]
        if before >= 0:
            new_rank = get((tokens[before], made))
            if new_rank is not None:
                heapq.heappush(heap, (new_rank, before, tokens[before], made))
    return [t for t in tokens if t is not None]


def apply_merges(
    ids: list[int], merges: MergeTable, results: Sequence[int] | None = None
) -> list[int]:
    """BPE-encode one pre-token's byte ids with the fastest method for its length.

    With `results` (merges that make the same token), always the heap: such
    files are rare, and the cache makes each pre-token's cost a one-off.
    """
    if len(ids) < 2:
        return ids
    if results is not None:
        return merge_long(ids, merges, results)
    if len(ids) > LONG_PIECE:
        return merge_long(ids, merges)
    return merge_short(ids, merges)
