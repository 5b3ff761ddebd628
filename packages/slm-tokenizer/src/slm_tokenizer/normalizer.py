"""Unicode normalization before pre-tokenization, as some tokenizer.json files ask.

Qwen2's (and Qwen3's) file has the normalizer NFC: "e" followed by a combining
acute accent becomes one "é" before the regex sees it, so the two spellings
give the same ids. `tokenizers` normalizes each stretch of text between added
tokens, and so does slm (in `encode_ordinary`). GPT-2's, Llama 3's and
SmolLM2's files have no normalizer, and neither has a tokenizer slm trains.

ASCII text is already NFC, so it costs nothing. A stream is normalized block
by block, each block cut just before an ASCII character: no composition has
an ASCII character as its second part, and nothing is reordered across a
character of combining class 0, so normalizing the two sides of such a cut
apart gives what normalizing the whole would.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any

NFC = "NFC"


def read_normalizer(spec: dict[str, Any] | None, path: str | os.PathLike) -> str | None:
    """The normalizer of a tokenizer.json: None or NFC; anything else is refused."""
    if spec is None:
        return None
    if spec.get("type") == "Sequence" and len(spec.get("normalizers", [])) == 1:
        spec = spec["normalizers"][0]
    if spec.get("type") == NFC:
        return NFC
    raise ValueError(
        f"{path} has the normalizer {spec.get('type')!r}; slm applies none or NFC "
        "(as GPT-2's, Llama 3's, SmolLM2's and Qwen's files ask)"
    )


def normalize(text: str, normalizer: str | None) -> str:
    """`text` in the normalization form (NFC) or unchanged (None)."""
    if normalizer is None or text.isascii():
        return text
    return unicodedata.normalize(normalizer, text)


def safe_cut(text: str) -> int:
    """Where the last ASCII character of `text` starts (0 if there is none).

    Text before that point normalizes the same apart from what follows it.
    """
    for i in range(len(text) - 1, -1, -1):
        if text[i] < "\x80":
            return i
    return 0
