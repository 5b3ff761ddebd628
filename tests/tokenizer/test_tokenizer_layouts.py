"""Byte-level BPE files in every layout real models use, checked against `tokenizers`.

`tokenizers` trains one byte-level BPE on generated text; its tokenizer.json is
then rewritten into each layout (the same merges, the ids moved):
- gpt2: bytes at 0..255, merge i at 256 + i, `<|endoftext|>` after, GPT-2's
  ByteLevel pre-tokenizer;
- smollm2: 17 special tokens at ids 0..16 (in the vocabulary and added), the
  vocabulary after them, and SmolLM2's pre-tokenizer (Digits, then ByteLevel);
- llama3: Llama 3's Split regex, the merges listed as tiktoken's converter
  lists them (every split of every token, so several merges make one token),
  `ignore_merges`, and special tokens after the merges with a gap of ids;
- qwen2: Qwen2's Split regex and NFC normalizer, special tokens right after
  the merges;
- permuted: every id shuffled, so merge ranks are not in id order.
slm must give the ids `tokenizers` gives on generated text, decode them back,
and keep them through its own save and through `to_hf_tokenizer`.
"""

from __future__ import annotations

import json
import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slm_tokenizer import (
    DIGITS_THEN_GPT2_PATTERN,
    END_OF_TEXT,
    LLAMA3_PATTERN,
    QWEN2_PATTERN,
    BPETokenizer,
)
from slm_tokenizer.bytelevel import bytes_to_text
from slm_tokenizer.chat import with_chat_tokens
from slm_tokenizer.hf_format import to_hf_tokenizer
from slm_tokenizer.patterns import PreTokenizer
from strategies import FRAGMENTS, unicode_text

tokenizers = pytest.importorskip("tokenizers")

DIGITS = {"type": "Digits", "individual_digits": True}
SPECIALS = [END_OF_TEXT, "<|im_start|>", "<|im_end|>"] + [f"<|extra_{i}|>" for i in range(14)]
LAYOUTS = ["gpt2", "smollm2", "llama3", "qwen2", "permuted"]


def generated_text(seed: int = 0, words: int = 60_000) -> str:
    """Text with the features the patterns treat apart: cases, contractions, digits, scripts."""
    rng = random.Random(seed)
    syllables = ["th", "e", "an", "in", "er", "on", "re", "st", "ou", "ing", "a", "o", "x"]
    pieces = [*FRAGMENTS, "Über", "naïve", "東京", "ПРИВЕТ", "🙂", "👍🏽", "I'M", "can't"]
    out = []
    for _ in range(words):
        roll = rng.random()
        if roll < 0.7:
            word = "".join(rng.choices(syllables, k=rng.randint(1, 4)))
            out.append(word.capitalize() if rng.random() < 0.1 else word)
        elif roll < 0.8:
            out.append(str(rng.randint(0, 10 ** rng.randint(1, 7))))
        else:
            out.append(rng.choice(pieces))
        out.append(rng.choice([" ", " ", " ", "  ", "\n", ", ", ". ", "\n\n", "\t", " \r\n"]))
    return "".join(out)


@pytest.fixture(scope="module")
def trained() -> dict:
    """The parsed tokenizer.json of a byte-level BPE that `tokenizers` trains (no specials)."""
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=900, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator([generated_text()], trainer)
    return json.loads(tokenizer.to_str())


def _added(texts_and_ids: list[tuple[str, int]]) -> list[dict]:
    return [
        {
            "id": token_id,
            "content": text,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for text, token_id in texts_and_ids
    ]


def _split_then_byte_level(pattern: str) -> dict:
    return {
        "type": "Sequence",
        "pretokenizers": [
            {
                "type": "Split",
                "pattern": {"Regex": pattern},
                "behavior": "Isolated",
                "invert": False,
            },
            {
                "type": "ByteLevel",
                "add_prefix_space": False,
                "trim_offsets": False,
                "use_regex": False,
            },
        ],
    }


def _tiktoken_style_merges(vocab: dict[str, int]) -> list[list[str]]:
    """Every split of each token into two tokens, ordered by the token's id (as Llama 3's)."""
    merges = []
    for token, token_id in vocab.items():
        local = [
            (vocab[token[:i]], vocab[token[i:]], [token[:i], token[i:]])
            for i in range(1, len(token))
            if token[:i] in vocab and token[i:] in vocab
        ]
        merges += [(token_id, *entry) for entry in sorted(local)]
    return [merge for *_, merge in sorted(merges)]


def rewrite(data: dict, layout: str) -> dict:
    """`data` (a trained tokenizer.json) with its ids moved into `layout`."""
    data = json.loads(json.dumps(data))
    model = data["model"]
    vocab: dict[str, int] = model["vocab"]
    size = len(vocab)
    if layout == "gpt2":
        data["added_tokens"] = _added([(END_OF_TEXT, size)])
    elif layout == "smollm2":
        model["vocab"] = {text: i for i, text in enumerate(SPECIALS)}
        model["vocab"].update({text: i + len(SPECIALS) for text, i in vocab.items()})
        data["added_tokens"] = _added([(text, i) for i, text in enumerate(SPECIALS)])
        data["pre_tokenizer"] = {
            "type": "Sequence",
            "pretokenizers": [DIGITS, data["pre_tokenizer"]],
        }
    elif layout == "llama3":
        data["pre_tokenizer"] = _split_then_byte_level(LLAMA3_PATTERN)
        model["merges"], model["ignore_merges"] = _tiktoken_style_merges(vocab), True
        # Ids with gaps: `tokenizers` keeps an added token's id only if the vocabulary has it.
        specials = [(text, size + 7 + 3 * i) for i, text in enumerate(SPECIALS)]
        model["vocab"].update(specials)
        data["added_tokens"] = _added(specials)
    elif layout == "qwen2":
        data["pre_tokenizer"] = _split_then_byte_level(QWEN2_PATTERN)
        data["normalizer"] = {"type": "NFC"}
        data["added_tokens"] = _added([(text, size + i) for i, text in enumerate(SPECIALS[:3])])
    else:
        ids = list(range(size))
        random.Random(1).shuffle(ids)
        model["vocab"] = {text: ids[i] for text, i in vocab.items()}
        data["added_tokens"] = _added([(END_OF_TEXT, size)])
    return data


@pytest.fixture(scope="module")
def pairs(trained, tmp_path_factory) -> dict[str, tuple[BPETokenizer, object]]:
    """For each layout: (slm's reading of the file, `tokenizers`' reading of it)."""
    folder = tmp_path_factory.mktemp("layouts")
    out = {}
    for layout in LAYOUTS:
        path = folder / f"{layout}.json"
        path.write_text(json.dumps(rewrite(trained, layout)), encoding="utf-8")
        out[layout] = BPETokenizer.load(path), tokenizers.Tokenizer.from_file(str(path))
    return out


def test_the_layouts_are_what_they_claim(pairs):
    smollm2, _ = pairs["smollm2"]
    assert [smollm2.special_tokens[text] for text in SPECIALS] == list(range(17))
    assert smollm2.pattern == DIGITS_THEN_GPT2_PATTERN
    llama3, theirs = pairs["llama3"]
    assert llama3.pattern == LLAMA3_PATTERN and llama3.ignore_merges
    assert len(llama3.merges) > len(pairs["gpt2"][0].merges)  # several merges make one token
    gpt2_ids = pairs["gpt2"][0].vocab
    assert set(pairs["permuted"][0].vocab.values()) == set(gpt2_ids.values())
    assert pairs["permuted"][0].vocab != gpt2_ids
    special_ids = sorted(llama3.special_tokens.values())
    assert special_ids[0] > len(llama3.vocab) - len(special_ids)  # a gap before them
    assert all(theirs.id_to_token(i) == text for text, i in llama3.special_tokens.items())


@pytest.mark.parametrize("pattern", [LLAMA3_PATTERN, QWEN2_PATTERN])
@settings(max_examples=300, deadline=None)
@given(text=unicode_text)
def test_llama3_and_qwen2_patterns_split_as_tokenizers_does(pattern, text):
    """`tokenizers` runs them with Oniguruma; slm with `regex` and tiktoken's letters."""
    split = tokenizers.pre_tokenizers.Split(tokenizers.Regex(pattern), behavior="isolated")
    assert PreTokenizer(pattern).findall(text) == [p for p, _ in split.pre_tokenize_str(text)]


@settings(max_examples=300, deadline=None)
@given(text=unicode_text)
def test_smollm2s_digits_then_byte_level_is_one_pattern(text):
    """Digits uses Rust's numbers, ByteLevel Oniguruma's letters and numbers: both hold."""
    from tokenizers import pre_tokenizers

    steps = [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(False)]
    theirs = pre_tokenizers.Sequence(steps).pre_tokenize_str(text)
    ours = PreTokenizer(DIGITS_THEN_GPT2_PATTERN).findall(text)
    assert [bytes_to_text(p.encode("utf-8")) for p in ours] == [p for p, _ in theirs]


texts = st.lists(unicode_text | st.sampled_from(SPECIALS[:3]), max_size=4).map("".join)


@pytest.mark.parametrize("layout", LAYOUTS)
@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_ids_are_those_of_tokenizers(pairs, layout, text):
    ours, theirs = pairs[layout]
    specials = set(ours.special_tokens)
    ids = ours.encode(text, allowed_special="all")
    assert ids == theirs.encode(text, add_special_tokens=False).ids
    assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=False)
    if not any(special in text for special in specials):
        assert ours.encode(text) == ids
        if ours.normalizer:
            text = unicodedata.normalize(ours.normalizer, text)
        assert ours.decode(ids) == text.encode("utf-8", "replace").decode("utf-8")
    else:
        with pytest.raises(ValueError, match="disallowed"):
            ours.encode(text)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_saving_and_exporting_keep_the_ids(pairs, layout, tmp_path):
    ours, _ = pairs[layout]
    text = generated_text(seed=2, words=3000) + "".join(SPECIALS[:3])
    ids = ours.encode(text, allowed_special="all")
    again = BPETokenizer.load(ours.save(tmp_path / "tok.json"))
    assert again.encode(text, allowed_special="all") == ids and again.vocab == ours.vocab
    version = json.loads((tmp_path / "tok.json").read_text(encoding="utf-8"))["version"]
    assert version == (1 if layout == "gpt2" else 2)  # qwen2 has GPT-2's layout, and NFC
    exported = tokenizers.Tokenizer.from_str(json.dumps(to_hf_tokenizer(ours)))
    assert exported.encode(text).ids == ids
    assert BPETokenizer.load(ours.save(tmp_path / "tok.json")).vocab == ours.vocab


@pytest.mark.parametrize("layout", LAYOUTS)
def test_streaming_gives_the_ids_of_the_whole_text(pairs, layout):
    ours, _ = pairs[layout]
    text = generated_text(seed=3, words=30_000)  # more than one streaming block
    lines = text.splitlines(keepends=True)
    options = {"allowed_special": "all"}
    assert list(ours.encode_iterable(lines, **options)) == ours.encode(text, **options)


def test_a_stream_is_normalized_as_the_whole_text(pairs):
    """Block boundaries inside "e" + combining marks: they still compose as in the whole."""
    ours, theirs = pairs["qwen2"]
    chunks = ["x " * 32_767 + "e\u0323", "\u0301 東京" * 30_000 + "e", "\u0301" * 2, "e\u0301"]
    ids = list(ours.encode_iterable(chunks))
    assert ids == ours.encode("".join(chunks)) == theirs.encode("".join(chunks)).ids


def test_decode_takes_any_id_of_the_file(pairs):
    ours, theirs = pairs["llama3"]
    every = sorted(ours.vocab)
    assert ours.decode(every) == theirs.decode(every, skip_special_tokens=False)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ours.decode([max(every) + 1])
    gap = next(i for i in range(max(every)) if i not in ours.vocab)
    with pytest.raises(ValueError, match=f"token id {gap} names no token: .* leaves a gap"):
        ours.decode([5, gap])


def test_chat_tokens_join_any_layout_after_its_last_id(pairs):
    ours, theirs = pairs["permuted"]
    chat = with_chat_tokens(ours)
    start, end = chat.special_tokens["<|im_start|>"], chat.special_tokens["<|im_end|>"]
    assert (start, end) == (ours.vocab_size, ours.vocab_size + 1)
    text = "<|im_start|>user\nhow 1,234 can't 😀<|im_end|>"
    ids = chat.encode(text, allowed_special="all")
    assert ids[0] == start and ids[-1] == end
    assert ids[1:-1] == theirs.encode(text[12:-10]).ids == ours.encode(text[12:-10])


def test_a_file_without_every_byte_is_refused(trained, tmp_path):
    data = rewrite(trained, "qwen2")
    data["added_tokens"] = []
    del data["model"]["vocab"]["Ā"]  # byte 0
    data["model"]["merges"] = [m for m in data["model"]["merges"] if "Ā" not in "".join(m)]
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=r"no token for the byte 0x00 .* needs a token for each"):
        BPETokenizer.load(path)


def test_a_normalizer_other_than_nfc_is_refused(trained, tmp_path):
    data = rewrite(trained, "qwen2")
    data["normalizer"] = {"type": "Lowercase"}
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="has the normalizer 'Lowercase'; slm applies none or NFC"):
        BPETokenizer.load(path)
