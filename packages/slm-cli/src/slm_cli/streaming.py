"""Printing tokens as they arrive.

A byte-level BPE token can end in the middle of a UTF-8 character ("é" may be
split over two tokens), so tokens cannot be decoded one by one. An incremental
UTF-8 decoder holds back the bytes of an unfinished character until the rest
arrives.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator

from slm_tokenizer import BPETokenizer


def stream_text(
    tokenizer: BPETokenizer, token_ids: Iterable[int], stop_at: int | None = None
) -> Iterator[str]:
    """Yield printable text for each token (possibly empty), stopping before `stop_at`."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for token in token_ids:
        if token == stop_at:
            break
        yield decoder.decode(tokenizer.decode_bytes([token]))
    yield decoder.decode(b"", final=True)
