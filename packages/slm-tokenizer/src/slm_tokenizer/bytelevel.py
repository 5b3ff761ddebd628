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


def bytes_to_text(token: bytes) -> str:
    """Render token bytes as GPT-2's printable text (b' the' -> 'Ġthe')."""
    return "".join(BYTE_TO_CHAR[b] for b in token)


def text_to_bytes(text: str) -> bytes:
    """Invert `bytes_to_text`; a character outside the map raises ValueError."""
    try:
        return bytes(CHAR_TO_BYTE[c] for c in text)
    except KeyError as error:
        raise ValueError(
            f"{text!r} contains {error.args[0]!r}, which is not a GPT-2 byte-level character"
        ) from None
