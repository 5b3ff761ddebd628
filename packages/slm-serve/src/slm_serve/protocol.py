"""OpenAI's request and response shapes, for the fields slm serves.

Requests are pydantic models with strict scalar types, so `"temperature":
"hot"` or `"max_tokens": 2.5` is a 400 naming the field rather than a guess.
Fields slm does not use (frequency_penalty, user, ...) are ignored, as many
OpenAI-compatible servers do, so existing clients work unchanged. `top_k` is
an extension (as in vLLM and llama.cpp's server).

Log-probabilities are those of the model's own distribution (log-softmax of
its logits, before temperature, top-k or top-p), as OpenAI reports them.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from slm_tokenizer import BPETokenizer

from .batcher import Token

MAX_TOP_LOGPROBS = 20


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: StrictBool = False  # a last chunk with the token counts


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: StrictStr | None = None
    temperature: Annotated[StrictFloat, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[StrictFloat, Field(gt=0, le=1)] = 1.0
    top_k: Annotated[StrictInt, Field(ge=0)] | None = None  # extension; 0 = off
    max_tokens: StrictInt | None = None
    stop: StrictStr | list[StrictStr] | None = None
    seed: StrictInt | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: Annotated[StrictInt, Field(ge=1, le=1)] = 1  # one choice per request

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [stop for stop in stops if stop]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: StrictStr


class ChatRequest(_Request):
    messages: list[ChatMessage]
    logprobs: StrictBool = False
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None
    max_completion_tokens: StrictInt | None = None  # OpenAI's newer name for max_tokens

    def top(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_Request):
    prompt: StrictStr
    logprobs: Annotated[StrictInt, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None

    def top(self) -> int | None:
        return self.logprobs


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def envelope(kind: str, ident: str, model: str, choice: dict[str, Any]) -> dict[str, Any]:
    """What every response and chunk wraps its one choice in."""
    return {"id": ident, "object": kind, "created": int(time.time()), "model": model,
            "choices": [{"index": 0, **choice}]}  # fmt: skip


# ------------------------------------------------------------ log-probabilities
def token_text(tokenizer: BPETokenizer, token: int) -> tuple[str, list[int]]:
    data = tokenizer.decode_bytes([token])
    return data.decode("utf-8", errors="replace"), list(data)


def chat_logprobs(tokenizer: BPETokenizer, tokens: list[Token]) -> dict[str, Any]:
    """Chat's format: {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]}."""

    def entry(token: int, logprob: float) -> dict[str, Any]:
        text, data = token_text(tokenizer, token)
        return {"token": text, "logprob": logprob, "bytes": data}

    return {
        "content": [
            {**entry(t.id, t.logprob), "top_logprobs": [entry(i, lp) for i, lp in t.top]}
            for t in tokens
        ],
        "refusal": None,
    }


def completion_logprobs(
    tokenizer: BPETokenizer, tokens: list[Token], offset: int
) -> dict[str, Any]:
    """The completions format: parallel lists, and each token's character offset."""
    texts = [token_text(tokenizer, t.id)[0] for t in tokens]
    offsets = []
    for text in texts:
        offsets.append(offset)
        offset += len(text)
    tops = [{token_text(tokenizer, i)[0]: lp for i, lp in t.top} for t in tokens]
    return {
        "tokens": texts,
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": tops,
        "text_offset": offsets,
    }
