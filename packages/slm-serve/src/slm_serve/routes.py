"""The OpenAI-compatible endpoints: GET /v1/models, POST /v1/chat/completions, /v1/completions.

Each route checks the request (the model's name, the messages, how many
tokens the prompt and the reply need against the model's context), turns it
into token ids and sampling settings, queues it with the batcher, and answers
with the reply (replies.py), whole or streamed.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi import Request as HTTPRequest
from fastapi.responses import Response

from .batcher import QueueFull, Request, Sampling
from .errors import APIError, busy, parse
from .model_host import NotAChatRun, Served
from .protocol import ChatRequest, CompletionRequest
from .replies import Reply

router = APIRouter(prefix="/v1")
STARTED = int(time.time())


@router.get("/models")
async def models(request: HTTPRequest) -> dict[str, Any]:
    served: Served = request.app.state.served
    model = {"id": served.name, "object": "model", "created": STARTED, "owned_by": "slm"}
    return {"object": "list", "data": [model]}


@router.post("/chat/completions")
async def chat_completions(request: HTTPRequest) -> Response:
    served: Served = request.app.state.served
    body = await parse(request, ChatRequest)
    _check_model(served, body.model)
    if not body.messages:
        raise APIError(
            400,
            'messages is empty; send at least one, e.g. [{"role": "user", "content": "Hello"}]',
            param="messages",
        )
    try:
        prompt = served.prompt_ids([message.model_dump() for message in body.messages])
    except NotAChatRun as error:
        raise APIError(400, str(error), param="messages", code="not_a_chat_model") from None
    limit = body.max_tokens if body.max_completion_tokens is None else body.max_completion_tokens
    return await _generate(request, served, prompt, body, limit, chat=True)


@router.post("/completions")
async def completions(request: HTTPRequest) -> Response:
    served: Served = request.app.state.served
    body = await parse(request, CompletionRequest)
    _check_model(served, body.model)
    prompt = served.text_ids(body.prompt)
    if not prompt:
        raise APIError(400, "prompt is empty; give some text to continue", param="prompt")
    return await _generate(request, served, prompt, body, body.max_tokens, chat=False)


async def _generate(
    request: HTTPRequest,
    served: Served,
    prompt: list[int],
    body: ChatRequest | CompletionRequest,
    max_tokens: int | None,
    chat: bool,
) -> Response:
    sampling = Sampling(
        temperature=body.temperature,
        top_k=body.top_k or None,
        top_p=body.top_p if body.top_p < 1 else None,
        seed=body.seed,
        max_tokens=_reply_budget(served.context_length, len(prompt), max_tokens, chat),
        top_logprobs=body.top(),
    )
    job = Request(prompt, sampling, served.ends)
    try:
        served.submit(job)
    except QueueFull as error:
        raise busy(str(error)) from None
    counts = body.stream_options is not None and body.stream_options.include_usage
    reply = Reply(served, job, body.stops(), chat, usage=counts)
    return reply.stream() if body.stream else await reply.whole(request)


def _check_model(served: Served, name: str | None) -> None:
    if name and name != served.name:
        raise APIError(
            404,
            f"the model {name!r} is not served here; this server serves {served.name!r} "
            "(GET /v1/models lists it)",
            param="model",
            code="model_not_found",
        )


def _reply_budget(context: int, prompt: int, asked: int | None, chat: bool) -> int:
    """max_tokens, checked against the context (default: all the room the prompt leaves)."""
    if asked is not None and not 1 <= asked < context:
        raise APIError(
            400,
            f"max_tokens is {asked}, but it must be in 1..{context - 1}: this model's context "
            f"is {context} tokens, prompt and reply together",
            param="max_tokens",
            code="invalid_value",
        )
    if prompt + (asked or 1) > context:
        most = context - (asked or 1)
        reply = f"{asked} tokens of reply (max_tokens)" if asked else "at least one token of reply"
        raise APIError(
            400,
            f"the prompt is {prompt} tokens and this model's context is {context} tokens, "
            f"which must also hold {reply}: at most {most} prompt tokens are allowed; "
            "shorten the prompt" + (" or lower max_tokens" if asked else ""),
            param="messages" if chat else "prompt",
            code="context_length_exceeded",
        )
    return asked or context - prompt
