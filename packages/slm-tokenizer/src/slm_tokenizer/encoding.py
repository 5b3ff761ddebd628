"""Turning ordinary text (no special tokens) into token ids, fast.

`BPETokenizer` applies the special-token rules and streams files; each stretch
of ordinary text it meets comes here. Encoding takes three steps: split the
text into pre-tokens with the pattern, look each one up in a cache, and run BPE
on those the cache has not seen. Real text repeats the same pre-tokens (" the",
" and", ".") over and over, so after the first few kilobytes nearly every
look-up hits, and the cost of encoding is the regex plus the look-ups.

So that this costs little, no Python code runs per pre-token:
- `list(chain.from_iterable(map(cache.__getitem__, pieces)))` looks up and
  concatenates a whole text's ids in C. The cache holds tuples, which `chain`
  walks faster than lists (a quarter of the look-ups' time on prose).
- The cache is a dict whose `__missing__` runs BPE on a pre-token it lacks and
  stores the result, so a new pre-token costs one Python call inside that same
  C-level look-up, and nothing is looked up twice.
- A new pre-token that is itself a token (" the", " Jerusalem") becomes that
  token without running BPE, as in tiktoken. BPE gives the same: training
  formed the token from some word in which the merges inside its bytes ran as
  they do on the bytes alone (a merge across the edge would have stopped the
  token forming), so BPE on the bytes alone ends in the token too. Tests check
  this for every GPT-2 token and for trained tokenizers.
- `patterns.PreTokenizer` splits ASCII text with the pattern's ASCII twin under
  `re`, about twice as fast as `regex`.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain

from .merge import MergeTable, apply_merges
from .patterns import PreTokenizer

# Cached pre-tokens before the cache is emptied; bounds memory on huge corpora.
CACHE_LIMIT = 500_000


class PieceEncoder:
    """Pre-tokenizes text and encodes the pre-tokens through a cache of their ids."""

    def __init__(
        self, merge_table: MergeTable, byte_to_id: bytes, pattern: str, tokens: dict[int, bytes]
    ) -> None:
        """Encode with these merges, byte ids and pattern.

        `merge_table` maps a pair of ids to its merge, `byte_to_id[b]` is the
        id of byte b, and `tokens` gives the bytes of each byte and merge token.
        """
        self.pre_tokenizer = PreTokenizer(pattern)
        self._merge_table = merge_table
        self._byte_to_id = byte_to_id
        self._whole_tokens = _tokens_by_text(tokens)
        self.cache = _PieceCache(self._merge_piece)

    def encode(self, text: str) -> list[int]:
        """The ids of ordinary text: no special-token handling, no surrogate check."""
        return self.encode_pieces(self.pre_tokenizer.findall(text))

    def encode_pieces(self, pieces: list[str]) -> list[int]:
        """The ids of a list of pre-tokens, in order."""
        cache = self.cache
        if len(cache) > CACHE_LIMIT:
            cache.clear()
        return list(chain.from_iterable(map(cache.__getitem__, pieces)))

    def _merge_piece(self, piece: str) -> tuple[int, ...]:
        """BPE on one pre-token (a pre-token that is a token is that token; see above)."""
        whole = self._whole_tokens.get(piece)
        if whole is not None:
            return whole
        return tuple(
            apply_merges(list(piece.encode("utf-8").translate(self._byte_to_id)), self._merge_table)
        )


class _PieceCache(dict):
    """Pre-token -> ids; a missing pre-token is merged and stored on first look-up."""

    def __init__(self, merge: Callable[[str], tuple[int, ...]]) -> None:
        super().__init__()
        self._merge = merge

    def __missing__(self, piece: str) -> tuple[int, ...]:
        ids = self[piece] = self._merge(piece)
        return ids


def _tokens_by_text(tokens: dict[int, bytes]) -> dict[str, tuple[int]]:
    """Token text -> (id,), for the tokens whose bytes are UTF-8 text."""
    by_text = {}
    for token_id, token in tokens.items():
        try:
            by_text[token.decode("utf-8")] = (token_id,)
        except UnicodeDecodeError:
            continue
    return by_text
