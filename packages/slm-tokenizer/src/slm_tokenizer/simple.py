"""The word-level tokenizer of the classic tutorial (Raschka, chapter 2).

It splits text into words and punctuation, gives each distinct one an id, and
maps anything it has not seen to `<|unk|>`. It is here because it makes the idea
of a vocabulary concrete; real models use `BPETokenizer`, which never needs an
unknown token because every string is made of bytes it knows.
"""

from __future__ import annotations

from collections.abc import Iterable

import regex

from .base import END_OF_TEXT, Tokenizer, require_str, unknown_id_error

UNKNOWN = "<|unk|>"

# Words, the punctuation marks the tutorial separates, "--", and whitespace.
_SPLIT = regex.compile(r'([,.:;?_!"()\']|--|\s)')
# Decoding joins tokens with spaces, then removes the space before punctuation.
_SPACE_BEFORE_PUNCTUATION = regex.compile(r'\s+([,.:;?!"()\'])')


def split_words(text: str) -> list[str]:
    """Split text into the tokens the tutorial uses (whitespace dropped)."""
    return [part.strip() for part in _SPLIT.split(text) if part.strip()]


class SimpleTokenizer(Tokenizer):
    """Word-level tokenizer with `<|unk|>` for unknown words and `<|endoftext|>`.

    >>> tok = SimpleTokenizer().build_vocab("Hello, world. Is this-- a test?")
    >>> tok.decode(tok.encode("Hello, test!"))
    'Hello, test <|unk|>'
    """

    def __init__(self, vocab: dict[str, int] | None = None) -> None:
        self.str_to_int: dict[str, int] = {}
        self.int_to_str: dict[int, str] = {}
        if vocab is not None:
            self._set_vocab(vocab)

    def _set_vocab(self, vocab: dict[str, int]) -> None:
        for token in (UNKNOWN, END_OF_TEXT):
            if token not in vocab:
                raise ValueError(f"vocabulary lacks {token!r}; build it with build_vocab()")
        self.str_to_int = dict(vocab)
        self.int_to_str = {i: s for s, i in vocab.items()}
        if len(self.int_to_str) != len(self.str_to_int):
            raise ValueError("vocabulary maps two words to the same id; ids must be unique")

    def build_vocab(self, text: str) -> SimpleTokenizer:
        """Give every distinct word of `text` an id (sorted), plus the two special tokens."""
        words = sorted(set(split_words(require_str(text))))
        words += [END_OF_TEXT, UNKNOWN]
        self._set_vocab({word: i for i, word in enumerate(words)})
        return self

    @property
    def vocab_size(self) -> int:
        return len(self.str_to_int)

    @property
    def unknown_id(self) -> int:
        return self.str_to_int[UNKNOWN]

    def _require_vocab(self) -> None:
        if not self.str_to_int:
            raise ValueError("the tokenizer has no vocabulary yet; call build_vocab(text) first")

    def encode(self, text: str) -> list[int]:
        self._require_vocab()
        unknown = self.unknown_id
        return [self.str_to_int.get(word, unknown) for word in split_words(require_str(text))]

    def decode(self, ids: Iterable[int]) -> str:
        self._require_vocab()
        words = []
        for i in ids:
            word = self.int_to_str.get(i)
            if word is None:
                raise unknown_id_error(i, self.vocab_size)
            words.append(word)
        return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", " ".join(words))
