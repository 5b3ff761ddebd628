"""Pre-tokenization patterns.

Byte-level BPE never merges across the boundaries these regexes draw, which is
what keeps " dog", "dog." and "dog!" from turning into unrelated tokens. Both
patterns need the third-party `regex` module for `\\p{L}` / `\\p{N}` and for
possessive quantifiers.

Pre-tokenizing is the largest single cost of encoding and of training, and on
ASCII text the standard library's `re` runs these patterns about twice as fast
as `regex`. So each built-in pattern has an ASCII twin for `re`, in which the
Unicode classes become their ASCII members (letters A-Za-z, digits 0-9; `\\s`
is the same six characters in both). The twin splits ASCII text exactly as the
original does (tests/tokenizer checks this), and only ever sees ASCII text.
"""

import re
import sys

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


# The ASCII twins (see the module docstring); `re` has possessive quantifiers from 3.11.
_ASCII_TWINS = {
    GPT2_PATTERN: (
        r"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]++| ?[0-9]++| ?[^\sA-Za-z0-9]++|\s++$|\s+(?!\S)|\s"""
    ),
    GPT4_PATTERN: (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?+[A-Za-z]++|[0-9]{1,3}+"""
        r"""| ?[^\sA-Za-z0-9]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
}


def covers_every_character(pattern: str) -> bool:
    """True if the pattern's pre-tokens always join back into the text (the built-in ones do).

    Streaming needs to know where the last pre-token starts; for such patterns
    that is the text's length minus the pre-token's.
    """
    return pattern in _ASCII_TWINS


def compile_ascii_twin(pattern: str) -> re.Pattern | None:
    """The `re` pattern that splits ASCII text as `pattern` does, or None if there is none."""
    twin = _ASCII_TWINS.get(pattern)
    if twin is None or sys.version_info < (3, 11):
        return None
    return re.compile(twin, re.ASCII)
