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
  this for every GPT-2 token and for trained tokenizers. Only tokens that a
  merge makes take this path, unless the file asks for every vocabulary token
  (`ignore_merges`, see `layout`).
- In a layout other than GPT-2's, BPE runs on internal ids and the result is
  translated to the file's ids before it is cached, so the look-ups above
  return the file's ids at no extra cost.
- `patterns.PreTokenizer` splits ASCII text with the pattern's ASCII twin under
  `re`, about twice as fast as `regex`, and splits its UTF-8 bytes rather than
  the str: `re` makes bytes pre-tokens faster, and BPE starts from bytes. So
  the cache is keyed by bytes; pre-tokens of other text go through a second,
  str-keyed cache that looks up what it lacks in the first.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain

from .layout import Layout
from .merge import apply_merges
from .patterns import PreTokenizer

# Cached pre-tokens before the cache is emptied; bounds memory on huge corpora.
CACHE_LIMIT = 500_000


class PieceEncoder:
    """Pre-tokenizes text and encodes the pre-tokens through a cache of their ids."""

    def __init__(self, layout: Layout, pattern: str) -> None:
        """Encode with this layout's merges and byte ids, and this pattern.

        The cache holds the file's ids: a pre-token's internal ids are
        translated once, when it is first met (see `layout`).
        """
        self.pre_tokenizer = PreTokenizer(pattern)
        self._merge_table = layout.merge_table
        self._results = layout.results
        self._to_id = layout.to_id
        self._byte_to_id = bytes(layout.byte_order.index(b) for b in range(256))
        self._whole_tokens = {token: (token_id,) for token, token_id in layout.whole_tokens.items()}
        # Pre-tokens as bytes (those of ASCII text) and as text (the rest); a text
        # pre-token the cache lacks is looked up by its bytes, so both share the merges.
        self.cache = _PieceCache(self._merge_piece)
        self.text_cache = _PieceCache(lambda piece: self.cache[piece.encode("utf-8")])

    def clear_cache(self) -> None:
        """Forget every pre-token seen (to bound memory, or to time a cold start)."""
        self.cache.clear()
        self.text_cache.clear()

    def encode(self, text: str) -> list[int]:
        """The ids of ordinary text: no special-token handling, no surrogate check."""
        return _look_up(*self._pre_tokens(text, len(text)))

    def encode_all_but_last(self, text: str, end: int) -> tuple[list[int], int]:
        """The ids of `text[:end]` but its last pre-token, and where that pre-token starts.

        For streaming: later text could still extend the last pre-token. A
        text of one pre-token gives no ids, and 0.
        """
        pieces, cache = self._pre_tokens(text, end)
        if len(pieces) < 2:
            return [], 0
        cut = end - len(pieces.pop())
        pre_tokenizer = self.pre_tokenizer
        if not pre_tokenizer.covers_every_character and sum(map(len, pieces)) != cut:
            cut = pre_tokenizer.last_start(text, end)  # the pattern skips characters
        return _look_up(pieces, cache), cut

    def _pre_tokens(self, text: str, end: int) -> tuple[list[bytes] | list[str], _PieceCache]:
        """The pre-tokens of `text[:end]`, as bytes if the text is ASCII, and their cache."""
        ascii_bytes = self.pre_tokenizer.ascii_bytes
        if ascii_bytes is not None and text.isascii():
            return ascii_bytes.findall(text.encode("ascii"), 0, end), self.cache
        return self.pre_tokenizer.findall(text, end), self.text_cache

    def _merge_piece(self, piece: bytes) -> tuple[int, ...]:
        """BPE on one pre-token (a pre-token that is a token is that token; see above)."""
        whole = self._whole_tokens.get(piece)
        if whole is not None:
            return whole
        ids = apply_merges(
            list(piece.translate(self._byte_to_id)), self._merge_table, self._results
        )
        if self._to_id is not None:
            return tuple(map(self._to_id.__getitem__, ids))
        return tuple(ids)


def _look_up(pieces: list[bytes] | list[str], cache: _PieceCache) -> list[int]:
    """The pre-tokens' ids, concatenated: in C, but for the pre-tokens the cache lacks."""
    if len(cache) > CACHE_LIMIT:
        cache.clear()
    return list(chain.from_iterable(map(cache.__getitem__, pieces)))


class _PieceCache(dict):
    """Pre-token -> ids; a missing pre-token is merged and stored on first look-up."""

    def __init__(self, merge: Callable[[bytes | str], tuple[int, ...]]) -> None:
        super().__init__()
        self._merge = merge

    def __missing__(self, piece: bytes | str) -> tuple[int, ...]:
        ids = self[piece] = self._merge(piece)
        return ids
