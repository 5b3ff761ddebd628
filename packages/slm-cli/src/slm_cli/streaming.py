"""Printing tokens as they arrive.

A byte-level BPE token can end in the middle of a UTF-8 character ("é" may be
split over two tokens), so tokens cannot be decoded one by one. An incremental
UTF-8 decoder holds back the bytes of an unfinished character until the rest
arrives.
"""

from __future__ import annotations

import codecs
from collections.abc import Collection, Iterable, Iterator

from slm_tokenizer import BPETokenizer


def stream_text(
    tokenizer: BPETokenizer,
    token_ids: Iterable[int],
    stop_at: int | Collection[int] | None = None,
) -> Iterator[str]:
    """Yield printable text for each token (possibly empty), stopping before `stop_at`
    (one id, or any of several: a chat reply ends at <|im_end|> or end-of-text)."""
    stops = {stop_at} if isinstance(stop_at, int) else set(stop_at or ())
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for token in token_ids:
        if token in stops:
            break
        yield decoder.decode(tokenizer.decode_bytes([token]))
    yield decoder.decode(b"", final=True)


class WordWrap:
    """Break streamed text at spaces before it reaches the terminal's edge.

    A terminal wraps a long line wherever it runs out of columns, often in the
    middle of a word; text arrives here a token at a time, so the break is
    decided per piece: a piece that starts a new word and would cross the edge
    goes to the next line instead.
    """

    def __init__(self, width: int, column: int = 0) -> None:
        self.width, self.column = max(20, width), column

    def __call__(self, piece: str) -> str:
        out = []
        for index, part in enumerate(piece.split("\n")):
            if index:
                out.append("\n")
                self.column = 0
            if part[:1].isspace() and self.column + len(part) > self.width:
                part = "\n" + part.lstrip()
                self.column = 0
            self.column += len(part.lstrip("\n"))
            out.append(part)
        return "".join(out)
