"""Where a vocabulary puts its tokens, and the ids BPE merges with.

BPE works on *internal* ids: the 256 bytes at 0..255 and merge i's token at
256 + i, so that a merged id is also the merge's rank (see `merge`). GPT-2's
layout is exactly that, and so is every tokenizer slm trains: there the
internal ids are the file's ids and nothing is translated.

Other files put their tokens elsewhere, and `tokenizers` allows it: merges are
ranked by their place in the list, and each token's id is whatever the
vocabulary says. SmolLM2 puts 17 special tokens at ids 0..16 and the bytes
after them; a vocabulary's ids may be permuted or have gaps; Llama 3's file,
converted from tiktoken, lists several merges that make the same token. For
those, `Layout` keeps `to_id` (the file's id of each internal id) and, where
merges share a token, `results` (the internal id each rank makes). The encoder
translates a pre-token's ids once, when its cache first meets the pre-token,
so encoding text it has seen costs the same in any layout.

A vocabulary may hold tokens that no merge makes (they can never come out of
BPE): they decode, and a pre-token equal to one becomes it only if the file
asks for that (`ignore_merges`, as Llama 3's does). A merge that uses a token
no merge makes can never apply, so it is left out of the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from .merge import MergeTable


@dataclass(frozen=True)
class Layout:
    """A vocabulary's BPE, in internal ids, and the way back to the file's ids."""

    byte_order: list[int]  # byte_order[i]: the byte value of internal id i < 256
    merge_table: MergeTable  # (internal id, internal id) -> rank
    results: list[int] | None  # rank -> internal id made; None: the rank itself
    to_id: list[int] | None  # internal id -> the file's id; None: the same
    vocab: dict[int, bytes]  # the file's id -> bytes of each token (special tokens apart)
    whole_tokens: dict[bytes, int]  # pre-tokens that become one token without BPE

    @property
    def is_gpt2(self) -> bool:
        """Whether the file's ids are the internal ids (bytes first, merge i at 256 + i)."""
        return self.to_id is None and self.results is None


def gpt2_layout(merges: list[tuple[bytes, bytes]], byte_order: list[int]) -> Layout:
    """GPT-2's layout: byte_order[i] is id i's byte, merge i makes the new token 256 + i."""
    if sorted(byte_order) != list(range(256)):
        raise ValueError("byte_order must list each of the 256 byte values exactly once")
    vocab: dict[int, bytes] = {i: bytes([b]) for i, b in enumerate(byte_order)}
    ids_by_bytes = {token: i for i, token in vocab.items()}
    merge_table: MergeTable = {}
    for rank, (first, second) in enumerate(merges):
        if first not in ids_by_bytes or second not in ids_by_bytes:
            missing = first if first not in ids_by_bytes else second
            raise ValueError(
                f"merge {rank} ({first!r}, {second!r}) uses {missing!r}, which no earlier "
                "merge creates; merges must be listed in the order they were learned"
            )
        new_id = 256 + rank
        merged = first + second
        if merged in ids_by_bytes:
            raise ValueError(f"merge {rank} creates {merged!r}, which an earlier merge made")
        merge_table[ids_by_bytes[first], ids_by_bytes[second]] = new_id
        vocab[new_id] = merged
        ids_by_bytes[merged] = new_id
    return Layout(list(byte_order), merge_table, None, None, vocab, ids_by_bytes)


def any_layout(
    merges: list[tuple[bytes, bytes]], token_ids: dict[bytes, int], ignore_merges: bool = False
) -> Layout:
    """The layout of a vocabulary (`token_ids`: each token's bytes -> its id) and its merges.

    Merges are ranked by their order. Every byte needs a token, and every merge's
    two tokens and the token it makes must be in the vocabulary, as `tokenizers`
    requires. `ignore_merges`: a pre-token that is in the vocabulary becomes that
    token without BPE.
    """
    vocab = _vocab_by_id(token_ids)
    byte_order = sorted(range(256), key=lambda b: token_ids[bytes([b])])
    internal = {bytes([b]): i for i, b in enumerate(byte_order)}
    for number, (first, second) in enumerate(merges):
        for token in (first, second, first + second):
            if token not in token_ids:
                raise ValueError(
                    f"merge {number} ({first!r}, {second!r}) needs {token!r}, which is not in "
                    "the vocabulary; add it or drop the merge"
                )
        internal.setdefault(first + second, 256 + number)  # the first merge to make it
    results = [internal[first + second] for first, second in merges]
    merge_table: MergeTable = {}
    for rank, (first, second) in enumerate(merges, start=256):
        if first in internal and second in internal:  # else no merge makes a part: never applies
            merge_table[internal[first], internal[second]] = rank  # a later repeat wins
    to_id = [-1] * (256 + len(merges))
    for token, internal_id in internal.items():
        to_id[internal_id] = token_ids[token]
    whole = token_ids if ignore_merges else {token: token_ids[token] for token in internal}
    return Layout(
        byte_order,
        merge_table,
        None if results == list(range(256, 256 + len(merges))) else list(range(256)) + results,
        None if to_id == list(range(len(to_id))) else to_id,
        vocab,
        dict(whole),
    )


def _vocab_by_id(token_ids: dict[bytes, int]) -> dict[int, bytes]:
    """Id -> token; ValueError if a byte lacks a token, or two tokens share an id."""
    missing = [b for b in range(256) if bytes([b]) not in token_ids]
    if missing:
        raise ValueError(
            f"the vocabulary has no token for the byte 0x{missing[0]:02x} ({len(missing)} "
            "bytes lack one); byte-level BPE needs a token for each of the 256 bytes"
        )
    vocab: dict[int, bytes] = {}
    for token, token_id in token_ids.items():
        if not isinstance(token_id, int) or token_id < 0:
            raise ValueError(f"token {token!r} has the id {token_id!r}; ids are integers >= 0")
        if token_id in vocab:
            raise ValueError(f"tokens {vocab[token_id]!r} and {token!r} share the id {token_id}")
        vocab[token_id] = token
    return vocab
