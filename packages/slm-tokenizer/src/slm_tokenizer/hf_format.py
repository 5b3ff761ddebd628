"""Byte-level BPE in the `tokenizers` library's tokenizer.json format: writing and reading.

Hugging Face ships byte-level BPE tokenizers (GPT-2's, Llama 3's, Qwen's) as
one tokenizer.json. It describes the same tokenizer as slm's own file, so the
translation is bookkeeping:

- vocabulary: each token's bytes in GPT-2's printable byte map ("Ġthe"), with
  its id, wherever the file puts it (see `layout`);
- merges: the same pairs in the same order (a merge's rank is its priority in
  both libraries); `ignore_merges` (Llama 3's files set it) is kept;
- normalizer: none, or NFC (Qwen's files; see `normalizer`);
- pre-tokenizer: our regex as a `Split` (each match its own piece), then
  `ByteLevel(use_regex=False)`, which only maps bytes to printable characters;
  GPT-2's own file has `ByteLevel(use_regex=True)`, GPT-2's regex built in;
- special tokens such as `<|endoftext|>`: "added tokens", cut out of the text
  before anything else, as `encode(..., allowed_special="all")` does.

We write each special token as an added token, and in the vocabulary too where
its id is not the next after the vocabulary (SmolLM2's come first), because
that is the only way `tokenizers` keeps such an id. GPT-2's file on the hub
also lists `<|endoftext|>` in the vocabulary (id 50256, as OpenAI's
encoder.json does), so a reader takes an added token as special whether or
not the vocabulary names its id too.

Like `gpt2_format`, this module knows nothing of the tokenizer class, so that
`bpe` can use it: `BPETokenizer.load` reads either format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .bytelevel import bytes_to_text, text_to_bytes
from .normalizer import read_normalizer
from .patterns import DIGITS_THEN_GPT2_PATTERN, GPT2_PATTERN


@dataclass(frozen=True)
class HFTokenizerParts:
    """What `BPETokenizer.from_vocab_and_merges` builds a tokenizer.json's tokenizer from."""

    vocab: dict[int, bytes]  # the byte and merge tokens; special tokens are apart
    merges: list[tuple[bytes, bytes]]
    special_tokens: dict[str, int]
    pattern: str
    ignore_merges: bool
    normalizer: str | None


def is_hf_tokenizer(data: object) -> bool:
    """Whether parsed JSON looks like a `tokenizers` tokenizer.json (it has a "model")."""
    return isinstance(data, dict) and "model" in data and "format" not in data


def to_hf_tokenizer(tokenizer: Any) -> dict[str, Any]:
    """The tokenizer.json dict that `tokenizers.Tokenizer.from_str(json.dumps(...))` reads.

    `tokenizer` is a `BPETokenizer` (not named in the type: `bpe` imports this module).
    """
    specials = tokenizer.special_tokens
    special_ids = set(specials.values())
    vocab = {bytes_to_text(t): i for i, t in tokenizer.vocab.items() if i not in special_ids}
    by_id = sorted(specials.items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(vocab), len(vocab) + len(by_id))):
        vocab.update(by_id)  # not the ids `tokenizers` would give them: name them in the vocab
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
        "normalizer": None if tokenizer.normalizer is None else {"type": tokenizer.normalizer},
        "pre_tokenizer": _pre_tokenizer(tokenizer.pattern, byte_level),
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
            "ignore_merges": tokenizer.ignore_merges,
            "vocab": vocab,
            "merges": [[bytes_to_text(a), bytes_to_text(b)] for a, b in tokenizer.merges],
        },
    }


def _pre_tokenizer(pattern: str, byte_level: dict[str, Any]) -> dict[str, Any]:
    """Our pattern as a Split, then ByteLevel; SmolLM2's as the Digits it stands for."""
    if pattern == DIGITS_THEN_GPT2_PATTERN:  # its exact form is not Oniguruma's syntax
        steps = [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", **byte_level, "use_regex": True},
        ]
    else:
        split = {"pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}
        steps = [{"type": "Split", **split}, {"type": "ByteLevel", **byte_level}]
    return {"type": "Sequence", "pretokenizers": steps}


def read_hf_tokenizer(data: dict[str, Any], path: str | os.PathLike) -> HFTokenizerParts:
    """The parts of a byte-level BPE tokenizer.json (`data`, parsed from `path`).

    Any other kind (SentencePiece, WordPiece, BPE without byte-level
    pre-tokenization) raises ValueError: slm's tokenizer is byte-level only.
    """
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise ValueError(
            f"{path} holds a {model.get('type')!r} tokenizer; slm reads byte-level BPE only "
            "(GPT-2 or Llama-3 style)"
        )
    pattern = _byte_level_pattern(data.get("pre_tokenizer"), path)
    texts, merge_texts = model.get("vocab"), model.get("merges")
    if not isinstance(texts, dict) or not isinstance(merge_texts, list):
        raise ValueError(f"{path} is damaged: its BPE model lacks the vocab or the merges")
    specials = _special_tokens(data.get("added_tokens") or [], texts, path)
    special_ids = set(specials.values())
    try:
        vocab = {
            token_id: text_to_bytes(text)
            for text, token_id in texts.items()
            if token_id not in special_ids
        }
        merges = [_merge_pair(merge) for merge in merge_texts]
    except ValueError as error:
        raise ValueError(f"{path} is not a byte-level BPE: {error}") from None
    ignore_merges = bool(model.get("ignore_merges"))
    normalizer = read_normalizer(data.get("normalizer"), path)
    return HFTokenizerParts(vocab, merges, specials, pattern, ignore_merges, normalizer)


def _special_tokens(
    added_tokens: list[dict[str, Any]], vocab: dict[str, int], path: str | os.PathLike
) -> dict[str, int]:
    """Every added token, special in slm's sense: cut out of the text before BPE.

    `tokenizers` does not read an added token's "id": it takes the
    vocabulary's id for the token's text (GPT-2's `<|endoftext|>` is listed in
    both), or else the next id after the vocabulary and the added tokens before
    it. A file written by `tokenizers` agrees with that; one that does not
    would give other ids there than here, so it is refused.
    """
    specials: dict[str, int] = {}
    for token in added_tokens:
        text, token_id = token["content"], token["id"]
        theirs = vocab.get(text, _next_added_id(specials, len(vocab)))
        if theirs != token_id:
            raise ValueError(
                f"{path}: the added token {text!r} has id {token_id}, but `tokenizers` reads it "
                f"as {theirs} (the vocabulary's id for it, or the next after the vocabulary); "
                "the file contradicts itself"
            )
        specials[text] = token_id
    return specials


def _next_added_id(specials: dict[str, int], vocab_size: int) -> int:
    """The id `tokenizers` gives an added token that its vocabulary lacks."""
    top = max(specials.values(), default=None)
    return vocab_size if top is None or (top < vocab_size and vocab_size) else top + 1


def _merge_pair(merge: str | list[str]) -> tuple[bytes, bytes]:
    first, second = merge.split(" ") if isinstance(merge, str) else merge
    return text_to_bytes(first), text_to_bytes(second)


def _byte_level_pattern(pre_tokenizer: dict[str, Any] | None, path: str | os.PathLike) -> str:
    """The pre-tokenization regex of a byte-level pre-tokenizer (ours or GPT-2's)."""
    steps = (pre_tokenizer or {}).get("pretokenizers", [pre_tokenizer or {}])
    kinds = [step.get("type") for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        if steps[0].get("add_prefix_space"):
            raise ValueError(f"{path} adds a prefix space, which slm's tokenizer never does")
        return GPT2_PATTERN
    digits = kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits")
    if digits and steps[1].get("use_regex", True) and not steps[1].get("add_prefix_space"):
        return DIGITS_THEN_GPT2_PATTERN
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        regex = steps[0].get("pattern", {}).get("Regex")
        if regex and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert"):
            return regex
    raise ValueError(
        f"{path} has the pre-tokenizer {kinds}; slm reads byte-level BPE (ByteLevel, "
        "Digits(individual_digits) then ByteLevel, or Split(regex) then ByteLevel(use_regex=False))"
    )
