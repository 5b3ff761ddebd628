"""BPE training: hand-checked merges, a naive reference trainer, determinism."""

from __future__ import annotations

import multiprocessing
import warnings
from collections import Counter
from itertools import pairwise

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from slm_tokenizer import GPT2_PATTERN, GPT4_PATTERN, BPETokenizer, counting
from slm_tokenizer.patterns import compile_pattern
from strategies import unicode_text


def naive_train(
    text: str, vocab_size: int, specials: list[str], pattern: str
) -> list[tuple[bytes, bytes]]:
    """The textbook loop on byte strings: recount every pair before every merge.

    Pre-tokens come from `compile_pattern`, which gives the built-in patterns
    tiktoken's letters and numbers (tested against tiktoken in test_tokenizer_gpt2).
    """
    segments = regex.split("|".join(map(regex.escape, specials)), text) if specials else [text]
    pre_tokenizer = compile_pattern(pattern)
    words = Counter(piece for segment in segments for piece in pre_tokenizer.findall(segment))
    sequences = {word: [bytes([b]) for b in word.encode("utf-8")] for word in words}
    merges = []
    for _ in range(vocab_size - 256 - len(specials)):
        pair_counts: Counter[tuple[bytes, bytes]] = Counter()
        for word, count in words.items():
            sequence = sequences[word]
            for pair in pairwise(sequence):
                pair_counts[pair] += count
        if not pair_counts:
            break
        best = max(pair_counts, key=lambda pair: (pair_counts[pair], pair))
        merges.append(best)
        for word, sequence in sequences.items():
            merged, i = [], 0
            while i < len(sequence):
                if i + 1 < len(sequence) and (sequence[i], sequence[i + 1]) == best:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(sequence[i])
                    i += 1
            sequences[word] = merged
    return merges


def test_hand_checked_example():
    # aaabdaaabac: "aa" occurs 4 times; then ("aa","a") and ("a","b") tie at 2 and the
    # lexicographically greater pair wins; then "aaab" twice; then four pairs tie at 1
    # and ("d", "aaab") is the greatest.
    tok = BPETokenizer.train("aaabdaaabac", vocab_size=256 + 4)
    assert tok.merges == [(b"a", b"a"), (b"aa", b"a"), (b"aaa", b"b"), (b"d", b"aaab")]
    assert tok.encode("aaabdaaabac") == [258, 259, ord("a"), ord("c")]
    assert tok.vocab[259] == b"daaab"


def test_matches_naive_reference_on_prose(bible_text):
    text = bible_text[:20_000]
    tok = BPETokenizer.train(text, vocab_size=256 + 300)
    assert tok.merges == naive_train(text, 256 + 300, [], GPT2_PATTERN)


@settings(max_examples=60, deadline=None)
@given(text=unicode_text, extra=st.integers(0, 40), use_gpt4=st.booleans())
def test_matches_naive_reference(text, extra, use_gpt4):
    pattern = GPT4_PATTERN if use_gpt4 else GPT2_PATTERN
    specials = ["<|endoftext|>"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny texts may run out of pairs to merge
        tok = BPETokenizer.train(text, 256 + 1 + extra, specials, pattern)
    assert tok.merges == naive_train(text, 256 + 1 + extra, specials, pattern)


def test_deterministic(bible_text):
    text = bible_text[:50_000]
    first = BPETokenizer.train(text, 700, ["<|endoftext|>"])
    second = BPETokenizer.train(text, 700, ["<|endoftext|>"])
    assert first.merges == second.merges and first.vocab == second.vocab


def test_vocab_size_counts_bytes_merges_and_specials(bible_text):
    tok = BPETokenizer.train(bible_text[:50_000], 600, ["<|endoftext|>", "<|pad|>"])
    assert len(tok.merges) == 600 - 256 - 2
    assert tok.vocab_size == 600
    assert tok.special_tokens == {"<|endoftext|>": 598, "<|pad|>": 599}


def test_iterable_of_lines_equals_list(bible_text):
    lines = bible_text[:30_000].splitlines(keepends=True)
    assert BPETokenizer.train(iter(lines), 500).merges == BPETokenizer.train(lines, 500).merges


def test_no_merge_crosses_a_special_token():
    # Without the split, "x<|sep|>x" repeated would learn merges containing "<|sep|>".
    text = "x<|sep|>x" * 200 + "ab" * 5
    tok = BPETokenizer.train(text, 256 + 1 + 3, ["<|sep|>"])
    assert tok.merges == [(b"x", b"x"), (b"a", b"b"), (b"ab", b"ab")]
    assert tok.encode("x<|sep|>x", allowed_special="all") == [
        ord("x"),
        tok.special_tokens["<|sep|>"],
        ord("x"),
    ]


def test_running_out_of_pairs_warns():
    with pytest.warns(UserWarning, match="ran out of pairs"):
        tok = BPETokenizer.train("abc", 1000)
    assert tok.merges == [(b"b", b"c"), (b"a", b"bc")]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"text": b"bytes", "vocab_size": 300}, TypeError, "decode it first"),
        ({"text": ["ok", 3], "vocab_size": 300}, TypeError, "must be str"),
        ({"text": "abc", "vocab_size": 255}, ValueError, "at least 256"),
        (
            {"text": "abc", "vocab_size": 257, "special_tokens": ["<a>", "<b>"]},
            ValueError,
            "at least 258",
        ),
        ({"text": "abc", "vocab_size": 300.0}, TypeError, "must be an int"),
        (
            {"text": "abc", "vocab_size": 300, "special_tokens": ["<a>", "<a>"]},
            ValueError,
            "distinct",
        ),
        ({"text": "abc", "vocab_size": 300, "pattern": "("}, ValueError, "not a valid regex"),
    ],
)
def test_bad_training_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        BPETokenizer.train(**kwargs)


# --------------------------------------------------- counting in worker processes
@pytest.fixture()
def small_batches(monkeypatch):
    """Batches of 5,000 characters, so that a small corpus is shared between processes."""
    monkeypatch.setattr(counting, "BATCH_CHARS", 5_000)


def _documents(bible_text: str) -> list[str]:
    return [bible_text[i : i + 3_000] for i in range(0, 120_000, 3_000)]


@pytest.mark.parametrize("pattern", [GPT2_PATTERN, GPT4_PATTERN])
def test_worker_processes_learn_the_same_merges(bible_text, small_batches, pattern, monkeypatch):
    documents = [*_documents(bible_text), "naïve café ünïcödé " * 300, "<|endoftext|>" * 3]
    one = BPETokenizer.train(documents, 900, ["<|endoftext|>"], pattern, workers=1)
    shared = []
    in_parallel = counting._count_in_parallel
    monkeypatch.setattr(
        counting, "_count_in_parallel", lambda *args: shared.append(args) or in_parallel(*args)
    )
    two = BPETokenizer.train(iter(documents), 900, ["<|endoftext|>"], pattern, workers=2)
    assert shared, "the corpus was not shared between processes"
    assert two.merges == one.merges and len(one.merges) == 900 - 257


def test_worker_counts_equal_single_process_counts(bible_text):
    # One string cut at special tokens only: the pieces between them are the batches.
    text = "<|endoftext|>".join(_documents(bible_text))
    specials = ["<|endoftext|>"]
    one = counting.count_pre_tokens(text, specials, GPT2_PATTERN, 1)
    for workers in (2, 3):
        counts = counting.count_pre_tokens(
            text, specials, GPT2_PATTERN, workers, batch_chars=10_000
        )
        assert counts == one
    assert "<|endoftext|>" not in one and one[" the"] > 100


def test_counting_uses_tiktokens_letters():
    counts = counting.count_pre_tokens(["\U000323b0's", "a's"], [], GPT2_PATTERN)
    assert counts == {"\U000323b0'": 1, "s": 1, "a": 1, "'s": 1}


def test_a_string_without_special_tokens_stays_in_one_piece(bible_text):
    pieces = list(counting._batches(counting._segments(bible_text[:50_000], []), 1_000))
    assert pieces == [[bible_text[:50_000]]]


@pytest.mark.skipif(
    multiprocessing.get_start_method() != "fork", reason="the patch reaches forked workers only"
)
def test_a_failed_worker_is_reported(bible_text, monkeypatch, small_batches):
    monkeypatch.setattr(counting, "count_batch", _fail)
    with pytest.raises(RuntimeError, match=r"pre-token counting process failed.*simulated"):
        BPETokenizer.train(_documents(bible_text), 300, workers=2)


def _fail(pre_tokenizer, batch, counts):
    raise MemoryError("simulated")


def test_a_dead_worker_is_reported():
    class Dead:
        exitcode = -9

    with pytest.raises(RuntimeError, match="died"):
        counting._check_alive([Dead()])


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_worker_counts(workers):
    with pytest.raises(ValueError, match="workers must be a positive int"):
        BPETokenizer.train("abc abc", 260, workers=workers)
