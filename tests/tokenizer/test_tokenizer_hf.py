"""Reading Hugging Face tokenizer.json files, checked against the `tokenizers` library.

Each file is written by `tokenizers` itself: GPT-2's as the hub serves it (from
OpenAI's files, `<|endoftext|>` both in the vocabulary and an added token), and
a tokenizer that `tokenizers` trains in Llama 3's layout (a Split with GPT-4's
regex, then ByteLevel without its own regex, several added tokens). On
generated text, `BPETokenizer.load` must give the ids the library gives, and
for GPT-2 the ids tiktoken gives.
"""

from __future__ import annotations

import json

import pytest
from hf_folders import gpt2_hub_tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st
from slm_tokenizer import END_OF_TEXT, GPT2_PATTERN, GPT4_PATTERN, BPETokenizer, gpt2
from strategies import unicode_text

tokenizers = pytest.importorskip("tokenizers")

CHAT_TOKENS = [END_OF_TEXT, "<|im_start|>", "<|im_end|>"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("hf-tokenizers")


@pytest.fixture(scope="module")
def hub_gpt2(folder) -> tuple[BPETokenizer, object]:
    """(slm's reading of the hub's GPT-2 tokenizer.json, the `tokenizers` object that wrote it)."""
    theirs = gpt2_hub_tokenizer()
    theirs.save(str(folder / "gpt2.json"))
    return BPETokenizer.load(folder / "gpt2.json"), theirs


@pytest.fixture(scope="module")
def llama3_style(folder, bible_text) -> tuple[BPETokenizer, object]:
    """A byte-level BPE that `tokenizers` trains with Llama 3's pre-tokenizer and chat tokens."""
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers

    theirs = tokenizers.Tokenizer(models.BPE())
    theirs.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(GPT4_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    theirs.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    theirs.train_from_iterator([bible_text[:200_000], "12345 I'LL\r\n\n  x café 中文 😀"], trainer)
    theirs.add_special_tokens(CHAT_TOKENS)
    theirs.save(str(folder / "llama3-style.json"))
    return BPETokenizer.load(folder / "llama3-style.json"), theirs


def test_the_hubs_gpt2_file_is_gpt2(folder, hub_gpt2):
    """<|endoftext|> is in the vocabulary and an added token; it is read as one special token."""
    ours, _ = hub_gpt2
    data = json.loads((folder / "gpt2.json").read_text(encoding="utf-8"))
    assert data["model"]["vocab"][END_OF_TEXT] == 50256
    assert [token["id"] for token in data["added_tokens"]] == [50256]
    reference = gpt2()
    assert ours.vocab == reference.vocab and ours.merges == reference.merges
    assert ours.special_tokens == {END_OF_TEXT: 50256} and ours.pattern == GPT2_PATTERN


@settings(max_examples=300, deadline=None)
@given(unicode_text)
def test_the_hubs_gpt2_gives_the_ids_of_tokenizers_and_tiktoken(
    hub_gpt2, tiktoken_gpt2_encoding, text
):
    ours, theirs = hub_gpt2
    ids = ours.encode(text, allowed_special="all")
    assert ids == theirs.encode(text).ids
    assert ids == tiktoken_gpt2_encoding.encode(text, allowed_special="all")
    assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(unicode_text | st.sampled_from(CHAT_TOKENS), max_size=4).map("".join))
def test_a_llama3_style_file_gives_the_ids_of_tokenizers(llama3_style, text):
    ours, theirs = llama3_style
    assert ours.pattern == GPT4_PATTERN and len(ours.merges) > 500
    assert list(ours.special_tokens) == CHAT_TOKENS
    ids = ours.encode(text, allowed_special="all")
    assert ids == theirs.encode(text).ids
    assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=False)


def test_an_added_token_the_vocabulary_gives_to_other_text_is_refused(folder, hub_gpt2, tmp_path):
    data = json.loads((folder / "gpt2.json").read_text(encoding="utf-8"))
    data["added_tokens"][0]["id"] = 50255  # the vocabulary's " gazed"
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=r"the added token '<\|endoftext\|>' has id 50255"):
        BPETokenizer.load(path)
