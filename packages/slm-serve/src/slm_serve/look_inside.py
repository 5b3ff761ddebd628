"""The playground's "look inside": what the served model made of the last reply.

The page (playground.py, static/) asks two things here, beside the OpenAI
routes of app.py:

    GET  /v1/slm/model    which kind of run this is (chat or plain text), its
                          context and its layers and heads, so the page knows
                          whether to call chat or completions
    POST /v1/slm/inspect  the last exchange read back through the model: the
                          surprise at each token and one head's attention map

The numbers come from the same calls as `slm-cli inspect`
(`slm_train.inspection`, built on `slm_model.inspect`): `token_surprise`,
`attention_maps` and `token_strings`, run on the model the server already
holds, on its worker thread between generation steps (`served.exclusive`),
so looking inside never races a stream that is still being sampled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from .errors import APIError

# At most this many tokens are read back (the last ones): attention is
# n_layer x n_head x tokens^2 numbers, and the page draws one map of tokens^2 cells.
WINDOW = 256

router = APIRouter(prefix="/v1/slm", tags=["playground"])


class Turn(BaseModel):
    """One message of the conversation before the reply (chat runs)."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str


class InspectRequest(BaseModel):
    """The exchange to read back: a chat's `messages` or a plain run's `prompt`, then `reply`.

    `layer` and `head` pick the attention map that comes back (from 0); surprise
    covers every token either way.
    """

    model_config = ConfigDict(extra="forbid")
    messages: list[Turn] | None = Field(default=None, min_length=1)
    prompt: str | None = None
    reply: str = Field(min_length=1)
    layer: int = Field(default=0, ge=0)
    head: int = Field(default=0, ge=0)


@dataclass
class LookInside:
    """One exchange as the model read it. Positions index `tokens`.

    reply_start: the first token of the reply (earlier ones are the prompt).
    dropped: prompt tokens cut from the front to fit `WINDOW`.
    surprise[t]: the loss at tokens[t + 1] in nats (the first token has no context).
    attention[i]: where token i looked, weights over tokens 0..i (a row of one head's map).
    """

    tokens: list[str]
    token_ids: list[int]
    reply_start: int
    dropped: int
    surprise: list[float]
    layer: int
    head: int
    n_layer: int
    n_head: int
    attention: list[list[float]]


def look_inside(
    model, tokenizer, prompt_ids: list[int], reply_ids: list[int], layer: int = 0, head: int = 0
) -> LookInside:
    """Read prompt + reply through `model` and return surprise and one head's attention.

    Keeps the last `WINDOW` tokens (or the model's context, if shorter). Raises
    NoSuchPart (a ValueError), with the range that exists, for a layer or head the
    model lacks.
    """
    from slm_model import attention_maps, token_surprise
    from slm_train.inspection import token_strings

    config = model.config
    _check("layer", layer, config.n_layer)
    _check("head", head, config.n_head)
    ids = prompt_ids + reply_ids
    dropped = max(0, len(ids) - min(WINDOW, config.block_size))
    ids = ids[dropped:]
    maps = attention_maps(model, ids)[layer, head]
    return LookInside(
        tokens=token_strings(tokenizer, ids),
        token_ids=ids,
        reply_start=max(0, len(prompt_ids) - dropped),
        dropped=dropped,
        surprise=[round(s, 4) for s in token_surprise(model, ids).tolist()],
        layer=layer,
        head=head,
        n_layer=config.n_layer,
        n_head=config.n_head,
        attention=[maps[i, : i + 1].round(decimals=4).tolist() for i in range(len(ids))],
    )


class NoSuchPart(ValueError):
    """A layer or head the model does not have; `part` names which."""

    def __init__(self, part: str, value: int, count: int) -> None:
        super().__init__(
            f"{part} {value} does not exist: this model has {count} {part}s, 0..{count - 1}"
        )
        self.part = part


def _check(part: str, value: int, count: int) -> None:
    if not 0 <= value < count:
        raise NoSuchPart(part, value, count)


@router.get("/model")
def model_info(request: Request) -> dict:
    """What the page needs to know before the first message: chat or completions, and the
    layers and heads it may pick for the attention map."""
    served = request.app.state.served
    config = served.model.config
    return {
        "id": served.name,
        "chat": served.is_chat,
        "context_length": served.context_length,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
    }


@router.post("/inspect")
async def inspect(body: InspectRequest, request: Request) -> dict:
    """Surprise and one head's attention for the last exchange (see `look_inside`)."""
    served = request.app.state.served
    prompt_ids = _prompt_ids(served, body)
    reply_ids = served.text_ids(body.reply)
    try:
        result = await served.exclusive(
            lambda: look_inside(
                served.model, served.tokenizer, prompt_ids, reply_ids, body.layer, body.head
            )
        )
    except NoSuchPart as error:
        raise APIError(400, str(error), param=error.part) from None
    return asdict(result)


def _prompt_ids(served, body: InspectRequest) -> list[int]:
    """The ids the reply followed: the conversation for a chat run, else the prompt's text."""
    if served.is_chat:
        if body.messages is None:
            raise APIError(
                400,
                f"{served.name} is a chat run: send the conversation as messages",
                param="messages",
            )
        return served.prompt_ids([message.model_dump() for message in body.messages])
    if body.prompt is None:
        raise APIError(
            400,
            f"{served.name} continues text: send the text the reply followed as prompt",
            param="prompt",
        )
    return served.text_ids(body.prompt)
