"""Pre-tokenization patterns.

Byte-level BPE never merges across the boundaries these regexes draw, which is
what keeps " dog", "dog." and "dog!" from turning into unrelated tokens. Both
patterns need the third-party `regex` module for `\\p{L}` / `\\p{N}` and for
possessive quantifiers.
"""

import regex

# GPT-2's pre-tokenizer, written as tiktoken writes it. OpenAI's encoder.py has
#   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# which splits every string identically (tests/tokenizer checks this on random
# text), but the possessive `++` forms never backtrack and run faster.
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)

# GPT-4's pre-tokenizer (tiktoken's cl100k_base): case-insensitive contractions,
# digits in groups of at most three, and newlines kept apart from other whitespace.
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


def compile_pattern(pattern: str) -> regex.Pattern:
    """Compile a pre-tokenization pattern, turning a regex error into a clear ValueError."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a regex string, got {type(pattern).__name__}")
    try:
        return regex.compile(pattern)
    except regex.error as error:
        raise ValueError(f"pattern {pattern!r} is not a valid regex: {error}") from None
