"""slm's byte-level BPE in the `tokenizers` library's tokenizer.json format, and back.

Both are GPT-2's byte-level BPE, so the translation is bookkeeping:

- vocabulary: each token's bytes in GPT-2's printable byte map ("Ġthe"), with
  its id (GPT-2 permutes the 256 byte ids; the map keeps any order);
- merges: the same pairs in the same order (a merge's rank is its priority in
  both libraries);
- pre-tokenizer: our regex as a `Split` (each match its own piece), then
  `ByteLevel(use_regex=False)`, which only maps bytes to printable characters;
- special tokens such as `<|endoftext|>`: "added tokens", cut out of the text
  before anything else, as `encode(..., allowed_special="all")` does.

`tokenizer_from_hf` reads such a file back (also GPT-2's own, whose
pre-tokenizer is `ByteLevel(use_regex=True)` with GPT-2's regex built in).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from slm_tokenizer import GPT2_PATTERN, BPETokenizer
from slm_tokenizer.bytelevel import bytes_to_text, text_to_bytes


def to_hf_tokenizer(tokenizer: BPETokenizer) -> dict[str, Any]:
    """The tokenizer.json dict that `tokenizers.Tokenizer.from_str(json.dumps(...))` reads."""
    specials = tokenizer.special_tokens
    special_ids = set(specials.values())
    vocab = {bytes_to_text(t): i for i, t in tokenizer.vocab.items() if i not in special_ids}
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": token_id,
                "content": text,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for text, token_id in sorted(specials.items(), key=lambda item: item[1])
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": tokenizer.pattern},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {"type": "ByteLevel", **byte_level},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [[bytes_to_text(a), bytes_to_text(b)] for a, b in tokenizer.merges],
        },
    }


def tokenizer_from_hf(path: str | os.PathLike) -> BPETokenizer:
    """An slm tokenizer from a byte-level BPE tokenizer.json (GPT-2's, or one we exported).

    Any other kind (SentencePiece, WordPiece, BPE without byte-level
    pre-tokenization) raises ValueError: slm's tokenizer is byte-level only.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"{path} is missing; save the tokenizer beside the model (tokenizer.save_pretrained)"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a tokenizer.json ({error})") from None
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise ValueError(
            f"{path} holds a {model.get('type')!r} tokenizer; slm imports byte-level BPE only "
            "(GPT-2 or Llama-3 style)"
        )
    pattern = _byte_level_pattern(data.get("pre_tokenizer"), path)
    try:
        vocab = {token_id: text_to_bytes(text) for text, token_id in model["vocab"].items()}
        merges = [_merge_pair(merge) for merge in model["merges"]]
    except ValueError as error:
        raise ValueError(f"{path} is not a byte-level BPE: {error}") from None
    specials = {t["content"]: t["id"] for t in data.get("added_tokens", []) if t["id"] not in vocab}
    try:
        return BPETokenizer.from_vocab_and_merges(vocab, merges, specials, pattern)
    except ValueError as error:
        raise ValueError(
            f"{path}: its ids do not follow GPT-2's layout (bytes at 0..255, merge i at 256 + i), "
            f"which slm needs ({error})"
        ) from None


def _merge_pair(merge: str | list[str]) -> tuple[bytes, bytes]:
    first, second = merge.split(" ") if isinstance(merge, str) else merge
    return text_to_bytes(first), text_to_bytes(second)


def _byte_level_pattern(pre_tokenizer: dict[str, Any] | None, path: Path) -> str:
    """The pre-tokenization regex of a byte-level pre-tokenizer (ours or GPT-2's)."""
    steps = (pre_tokenizer or {}).get("pretokenizers", [pre_tokenizer or {}])
    kinds = [step.get("type") for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        if steps[0].get("add_prefix_space"):
            raise ValueError(f"{path} adds a prefix space, which slm's tokenizer never does")
        return GPT2_PATTERN
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        regex = steps[0].get("pattern", {}).get("Regex")
        if regex and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert"):
            return regex
    raise ValueError(
        f"{path} has the pre-tokenizer {kinds}; slm imports byte-level BPE "
        "(ByteLevel, or Split(regex) then ByteLevel(use_regex=False))"
    )
