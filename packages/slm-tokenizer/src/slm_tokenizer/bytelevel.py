"""GPT-2's printable rendering of bytes.

Byte-level BPE tokens are arbitrary byte strings, often not valid UTF-8 on
their own. GPT-2 stores them as text by mapping each of the 256 byte values to
a printable character: printable Latin-1 bytes stand for themselves, the rest
(space, control bytes, ...) move to code points from U+0100 up, so a space
shows as "Ġ" and a newline as "Ċ". We use the same map in our save format so
that merges read like words ("Ġthe") and GPT-2's own files load unchanged.
"""

from __future__ import annotations


def _build_byte_to_char() -> dict[int, str]:
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    next_code_point = 256
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(next_code_point)
            next_code_point += 1
    return mapping


BYTE_TO_CHAR: dict[int, str] = _build_byte_to_char()
CHAR_TO_BYTE: dict[str, int] = {c: b for b, c in BYTE_TO_CHAR.items()}


# Both maps serve as str.translate tables, so a token is rendered or read back in one C call
# (GPT-2's 50,000 merges are read and written each time `prepare` saves its tokenizer).
# Reading back, a character outside the map becomes one that Latin-1 cannot encode.
_TO_LATIN1 = {**{b: "\uffff" for b in range(256)}, **{ord(c): b for c, b in CHAR_TO_BYTE.items()}}


def bytes_to_text(token: bytes) -> str:
    """Render token bytes as GPT-2's printable text (b' the' -> 'Ġthe')."""
    return token.decode("latin-1").translate(BYTE_TO_CHAR)


def text_to_bytes(text: str) -> bytes:
    """Invert `bytes_to_text`; a character outside the map raises ValueError."""
    try:
        return text.translate(_TO_LATIN1).encode("latin-1")
    except UnicodeEncodeError:
        bad = next(c for c in text if c not in CHAR_TO_BYTE)
        raise ValueError(
            f"{text!r} contains {bad!r}, which is not a GPT-2 byte-level character"
        ) from None
