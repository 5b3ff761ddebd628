"""Reading OpenAI's GPT-2 files: `vocab.bpe` and `encoder.json`.

GPT-2 was released with two files: `encoder.json` (token text -> id) and
`vocab.bpe` (the 50,000 merges in order). Both write token bytes with GPT-2's
printable byte map (see `bytelevel`). This module turns them into what
`BPETokenizer` is built from (merges, the order of the 256 byte tokens, the
special tokens) and checks that the two files agree. It knows nothing of the
tokenizer class, so `bpe` can use it without importing `gpt2` (which builds
the ready-made tokenizer and imports `bpe`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .base import END_OF_TEXT
from .bytelevel import text_to_bytes


@dataclass(frozen=True)
class GPT2Files:
    """The contents of a `vocab.bpe` / `encoder.json` pair, ready for `BPETokenizer`."""

    merges: list[tuple[bytes, bytes]]
    byte_order: list[int]
    special_tokens: dict[str, int]
    encoder: dict[str, int]


def read_gpt2_files(vocab_bpe: str | os.PathLike, encoder_json: str | os.PathLike) -> GPT2Files:
    """Parse both files; a malformed line or byte table raises ValueError naming the file."""
    encoder: dict[str, int] = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
    special_tokens = {END_OF_TEXT: encoder[END_OF_TEXT]} if END_OF_TEXT in encoder else {}
    return GPT2Files(
        merges=_read_merges(vocab_bpe),
        byte_order=_byte_order(encoder, special_tokens, encoder_json),
        special_tokens=special_tokens,
        encoder=encoder,
    )


def _read_merges(vocab_bpe: str | os.PathLike) -> list[tuple[bytes, bytes]]:
    """One merge per line, two tokens separated by a space, after a `#version` line."""
    lines = Path(vocab_bpe).read_text(encoding="utf-8").splitlines()
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    merges = []
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{vocab_bpe}:{number}: expected two tokens per merge, got {line!r}")
        merges.append((text_to_bytes(parts[0]), text_to_bytes(parts[1])))
    return merges


def _byte_order(
    encoder: dict[str, int], special_tokens: dict[str, int], encoder_json: str | os.PathLike
) -> list[int]:
    """GPT-2 gives the 256 single bytes ids 0..255 in its own order; recover that order."""
    byte_order = [0] * 256
    seen = set()
    for text, token_id in encoder.items():
        if text in special_tokens:
            continue
        token = text_to_bytes(text)
        if len(token) == 1:
            if not 0 <= token_id < 256:
                raise ValueError(
                    f"{encoder_json}: byte token {text!r} has id {token_id}, not 0..255"
                )
            byte_order[token_id] = token[0]
            seen.add(token_id)
    if len(seen) != 256:
        raise ValueError(f"{encoder_json}: expected 256 single-byte tokens, found {len(seen)}")
    return byte_order


def check_encoder_matches(
    files: GPT2Files,
    vocab: dict[int, bytes],
    vocab_bpe: str | os.PathLike,
    encoder_json: str | os.PathLike,
) -> None:
    """Each id in encoder.json must name the token the merges built, else the files mismatch."""
    for text, token_id in files.encoder.items():
        expected = text.encode() if text in files.special_tokens else text_to_bytes(text)
        if vocab.get(token_id) != expected:
            raise ValueError(
                f"{encoder_json}: token {text!r} has id {token_id}, but the merges in {vocab_bpe} "
                "give that id to another token; the two files do not belong together"
            )
