"""The tutorial's word-level tokenizer."""

from __future__ import annotations

import pytest
from slm_tokenizer import SimpleTokenizer

VERDICT = '"It\'s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'


def test_build_encode_decode_round_trip():
    tok = SimpleTokenizer().build_vocab(VERDICT)
    ids = tok.encode(VERDICT)
    # The tutorial's decoder cannot restore the space it lost after a quote: the book
    # prints exactly this.
    assert (
        tok.decode(ids)
        == '" It\' s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'
    )
    assert tok.unknown_id not in ids
    assert tok.str_to_int["<|unk|>"] == tok.vocab_size - 1
    assert tok.str_to_int["<|endoftext|>"] == tok.vocab_size - 2


def test_words_are_sorted_and_split_like_the_tutorial():
    tok = SimpleTokenizer().build_vocab("b a, c--a")
    assert list(tok.str_to_int) == [",", "--", "a", "b", "c", "<|endoftext|>", "<|unk|>"]
    assert tok.encode("a, b--c") == [2, 0, 3, 1, 4]


def test_unknown_words_map_to_unk():
    tok = SimpleTokenizer().build_vocab("Hello, world.")
    unk = tok.str_to_int["<|unk|>"]
    assert tok.encode("Hello, palace.") == [
        tok.str_to_int["Hello"],
        tok.str_to_int[","],
        unk,
        tok.str_to_int["."],
    ]
    assert tok.decode(tok.encode("Hello <|endoftext|> moon")) == "Hello <|endoftext|> <|unk|>"


def test_vocab_round_trips_through_the_constructor():
    tok = SimpleTokenizer().build_vocab(VERDICT)
    copy = SimpleTokenizer(tok.str_to_int)
    assert copy.encode(VERDICT) == tok.encode(VERDICT)


def test_errors():
    with pytest.raises(ValueError, match="build_vocab"):
        SimpleTokenizer().encode("text")
    with pytest.raises(ValueError, match=r"lacks '<\|unk\|>'"):
        SimpleTokenizer({"a": 0, "<|endoftext|>": 1})
    with pytest.raises(ValueError, match="same id"):
        SimpleTokenizer({"a": 0, "<|endoftext|>": 0, "<|unk|>": 1})
    tok = SimpleTokenizer().build_vocab("a b")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.decode([99])
    with pytest.raises(TypeError, match="decode it first"):
        tok.encode(b"a b")
