"""The interface every slm tokenizer offers.

The training code only needs text -> ids -> text and the size of the id space
(for the embedding table), so that is all the base class asks for. Anything
that implements it can be plugged into data preparation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

# The special token that separates documents (GPT-2's id 50256); every package uses this name.
END_OF_TEXT = "<|endoftext|>"


class Tokenizer(ABC):
    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """One more than the largest token id: the rows an embedding table needs."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Turn text into token ids."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Turn token ids back into text."""


def require_str(text: object, what: str = "text") -> str:
    """Reject non-str input with a message that says how to fix it."""
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)):
        raise TypeError(
            f"{what} must be str, got bytes; decode it first, e.g. data.decode('utf-8')"
        )
    raise TypeError(f"{what} must be str, got {type(text).__name__}")


def replace_surrogates(text: str) -> str:
    """Replace lone surrogates, which UTF-8 cannot encode, with U+FFFD (as tiktoken does)."""
    if text.isascii():  # the common case, checked without encoding a copy
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def unknown_id_error(token_id: object, vocab_size: int) -> ValueError:
    return ValueError(
        f"token id {token_id!r} is not in the vocabulary (ids run 0..{vocab_size - 1})"
    )
