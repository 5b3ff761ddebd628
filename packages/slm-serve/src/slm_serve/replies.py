"""One generation's output as OpenAI's response: whole, or streamed as server-sent events.

A stream is `data: {chunk}` lines ending with `data: [DONE]`; for chat the
first chunk carries the role and the last the finish reason, as OpenAI's do.
Whichever way the reply goes, the request is cancelled when it ends early: a
stop string was found, or the client went away (Starlette cancels a stream
whose client disconnects; a whole reply watches for the disconnect itself), so
its row is free for the next request at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request as HTTPRequest
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .batcher import Finished, Request, Token
from .errors import APIError
from .model_host import Served
from .protocol import chat_logprobs, completion_logprobs, envelope, new_id, usage
from .text import ReplyText


class GenerationFailed(Exception):
    """The worker failed on this request (its log has the traceback)."""


FAILED = APIError(500, "generation failed on the server; its log says why", kind="server_error")


class Reply:
    def __init__(
        self, served: Served, job: Request, stops: list[str], chat: bool, usage: bool = False
    ) -> None:
        self.served, self.job, self.chat, self.usage = served, job, chat, usage
        self.text = ReplyText(served.tokenizer, stops)
        self.ident = new_id("chatcmpl" if chat else "cmpl")
        self.reason = "length"
        self.tokens = 0
        self.offset = 0  # characters sent so far (the completions format's text_offset)

    async def pieces(self) -> AsyncIterator[tuple[str, list[Token]]]:
        """(new text, the tokens behind it) as they come; `reason` is set when it ends."""
        try:
            while True:
                event = await self.job.events.get()
                if isinstance(event, Finished):
                    if event.reason == "error":
                        raise GenerationFailed
                    self.reason = "stop" if event.reason == "stop" else "length"
                    tail = self.text.finish()
                    if tail:
                        yield tail, []
                    return
                self.tokens += 1
                yield self.text.add(event.id), [event]
                if self.text.stopped:
                    self.reason = "stop"
                    return
        finally:
            self.job.cancel()  # frees the row if generation is still going

    # ------------------------------------------------------------------ whole
    async def whole(self, request: HTTPRequest) -> Response:
        text, tokens = [], []

        async def collect() -> None:
            async for piece, new in self.pieces():
                text.append(piece)
                tokens.extend(new)

        collecting = asyncio.ensure_future(collect())
        watching = asyncio.ensure_future(_disconnected(request))
        await asyncio.wait({collecting, watching}, return_when=asyncio.FIRST_COMPLETED)
        watching.cancel()
        if not collecting.done():  # the client left: nobody to answer
            collecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collecting
            return Response(status_code=499)
        if isinstance(collecting.exception(), GenerationFailed):
            raise FAILED
        collecting.result()
        return JSONResponse(self._whole_body("".join(text), tokens))

    def _whole_body(self, text: str, tokens: list[Token]) -> dict[str, Any]:
        choice: dict[str, Any] = {"logprobs": self._logprobs(tokens, 0)}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        body = envelope(self._kind(False), self.ident, self.served.name, choice)
        body["choices"][0]["finish_reason"] = self.reason
        body["usage"] = usage(len(self.job.prompt), self.tokens)
        return body

    # --------------------------------------------------------------- streamed
    def stream(self) -> StreamingResponse:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(self._events(), media_type="text/event-stream", headers=headers)

    async def _events(self) -> AsyncIterator[str]:
        if self.chat:
            yield self._chunk({"role": "assistant", "content": ""}, [])
        try:
            async for piece, tokens in self.pieces():
                if piece or (tokens and self.job.sampling.top_logprobs is not None):
                    yield self._chunk(piece, tokens)
        except GenerationFailed:  # too late for a status code: an error event, as OpenAI sends
            yield f"data: {json.dumps({'error': FAILED.body()})}\n\n"
            return
        yield self._chunk(None, [], finished=True)
        if self.usage:  # stream_options.include_usage: one more chunk, with no choices
            counts = envelope(self._kind(True), self.ident, self.served.name, {})
            counts.update(choices=[], usage=usage(len(self.job.prompt), self.tokens))
            yield f"data: {json.dumps(counts)}\n\n"
        yield "data: [DONE]\n\n"

    def _chunk(self, content: Any, tokens: list[Token], finished: bool = False) -> str:
        logprobs = self._logprobs(tokens, self.offset) if tokens else None
        choice: dict[str, Any] = {"logprobs": logprobs}
        if self.chat:
            choice["delta"] = content if isinstance(content, dict) else _delta(content)
        else:
            choice["text"] = content or ""
        self.offset += len(content) if isinstance(content, str) else 0
        choice["finish_reason"] = self.reason if finished else None
        chunk = envelope(self._kind(True), self.ident, self.served.name, choice)
        return f"data: {json.dumps(chunk)}\n\n"

    # ---------------------------------------------------------------- helpers
    def _kind(self, chunk: bool) -> str:
        if self.chat:
            return "chat.completion.chunk" if chunk else "chat.completion"
        return "text_completion"

    def _logprobs(self, tokens: list[Token], offset: int) -> dict[str, Any] | None:
        if self.job.sampling.top_logprobs is None:
            return None
        tokenizer = self.served.tokenizer
        if self.chat:
            return chat_logprobs(tokenizer, tokens)
        return completion_logprobs(tokenizer, tokens, offset)


def _delta(content: str | None) -> dict[str, str]:
    return {} if content is None else {"content": content}


async def _disconnected(request: HTTPRequest) -> None:
    """Returns when the client has gone (the body was read already, so only that can come)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
