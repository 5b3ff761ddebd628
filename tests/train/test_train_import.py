"""`import_hf` on GPT-2 as the Hugging Face hub serves it (issue 19, item 2).

The folder is built offline as the hub's was (tests/hf_folders.py): OpenAI's
vocabulary through the `tokenizers` library, `<|endoftext|>` both in the
vocabulary and an added token, and a tiny random GPT2LMHeadModel with GPT-2's
50,257 tokens. The imported run's tokenizer is checked on generated text
against `tokenizers` and tiktoken, its model against transformers.
"""

from __future__ import annotations

import pytest
import torch
from hf_folders import gpt2_hub_folder
from hypothesis import given, settings
from hypothesis import strategies as st
from slm_tokenizer import END_OF_TEXT
from slm_tokenizer.gpt2 import tiktoken_gpt2
from slm_train import import_hf

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """(the hub-style folder, the imported run, the run's tokenizer, `tokenizers`' reading)."""
    torch.set_num_threads(1)
    folder = gpt2_hub_folder(tmp_path_factory.mktemp("hub") / "gpt2")
    run = import_hf(folder, folder.parent / "run")
    theirs = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    return folder, run, run.tokenizer(), theirs


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=12),
            st.just(END_OF_TEXT),
            st.sampled_from(["'s", "  \n", "1 2", "<|endoftext", "😀", "\u00a0x"]),
        ),
        max_size=6,
    ).map("".join)
)
def test_the_imported_tokenizer_gives_the_ids_of_tokenizers_and_tiktoken(hub, text):
    _, _, ours, theirs = hub
    ids = ours.encode(text, allowed_special="all")
    assert ids == theirs.encode(text).ids
    assert ids == tiktoken_gpt2().encode(text, allowed_special="all")


def test_the_imported_model_gives_the_logits_of_transformers(hub):
    folder, run, tokenizer, _ = hub
    assert run.model_config.vocab_size == 50257 and tokenizer.eot_id == 50256
    theirs = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    ids = torch.tensor([tokenizer.encode("Hello world<|endoftext|>It's", allowed_special="all")])
    with torch.no_grad():
        torch.testing.assert_close(run.load_model()(ids), theirs(ids).logits, atol=1e-4, rtol=0)
