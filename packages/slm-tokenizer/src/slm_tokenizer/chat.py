"""Conversations as tokens: the ChatML format, and the one renderer everything uses.

A chat model sees a conversation as one sequence in which special tokens mark
the turns (ChatML, as Qwen and SmolLM use it):

    <|im_start|>system\nYou are slm.<|im_end|>\n
    <|im_start|>user\nWho are you?<|im_end|>\n
    <|im_start|>assistant\nI'm slm, a small language model.<|im_end|>\n

`render_conversation` turns messages into those ids plus a loss mask that is 1
only where the model should learn to speak: the assistant's words and the
`<|im_end|>` that ends them (so the model learns to stop). Fine-tuning data,
the chat REPL, the server and the exported Jinja `CHAT_TEMPLATE` all follow
this one function, and a test checks transformers' `apply_chat_template`
against it.

The markers exist only as special ids placed here. Message text is always
encoded as plain text, so a user who types "<|im_start|>system" gets those
characters, not a system turn (tiktoken's stance on special tokens).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .base import END_OF_TEXT
from .bpe import BPETokenizer

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
CHAT_TOKENS = (IM_START, IM_END)
ROLES = ("system", "user", "assistant")
# What every tokenizer slm trains reserves, so that any pre-trained run can be chat-tuned.
RESERVED_TOKENS = (END_OF_TEXT, *CHAT_TOKENS)

# The same format as a Jinja template, for transformers, llama.cpp and Ollama.
# It writes exactly what render_conversation encodes (no default system prompt).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

Message = Mapping[str, str]


def has_chat_tokens(tokenizer: BPETokenizer) -> bool:
    return all(marker in tokenizer.special_tokens for marker in CHAT_TOKENS)


def with_chat_tokens(tokenizer: BPETokenizer) -> BPETokenizer:
    """The tokenizer with ChatML's markers, added after its last id if it lacks them.

    Every existing id keeps its meaning, so a model trained with the old
    tokenizer only needs new embedding rows for the new ids.
    """
    specials = tokenizer.special_tokens
    next_id = tokenizer.vocab_size
    for marker in CHAT_TOKENS:
        if marker not in specials:
            specials[marker], next_id = next_id, next_id + 1
    if specials == tokenizer.special_tokens:
        return tokenizer
    return tokenizer.with_special_tokens(specials)


def check_messages(messages: Sequence[Message]) -> None:
    """ValueError naming the first message that is not {"role": ..., "content": str}."""
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, Mapping):
            raise ValueError(f"message {number} must be an object with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"message {number} has role {role!r}; use one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ValueError(f"message {number}'s content must be text, not {content!r}")


def render_conversation(
    tokenizer: BPETokenizer,
    messages: Iterable[Message],
    *,
    add_generation_prompt: bool = False,
) -> tuple[list[int], list[int]]:
    """ChatML ids for `messages`, and a mask that is 1 on what the assistant says.

    Each turn is `<|im_start|>` + role + newline + content + `<|im_end|>` +
    newline. The role line and the content are encoded together, as one
    stretch of text, because that is how a tokenizer reading the whole
    rendered string (transformers' `apply_chat_template`) splits it; the mask
    starts at the first token that holds any of the content's bytes.
    `add_generation_prompt` ends with an open assistant turn for the model to
    fill.
    """
    messages = list(messages)
    check_messages(messages)
    start, end = _marker_ids(tokenizer)
    newline = tokenizer.encode_ordinary("\n")
    ids: list[int] = []
    mask: list[int] = []
    for message in messages:
        speaks = int(message["role"] == "assistant")
        header = message["role"] + "\n"
        turn = tokenizer.encode_ordinary(header + message["content"])
        in_header = _tokens_within(tokenizer, turn, len(header.encode("utf-8")))
        ids += [start, *turn, end, *newline]
        mask += [0] * (1 + in_header) + [speaks] * (len(turn) - in_header + 1)
        mask += [0] * len(newline)
    if add_generation_prompt:
        prompt = [start, *tokenizer.encode_ordinary("assistant\n")]
        ids += prompt
        mask += [0] * len(prompt)
    return ids, mask


def _marker_ids(tokenizer: BPETokenizer) -> tuple[int, int]:
    specials = tokenizer.special_tokens
    if not has_chat_tokens(tokenizer):
        raise ValueError(
            f"this tokenizer has no {IM_START} and {IM_END} tokens; "
            "add them with slm_tokenizer.chat.with_chat_tokens (and grow the model's embedding)"
        )
    return specials[IM_START], specials[IM_END]


def _tokens_within(tokenizer: BPETokenizer, ids: list[int], length: int) -> int:
    """How many leading tokens of `ids` lie wholly inside their first `length` bytes."""
    covered = 0
    for count, token in enumerate(ids):
        covered += len(tokenizer.decode_bytes([token]))
        if covered > length:
            return count
    return len(ids)
