"""The fast encoding path (slm_tokenizer.encoding): ASCII twins, whole-token pieces, the cache."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path
from unittest import mock

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from slm_tokenizer import (
    DIGITS_THEN_GPT2_PATTERN,
    GPT2_PATTERN,
    GPT4_PATTERN,
    LLAMA3_PATTERN,
    QWEN2_PATTERN,
    BPETokenizer,
    encoding,
    gpt2,
)
from slm_tokenizer.merge import merge_reference, merge_short
from slm_tokenizer.patterns import PreTokenizer, compile_ascii_twin, covers_every_character
from strategies import FRAGMENTS, unicode_text

PATTERNS = [GPT2_PATTERN, GPT4_PATTERN]
# With the patterns of files slm reads (Llama 3's, Qwen2's, SmolLM2's): all have twins.
ALL_PATTERNS = [*PATTERNS, LLAMA3_PATTERN, QWEN2_PATTERN, DIGITS_THEN_GPT2_PATTERN]
needs_twins = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="re has possessive quantifiers from Python 3.11"
)

ascii_text = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(max_codepoint=127), max_size=12),
        st.sampled_from([f for f in FRAGMENTS if f.isascii()]),
    ),
    max_size=24,
).map("".join)


@needs_twins
@pytest.mark.parametrize("pattern", ALL_PATTERNS)
def test_ascii_twin_classes_match_the_originals_on_every_ascii_character(pattern):
    twin = compile_ascii_twin(pattern)
    for code in range(128):
        c = chr(code)
        for text in (c, c * 3, f"a{c}b", f" {c}", f"{c}\n", f"'{c}", f"1{c}2", f"{c}  x"):
            assert twin.findall(text) == regex.findall(pattern, text), (pattern, text)


@needs_twins
@settings(max_examples=300, deadline=None)
@given(text=ascii_text, pattern=st.sampled_from(ALL_PATTERNS))
def test_ascii_twins_split_ascii_text_like_the_originals(text, pattern):
    expected = regex.findall(pattern, text)
    assert compile_ascii_twin(pattern).findall(text) == expected
    as_bytes = PreTokenizer(pattern).ascii_bytes.findall(text.encode("ascii"))
    assert [piece.decode("ascii") for piece in as_bytes] == expected


def test_only_the_built_in_patterns_have_twins():
    assert compile_ascii_twin(r"\p{L}+|\p{N}") is None
    assert not covers_every_character(r"\p{L}+|\p{N}")


@settings(max_examples=200, deadline=None)
@given(text=unicode_text)
def test_built_in_patterns_cover_every_character(text):
    for pattern in ALL_PATTERNS:
        assert covers_every_character(pattern)
        assert "".join(regex.findall(pattern, text)) == text


def test_every_gpt2_token_encodes_to_itself():
    """The whole-token shortcut is what BPE gives (merge_short is tested against the reference)."""
    tok = gpt2()
    byte_to_id, merge_table, vocab = tok._byte_to_id, tok._merge_table, tok.vocab
    for token_id in range(256 + len(tok.merges)):
        assert merge_short(list(vocab[token_id].translate(byte_to_id)), merge_table) == [token_id]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_trained_token_encodes_to_itself(bible_text, pattern):
    tok = BPETokenizer.train(bible_text[:100_000], 1200, ["<|endoftext|>"], pattern, workers=1)
    for token_id in range(256, 256 + len(tok.merges)):
        assert merge_reference(list(tok.vocab[token_id]), tok._merge_table) == [token_id]


def _code_texts() -> list[str]:
    """Two standard-library sources (code, not prose), and the same with non-ASCII mixed in."""
    folder = Path(sysconfig.get_paths()["stdlib"])
    texts = [(folder / name).read_text(encoding="utf-8") for name in ("typing.py", "argparse.py")]
    return [*texts, "naïve café — ünïcödé 😀 " * 50 + texts[0][:5_000]]


def test_cold_cache_matches_tiktoken_on_code_and_unicode(tiktoken_gpt2_encoding):
    tok = gpt2()
    for text in _code_texts():
        tok._encoder.clear_cache()
        assert tok.encode_ordinary(text) == tiktoken_gpt2_encoding.encode_ordinary(text)
        assert tok.encode_ordinary(text) == tiktoken_gpt2_encoding.encode_ordinary(text)  # warm


def test_ascii_and_other_text_share_the_merges(tiktoken_gpt2_encoding):
    """ASCII text is split as bytes, the rest as text; a word merged once serves both."""
    tok = gpt2()
    tok._encoder.clear_cache()
    text = _code_texts()[0]
    assert text.isascii()
    assert tok.encode_ordinary(text) == tiktoken_gpt2_encoding.encode_ordinary(text)
    learned = len(tok._encoder.cache)
    mixed = text + " café"
    assert tok.encode_ordinary(mixed) == tiktoken_gpt2_encoding.encode_ordinary(mixed)
    assert len(tok._encoder.cache) == learned + 1  # " café": the rest was merged already
    streamed = list(tok.encode_iterable(mixed.splitlines(keepends=True)))
    assert streamed == tiktoken_gpt2_encoding.encode_ordinary(mixed)


def test_a_full_cache_is_emptied_and_ids_stay_right(tiktoken_gpt2_encoding, bible_text):
    tok = gpt2()
    text = bible_text[:20_000]
    with mock.patch.object(encoding, "CACHE_LIMIT", 50):
        for start in range(0, len(text), 2_000):
            part = text[start : start + 2_000]
            assert tok.encode_ordinary(part) == tiktoken_gpt2_encoding.encode_ordinary(part)
        assert len(tok._encoder.cache) < 50 + 2_000
