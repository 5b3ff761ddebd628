"""GPT-2 loading: ids must equal tiktoken's, id for id."""

from __future__ import annotations

import os

import pytest
import regex
import tiktoken
from hypothesis import given, settings
from slm_tokenizer import BPETokenizer, gpt2, patterns
from slm_tokenizer.gpt2 import gpt2_files, tiktoken_from_gpt2, tiktoken_gpt2
from strategies import unicode_text


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    return gpt2()


def test_vocabulary_matches_tiktoken(tok, tiktoken_gpt2_encoding):
    assert tok.vocab_size == tiktoken_gpt2_encoding.n_vocab == 50257
    assert tok.special_tokens == {"<|endoftext|>": 50256}
    assert tok.eot_id == tiktoken_gpt2_encoding.eot_token
    assert len(tok.merges) == 50000
    for token_id in (0, 1, 255, 256, 1000, 15496, 50255):
        assert tok.vocab[token_id] == tiktoken_gpt2_encoding.decode_single_token_bytes(token_id)


def test_tiktoken_from_gpt2_is_tiktokens_own_encoding(tok, tiktoken_gpt2_encoding, bible_text):
    """Built from slm's tokens, without reading the files again: the same Encoding."""
    built, reference = tiktoken_from_gpt2(tok), tiktoken_gpt2_encoding
    assert built.n_vocab == reference.n_vocab and built.max_token_value == 50256
    assert built._pat_str == reference._pat_str
    assert built._special_tokens == reference._special_tokens
    assert built._mergeable_ranks == reference._mergeable_ranks
    prose = bible_text[:100_000] + " <|endoftext|> \ud800 naïve 東京 🙂"
    assert built.encode_ordinary(prose) == reference.encode_ordinary(prose)


def test_known_ids(tok):
    # Ids anyone can check against the GPT-2 paper's tokenizer.
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode("<|endoftext|>", allowed_special="all") == [50256]


@settings(max_examples=300, deadline=None)
@given(text=unicode_text)
def test_encode_matches_tiktoken(tok, tiktoken_gpt2_encoding, text):
    assert tok.encode_ordinary(text) == tiktoken_gpt2_encoding.encode_ordinary(text)
    assert tok.encode(text, allowed_special="all") == tiktoken_gpt2_encoding.encode(
        text, allowed_special="all"
    )
    assert tok.encode(text, disallowed_special=()) == tiktoken_gpt2_encoding.encode(
        text, disallowed_special=()
    )


@settings(max_examples=200, deadline=None)
@given(text=unicode_text)
def test_round_trip(tok, text):
    assert tok.decode(tok.encode(text, allowed_special="all")) == text


def test_real_prose_matches_tiktoken(tok, tiktoken_gpt2_encoding, bible_text):
    prose = bible_text[:300_000]
    assert tok.encode_ordinary(prose) == tiktoken_gpt2_encoding.encode_ordinary(prose)


def test_long_pre_tokens_match_tiktoken(tok, tiktoken_gpt2_encoding):
    # Long pieces take the heap path in merge.py.
    for text in [" " * 5000 + "x", "a" * 3000, "ab" * 1500, "🙂" * 500, "1" * 2000, "\n" * 999]:
        assert tok.encode_ordinary(text) == tiktoken_gpt2_encoding.encode_ordinary(text)


def test_lone_surrogates_are_replaced_like_tiktoken(tok, tiktoken_gpt2_encoding):
    text = "a\ud800b\udfff"
    assert tok.encode(text) == tiktoken_gpt2_encoding.encode(text)


def test_disallowed_special_raises_like_tiktoken(tok, tiktoken_gpt2_encoding):
    text = "hello <|endoftext|> there"
    with pytest.raises(ValueError):
        tiktoken_gpt2_encoding.encode(text)
    with pytest.raises(ValueError, match="disallowed"):
        tok.encode(text)
    assert tok.encode(text, disallowed_special=()) == tiktoken_gpt2_encoding.encode(
        text, disallowed_special=()
    )
    assert tok.encode(text, allowed_special={"<|endoftext|>"}) == tiktoken_gpt2_encoding.encode(
        text, allowed_special={"<|endoftext|>"}
    )


def test_decode_matches_tiktoken_on_partial_utf8(tok, tiktoken_gpt2_encoding):
    ids = tok.encode("😀 café")
    for end in range(len(ids) + 1):
        assert tok.decode(ids[:end]) == tiktoken_gpt2_encoding.decode(ids[:end])
        assert tok.decode_bytes(ids[:end]) == tiktoken_gpt2_encoding.decode_bytes(ids[:end])


def test_files_that_do_not_belong_together_are_rejected(tmp_path):
    vocab_bpe, encoder_json = gpt2_files()
    lines = vocab_bpe.read_text(encoding="utf-8").splitlines()
    lines[1], lines[2] = lines[2], lines[1]  # swap two merges: ids no longer line up
    shuffled = tmp_path / "vocab.bpe"
    shuffled.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match="do not belong together"):
        BPETokenizer.from_gpt2_files(shuffled, encoder_json)


def test_tiktoken_gpt2_leaves_the_environment_as_it_was(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/somewhere/else")
    assert tiktoken_gpt2().encode("Hello world") == [15496, 995]
    assert os.environ["TIKTOKEN_CACHE_DIR"] == "/somewhere/else"


# ------------------------------------------- Unicode: regex's tables vs tiktoken's
EVERY_CODE_POINT = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


def _tiktoken_class(cls: str) -> set[str]:
    """The characters tiktoken's regex engine puts in `cls` (ids of a byte-only vocabulary)."""
    probe = tiktoken.Encoding(
        "class-probe",
        pat_str=cls,
        mergeable_ranks={bytes([b]): b for b in range(256)},
        special_tokens={},
    )
    return set(bytes(probe.encode_ordinary(EVERY_CODE_POINT)).decode("utf-8"))


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(patterns.LETTER, r"\p{L}"), (patterns.NUMBER, r"\p{N}"), (r"\s", r"\s")],
)
def test_character_classes_equal_tiktokens_for_every_code_point(ours, theirs):
    assert set(regex.findall(ours, EVERY_CODE_POINT)) == _tiktoken_class(theirs)


def test_the_newer_letters_and_numbers_are_exactly_where_the_tables_differ():
    # If this fails, `regex` or tiktoken has new Unicode tables: update NEWER_LETTERS/NUMBERS.
    for plain, ours in ((r"\p{L}", patterns.LETTER), (r"\p{N}", patterns.NUMBER)):
        newer = set(regex.findall(plain, EVERY_CODE_POINT)) - _tiktoken_class(plain)
        assert newer == set(regex.findall(plain, EVERY_CODE_POINT)) - set(
            regex.findall(ours, EVERY_CODE_POINT)
        )


def test_u323b0_splits_like_tiktoken(tok, tiktoken_gpt2_encoding):
    # Issue 10: U+323B0 (CJK Extension J) is a letter to `regex`, not to tiktoken.
    text = "\U000323b0's"
    assert tok.encode(text) == tiktoken_gpt2_encoding.encode(text)
    assert tok.encode(text)[-2:] == [6, 82]  # "'" joined U+323B0, then "s"


def test_every_newer_character_encodes_like_tiktoken(tok, tiktoken_gpt2_encoding):
    newer = regex.findall(r"\p{L}|\p{N}", EVERY_CODE_POINT)
    newer = [c for c in newer if not regex.fullmatch(patterns.LETTER + "|" + patterns.NUMBER, c)]
    assert len(newer) > 10_000
    for start in range(0, len(newer), 500):
        text = "".join(f"{c}'s a{c}1 {c}{c}. 1{c}" for c in newer[start : start + 500])
        assert tok.encode_ordinary(text) == tiktoken_gpt2_encoding.encode_ordinary(text)
