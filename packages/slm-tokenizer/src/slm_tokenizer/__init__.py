"""slm-tokenizer: byte-level BPE (trainable, GPT-2 compatible) and a word-level tokenizer.

>>> from slm_tokenizer import BPETokenizer, gpt2
>>> gpt2().encode("Hello world")
[15496, 995]
>>> tok = BPETokenizer.train(open("corpus.txt"), vocab_size=1000)  # doctest: +SKIP
"""

from importlib.metadata import version as _version

from .base import END_OF_TEXT, Tokenizer
from .bpe import BPETokenizer
from .chat import (
    CHAT_TEMPLATE,
    IM_END,
    IM_START,
    RESERVED_TOKENS,
    render_conversation,
    with_chat_tokens,
)
from .files import write_bytes_atomically, write_text_atomically
from .gpt2 import gpt2
from .patterns import (
    DIGITS_THEN_GPT2_PATTERN,
    GPT2_PATTERN,
    GPT4_PATTERN,
    LLAMA3_PATTERN,
    QWEN2_PATTERN,
)
from .simple import SimpleTokenizer

__all__ = [
    "CHAT_TEMPLATE",
    "DIGITS_THEN_GPT2_PATTERN",
    "END_OF_TEXT",
    "GPT2_PATTERN",
    "GPT4_PATTERN",
    "IM_END",
    "IM_START",
    "LLAMA3_PATTERN",
    "QWEN2_PATTERN",
    "RESERVED_TOKENS",
    "BPETokenizer",
    "SimpleTokenizer",
    "Tokenizer",
    "gpt2",
    "render_conversation",
    "with_chat_tokens",
    "write_bytes_atomically",
    "write_text_atomically",
]
__version__ = _version("slm-tokenizer")
