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

Unicode moves on, and `regex` follows it faster than tiktoken does: the `regex`
in use (2026.11.15) knows 17,144 letters and 336 numbers that tiktoken 0.14's
tables (the Rust regex crate's) do not, such as CJK Extension J from U+323B0.
To tiktoken they are neither letters nor numbers, so GPT-2's pattern groups
them with punctuation: U+323B0 followed by "'s" splits as U+323B0 + "'", "s". So that
ids equal tiktoken's for every string, the built-in patterns are compiled with
`LETTER` and `NUMBER`, which are \\p{L} and \\p{N} less exactly those characters
(`NEWER_LETTERS`, `NEWER_NUMBERS`), and those characters join the punctuation
class. tests/tokenizer compares all three classes (and \\s) with tiktoken's for
every code point; a newer `regex` or tiktoken that moves the line fails there.
A pattern of your own is compiled as written. Those classes make `regex` about
half as fast, so `PreTokenizer` uses them only for text that holds one of the
newer characters (a set look-up per character finds out).
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

# Llama 3's and Qwen2's pre-tokenizers, as their tokenizer.json files write them (a Split
# that `tokenizers` runs with Oniguruma): GPT-4's rules without possessive quantifiers, and
# newlines gathered after whitespace. Qwen2 splits digits one by one. `regex` reads both
# as written (tests/tokenizer checks the splits against `tokenizers`); they have no twin.
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# SmolLM2's (and StarCoder's) pre-tokenizer: `tokenizers`' Digits(individual_digits) cuts
# out each number character, then ByteLevel runs GPT-2's regex on each stretch between them.
# As one regex: a number alone, GPT-2's rules without numbers, and whitespace that ends
# where a stretch ends (before a number).
DIGITS_THEN_GPT2_PATTERN = (
    r"""\p{N}|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""
)

# Letters and numbers in `regex`'s Unicode tables but not in tiktoken's (see the
# module docstring), as code point ranges.
NEWER_LETTERS = """
0558 058B-058C 088F 0C5C 0CDC 208F 209D-209F A7CE-A7CF A7D2 A7D4 A7DD A7E2 A7F1 AB6C-AB6D
107BB-107BF 10940-10959 10EC5-10EC7 10ED9-10EEE 11B0A 11DB0-11DDB 11DF1 16EA0-16EB8
16EBB-16ED3 16FF2-16FF3 187F8-187FF 18CD6-18CDA 18D09-18D20 18D80-18DF2 18E00-19191
191A0-191D2 1B123-1B128 1B168 1D6A6 1DF1F-1DF24 1DF2B-1DF81 1DF90-1DF96 1DFCD-1DFFF
1E6C0-1E6DE 1E6E0-1E6E2 1E6E4-1E6E5 1E6E7-1E6ED 1E6F0-1E6F4 1E6FE-1E6FF 2B73A-2B73F 2B81E
2CEA2-2CEAD 323B0-33479 3D000-3FC3F
"""
NEWER_NUMBERS = "11DE0-11DE9 1246F 12475-1247F 12550-12686 16FF4-16FF6"
# Of those, the numbers that Digits (Rust's `char::is_numeric`) knows and Oniguruma does not.
RUST_NEWER_NUMBERS = "11DE0-11DE9 16FF4-16FF6"


def _class_items(ranges: str) -> str:
    """Code point ranges ("0558 058B-058C") as the items of a regex character class."""
    items = []
    for item in ranges.split():
        first, _, last = item.partition("-")
        items.append("-".join(f"\\U{int(code, 16):08x}" for code in (first, last or first)))
    return "".join(items)


def _characters(ranges: str) -> frozenset[str]:
    characters = set()
    for item in ranges.split():
        first, _, last = item.partition("-")
        characters.update(map(chr, range(int(first, 16), int(last or first, 16) + 1)))
    return frozenset(characters)


_NEWER_CHARACTERS = _characters(NEWER_LETTERS) | _characters(NEWER_NUMBERS)
_NEWER = _class_items(NEWER_LETTERS) + _class_items(NEWER_NUMBERS)
# \p{L} and \p{N} as tiktoken has them: `[^\P{L}...]` is "a letter and none of ...".
LETTER = rf"[^\P{{L}}{_class_items(NEWER_LETTERS)}]"
NUMBER = rf"[^\P{{N}}{_class_items(NEWER_NUMBERS)}]"
_OTHER = rf"(?:[^\s\p{{L}}\p{{N}}]|[{_NEWER}])"  # neither: punctuation, symbols, the newer
_OTHER_NOT_CR_LF = rf"(?:[^\r\n\p{{L}}\p{{N}}]|[{_NEWER}])"
_DIGIT = rf"(?:{NUMBER}|[{_class_items(RUST_NEWER_NUMBERS)}])"  # what Digits cuts out
_NEITHER_NOR_DIGIT = rf"(?:[^\s\p{{L}}\p{{N}}]|[{_class_items(NEWER_LETTERS)}]|(?!{_DIGIT})\p{{N}})"

# The built-in patterns with tiktoken's letters and numbers, which are also those of the
# Oniguruma that `tokenizers` runs Llama 3's and Qwen2's patterns with.
_AS_TIKTOKEN = {
    DIGITS_THEN_GPT2_PATTERN: (
        rf"""{_DIGIT}|'s|'t|'re|'ve|'m|'ll|'d| ?{LETTER}+| ?{_NEITHER_NOR_DIGIT}+"""
        rf"""|\s+(?!(?!{_DIGIT})\S)|\s+"""
    ),
    LLAMA3_PATTERN: (
        rf"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|{_OTHER_NOT_CR_LF}?{LETTER}+|{NUMBER}{{1,3}}"""
        rf"""| ?{_OTHER}+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
    ),
    QWEN2_PATTERN: (
        rf"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|{_OTHER_NOT_CR_LF}?{LETTER}+|{NUMBER}"""
        rf"""| ?{_OTHER}+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
    ),
    GPT2_PATTERN: (
        rf"""'(?:[sdmt]|ll|ve|re)| ?{LETTER}++| ?{NUMBER}++| ?{_OTHER}++|\s++$|\s+(?!\S)|\s"""
    ),
    GPT4_PATTERN: (
        rf"""'(?i:[sdmt]|ll|ve|re)|{_OTHER_NOT_CR_LF}?+{LETTER}++|{NUMBER}{{1,3}}+"""
        rf"""| ?{_OTHER}++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
}

# The ASCII twins (see the module docstring); `re` has possessive quantifiers from 3.11.
_ASCII_TWINS = {
    LLAMA3_PATTERN: (
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{1,3}"""
        r"""| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
    ),
    QWEN2_PATTERN: (
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]"""
        r"""| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
    ),
    DIGITS_THEN_GPT2_PATTERN: (
        r"""[0-9]|'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[^\sA-Za-z0-9]+|\s+(?![^\s0-9])|\s+"""
    ),
    GPT2_PATTERN: (
        r"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]++| ?[0-9]++| ?[^\sA-Za-z0-9]++|\s++$|\s+(?!\S)|\s"""
    ),
    GPT4_PATTERN: (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?+[A-Za-z]++|[0-9]{1,3}+"""
        r"""| ?[^\sA-Za-z0-9]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
}


def compile_pattern(pattern: str) -> regex.Pattern:
    """Compile a pre-tokenization pattern, turning a regex error into a clear ValueError.

    The built-in patterns get tiktoken's letters and numbers (see the module docstring).
    """
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a regex string, got {type(pattern).__name__}")
    try:
        return regex.compile(_AS_TIKTOKEN.get(pattern, pattern))
    except regex.error as error:
        raise ValueError(f"pattern {pattern!r} is not a valid regex: {error}") from None


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


class PreTokenizer:
    """Splits text into pre-tokens with the fastest form of a pattern that is exact for it.

    ASCII text goes to the ASCII twin under `re`; other text without any of the
    newer characters to the pattern as written (there its classes agree with
    tiktoken's); the rest to `compile_pattern`'s form with tiktoken's classes.
    """

    def __init__(self, pattern: str) -> None:
        self.exact = compile_pattern(pattern)
        self._plain = regex.compile(pattern) if pattern in _AS_TIKTOKEN else None
        self._ascii = compile_ascii_twin(pattern)
        # The twin again, for ASCII text's bytes: `re` makes bytes pre-tokens faster than str
        # ones (a seventh of the split's time), and BPE starts from bytes anyway.
        self.ascii_bytes = None if self._ascii is None else re.compile(self._ascii.pattern.encode())
        self.covers_every_character = covers_every_character(pattern)

    def findall(self, text: str, end: int | None = None) -> list[str]:
        """The pre-tokens of `text[:end]`."""
        end = len(text) if end is None else end
        if self._ascii is not None and text.isascii():
            return self._ascii.findall(text, 0, end)
        if self._plain is not None and _NEWER_CHARACTERS.isdisjoint(text):
            return self._plain.findall(text, 0, end)
        return self.exact.findall(text, 0, end)

    def last_start(self, text: str, end: int) -> int:
        """Where the last pre-token of `text[:end]` starts (0 if there is none)."""
        start = 0
        for match in self.exact.finditer(text, 0, end):
            start = match.start()
        return start
