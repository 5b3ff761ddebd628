"""BPETokenizer behaviour: round trips, special tokens, streaming, persistence, errors."""

from __future__ import annotations

import io
import json
import re
import tracemalloc
from collections import deque
from itertools import pairwise
from unittest import mock

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from slm_tokenizer import GPT2_PATTERN, BPETokenizer, gpt2
from slm_tokenizer import bpe as bpe_module
from slm_tokenizer.merge import LONG_PIECE, merge_long, merge_reference, merge_short
from strategies import unicode_text

SPECIALS = ["<|endoftext|>", "<|a|>", "<|a|><|b|>"]


@pytest.fixture(scope="module")
def trained(bible_text) -> BPETokenizer:
    return BPETokenizer.train(bible_text[:200_000], vocab_size=1000, special_tokens=SPECIALS)


@settings(max_examples=200, deadline=None)
@given(text=unicode_text)
def test_round_trip_trained(trained, text):
    assert trained.decode(trained.encode(text, allowed_special="all")) == text
    assert trained.decode(trained.encode_ordinary(text)) == text


def test_special_tokens_longest_match_first(trained):
    ids = trained.encode("x<|a|><|b|>y<|a|>", allowed_special="all")
    specials = trained.special_tokens
    assert ids == [ord("x"), specials["<|a|><|b|>"], ord("y"), specials["<|a|>"]]


def test_allowed_subset_and_disallowed_error(trained):
    specials = trained.special_tokens
    text = "a<|endoftext|>b<|a|>"
    with pytest.raises(ValueError, match=r"disallowed.*allowed_special=\{'<\|endoftext\|>'\}"):
        trained.encode(text)
    with pytest.raises(ValueError, match=re.escape("<|a|>")):
        trained.encode(text, allowed_special={"<|endoftext|>"})
    ids = trained.encode(text, allowed_special={"<|endoftext|>"}, disallowed_special=())
    assert ids[:3] == [ord("a"), specials["<|endoftext|>"], ord("b")]
    assert specials["<|a|>"] not in ids
    with pytest.raises(ValueError, match="not special tokens of this tokenizer"):
        trained.encode(text, allowed_special={"<|nope|>"})
    with pytest.raises(TypeError, match="set of special tokens"):
        trained.encode(text, allowed_special="<|endoftext|>")


@settings(max_examples=150, deadline=None)
@given(text=unicode_text, cuts=st.lists(st.integers(0, 400), max_size=8), allow=st.booleans())
def test_encode_iterable_equals_encode(trained, text, cuts, allow):
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    chunks = [text[a:b] for a, b in pairwise(bounds)]
    options = {"allowed_special": "all"} if allow else {"disallowed_special": ()}
    assert list(trained.encode_iterable(iter(chunks), **options)) == trained.encode(text, **options)


@settings(max_examples=150, deadline=None)
@given(text=unicode_text, cuts=st.lists(st.integers(0, 400), max_size=8), block=st.integers(1, 9))
def test_encode_iterable_equals_encode_across_blocks(trained, text, cuts, block):
    """Tiny blocks put block boundaries inside pre-tokens and special tokens."""
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    chunks = [text[a:b] for a, b in pairwise(bounds)]
    with mock.patch.object(bpe_module, "_STREAM_BLOCK", block):
        for options in ({"allowed_special": "all"}, {"disallowed_special": ()}):
            streamed = list(trained.encode_iterable(iter(chunks), **options))
            assert streamed == trained.encode(text, **options)


@pytest.mark.parametrize("block", [1, 2, 1 << 16])
def test_encode_iterable_keeps_a_surrogate_pair_split_between_chunks(block):
    # encode() turns the pair into its character, as tiktoken does; so must streaming.
    tok = gpt2()
    with mock.patch.object(bpe_module, "_STREAM_BLOCK", block):
        assert list(tok.encode_iterable(["a\ud83d", "\ude00b"])) == tok.encode("a\ud83d\ude00b")
    assert tok.decode(tok.encode("a\ud83d\ude00b")) == "a😀b"


def test_encode_iterable_raises_on_disallowed_special_split_across_chunks(trained):
    with pytest.raises(ValueError, match="disallowed"):
        list(trained.encode_iterable(["hello <|endo", "ftext|> world"]))


def test_encode_iterable_streams_a_file_line_by_line(bible_text):
    tok = gpt2()
    text = bible_text[:100_000].replace(". ", ".\n")
    assert list(tok.encode_iterable(io.StringIO(text))) == tok.encode(text)


def test_encode_iterable_memory_does_not_grow_with_the_input(bible_text):
    tok = gpt2()
    lines = bible_text[:200_000].replace(". ", ".\n").splitlines(keepends=True)
    tok.encode_ordinary("".join(lines))  # warm the pre-token cache

    def peak_bytes(repeats: int) -> int:
        tracemalloc.start()
        deque(tok.encode_iterable(line for _ in range(repeats) for line in lines), maxlen=0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    small, large = peak_bytes(1), peak_bytes(8)
    assert large < small * 1.5 + 100_000, (small, large)


def test_encode_batch(trained):
    texts = ["one", "two <|a|>", ""]
    assert trained.encode_batch(texts, allowed_special="all") == [
        trained.encode(t, allowed_special="all") for t in texts
    ]


def test_save_load_round_trip_preserves_every_id(trained, tmp_path, bible_text):
    path = trained.save(tmp_path / "tok.json")
    loaded = BPETokenizer.load(path)
    assert loaded.vocab == trained.vocab
    assert loaded.merges == trained.merges
    assert loaded.special_tokens == trained.special_tokens
    assert loaded.pattern == trained.pattern
    sample = bible_text[200_000:230_000] + "<|a|><|b|> 😀"
    assert loaded.encode(sample, allowed_special="all") == trained.encode(
        sample, allowed_special="all"
    )


def test_save_format_is_readable_and_versioned(trained, tmp_path):
    text = trained.save(tmp_path / "tok.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert data["format"] == "slm-tokenizer/bpe" and data["version"] == 1
    assert ["Ġ", "t"] in data["merges"] or ["Ġt", "he"] in data["merges"]
    assert '"merges": [\n    ["' in text  # one merge per line
    assert len(text.splitlines()) > len(trained.merges)


def test_gpt2_save_load_keeps_byte_order(tmp_path):
    tok = gpt2()
    loaded = BPETokenizer.load(tok.save(tmp_path / "gpt2.json"))
    assert loaded.vocab == tok.vocab
    assert loaded.encode("Hello world") == [15496, 995]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t: t[: len(t) // 2], "invalid JSON"),
        (lambda t: t.replace('"version": 1', '"version": 3'), "version 3"),
        (
            lambda t: t.replace('"format": "slm-tokenizer/bpe"', '"format": "other"'),
            "not an slm BPE",
        ),
        (lambda t: t.replace('"merges"', '"merged"'), "'merges' is missing"),
        (lambda t: t.replace('"byte_order": [0, 1,', '"byte_order": [1, 1,'), "byte_order"),
        (lambda t: t.replace('["Ġ", "t"]', '["Ġ", "☃"]'), "not a GPT-2 byte-level character"),
        (lambda t: t.replace('["Ġ", "t"]', '["Ġtqqq", "t"]'), "no earlier merge creates"),
    ],
)
def test_load_rejects_damaged_files(trained, tmp_path, damage, message):
    path = trained.save(tmp_path / "tok.json")
    damaged = damage(path.read_text(encoding="utf-8"))
    assert damaged != path.read_text(encoding="utf-8")
    path.write_text(damaged, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        BPETokenizer.load(path)


def test_load_rejects_binary_file(tmp_path):
    path = tmp_path / "tok.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not UTF-8"):
        BPETokenizer.load(path)


def test_save_is_atomic(trained, tmp_path):
    path = trained.save(tmp_path / "tok.json")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_from_vocab_and_merges_round_trip(trained):
    rebuilt = BPETokenizer.from_vocab_and_merges(
        trained.vocab, trained.merges, trained.special_tokens
    )
    assert rebuilt.vocab == trained.vocab
    without_specials = {i: b for i, b in trained.vocab.items() if i < 256 + len(trained.merges)}
    rebuilt = BPETokenizer.from_vocab_and_merges(without_specials, trained.merges, SPECIALS)
    assert rebuilt.special_tokens == trained.special_tokens


def test_from_vocab_and_merges_rejects_inconsistent_vocab(trained):
    vocab = trained.vocab
    vocab[300] = b"not what merge 44 makes"
    with pytest.raises(ValueError, match=r"merge 44 .* needs .*, which is not in the vocabulary"):
        BPETokenizer.from_vocab_and_merges(vocab, trained.merges)
    with pytest.raises(ValueError, match="no token for the byte 0x00"):
        BPETokenizer.from_vocab_and_merges({0: b"ab"}, [])
    vocab = trained.vocab
    vocab[300], vocab[301] = vocab[301], vocab[300]  # ids may be anywhere, but once each
    vocab[302] = vocab[301]
    with pytest.raises(ValueError, match="has two ids"):
        BPETokenizer.from_vocab_and_merges(vocab, trained.merges)


def test_a_vocabulary_token_no_merge_makes_decodes_but_never_encodes(trained):
    """Built without naming it special, <|endoftext|> is such a token, as in `tokenizers`."""
    vocab = trained.vocab
    plain = BPETokenizer.from_vocab_and_merges(vocab, trained.merges, {})
    eot = trained.special_tokens["<|endoftext|>"]
    assert plain.special_tokens == {} and plain.decode([eot]) == "<|endoftext|>"
    assert plain.encode("<|endoftext|>") == trained.encode_ordinary("<|endoftext|>")
    whole = BPETokenizer.from_vocab_and_merges(vocab, trained.merges, {}, ignore_merges=True)
    assert whole.encode("<|endoftext|>") != [eot]  # the pattern splits it into pre-tokens
    assert whole.encode(" wandering") == trained.encode(" wandering")


@pytest.mark.parametrize("bad", [[1000], [-1], [0, 5, 10**9], ["a"], [None]])
def test_decode_rejects_unknown_ids(trained, bad):
    with pytest.raises(ValueError, match="not in the vocabulary"):
        trained.decode(bad)


@pytest.mark.parametrize("method", ["encode", "encode_ordinary"])
@pytest.mark.parametrize("bad", [b"bytes", None, 42, ["list"]])
def test_encode_rejects_non_str(trained, method, bad):
    with pytest.raises(TypeError, match="must be str"):
        getattr(trained, method)(bad)


def test_decode_replaces_invalid_utf8(trained):
    euro = trained.encode("€")  # three bytes; the first alone is not valid UTF-8
    assert len(euro) >= 1
    assert trained.decode_bytes([0xE2]) == b"\xe2"
    assert trained.decode([0xE2]) == "\ufffd"


# ------------------------------------------------------- merge implementations
@pytest.fixture(scope="module")
def merge_table(trained):
    return trained._merge_table


@settings(max_examples=300, deadline=None)
@given(text=unicode_text, repeat=st.integers(1, 40))
def test_fast_merges_equal_reference(merge_table, text, repeat):
    ids = list((text * repeat).encode("utf-8"))
    expected = merge_reference(ids, merge_table)
    assert merge_short(list(ids), merge_table) == expected
    assert merge_long(list(ids), merge_table) == expected


def test_long_piece_threshold_is_exercised(trained, bible_text):
    word = " " + "and" * LONG_PIECE
    ids = list(word.encode())
    assert trained.encode_ordinary(word) == merge_reference(ids, trained._merge_table)


# ------------------------------------------------------------------ patterns
ORIGINAL_GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@settings(max_examples=300, deadline=None)
@given(text=unicode_text)
def test_fast_gpt2_pattern_equals_openai_original(text):
    assert regex.findall(GPT2_PATTERN, text) == regex.findall(ORIGINAL_GPT2, text)


@pytest.fixture(scope="module")
def skipping(bible_text) -> BPETokenizer:
    """A tokenizer whose pattern drops spaces and punctuation."""
    return BPETokenizer.train(bible_text[:20_000], 300, pattern=r"\p{L}+|\p{N}")


@settings(max_examples=80, deadline=None)
@given(text=unicode_text, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_encode_iterable_with_a_pattern_that_skips_characters(skipping, text, cuts):
    tok = skipping
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    chunks = [text[a:b] for a, b in pairwise(bounds)]
    assert list(tok.encode_iterable(chunks)) == tok.encode(text)
