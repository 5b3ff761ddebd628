"""From a reply's tokens to the text a client sees, piece by piece, cut at stop strings.

Two things keep a piece from being sent the moment its token arrives:
- a byte-level token can end inside a UTF-8 character, so an incremental
  decoder holds those bytes until the character is whole (as `slm-cli
  generate` prints);
- text that might be the start of a stop string is held back until it is
  clear that it is not. When a stop string appears, the reply ends before it,
  and the stop string itself is never sent (OpenAI's behaviour).

So the streamed pieces always join to exactly the non-streamed text.
"""

from __future__ import annotations

import codecs

from slm_tokenizer import BPETokenizer


class ReplyText:
    def __init__(self, tokenizer: BPETokenizer, stops: list[str]) -> None:
        self.tokenizer, self.stops = tokenizer, stops
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.sent = 0  # characters of `text` already handed out
        self.stopped = False  # a stop string was found: the reply is over

    def add(self, token: int) -> str:
        """The new text that is safe to send after `token` (often '')."""
        self.text += self.decoder.decode(self.tokenizer.decode_bytes([token]))
        return self._release(final=False)

    def finish(self) -> str:
        """Whatever was held back, once the reply has ended."""
        if not self.stopped:
            self.text += self.decoder.decode(b"", final=True)
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        if self.stopped:
            return ""
        found = [i for i in (self.text.find(stop, self._search_from()) for stop in self.stops)
                 if i >= 0]  # fmt: skip
        if found:
            self.text, self.stopped = self.text[: min(found)], True
            ready = len(self.text)
        else:
            ready = len(self.text) if final else len(self.text) - self._held()
        piece, self.sent = self.text[self.sent : ready], max(self.sent, ready)
        return piece

    def _search_from(self) -> int:
        longest = max((len(stop) for stop in self.stops), default=0)
        return max(0, self.sent - longest)

    def _held(self) -> int:
        """How many trailing characters could still grow into a stop string."""
        for size in range(min(max((len(s) for s in self.stops), default=0), len(self.text)), 0, -1):
            tail = self.text[-size:]
            if any(stop.startswith(tail) for stop in self.stops):
                return size
        return 0
