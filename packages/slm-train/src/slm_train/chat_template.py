"""A model's own chat template: the Jinja program a hub model ships to format conversations.

slm's own chat runs speak ChatML, rendered token by token
(slm_tokenizer.chat.render_conversation). A model imported from the hub may
bring another format: Llama 3.2 Instruct writes
`<|start_header_id|>user<|end_header_id|>\\n\\n...<|eot_id|>`. Its
tokenizer_config.json holds that format as a Jinja template, which
transformers renders with `apply_chat_template`; `ChatTemplate` renders it the
same way (a sandboxed Jinja environment with transformers' settings and
helpers), so the model sees the ids it was tuned on.

One difference, on purpose: transformers encodes the rendered text with every
special token recognised, so a user who types "<|eot_id|>" ends their own turn.
Here only the markers the template itself writes become special ids. To find
them, the conversation is rendered twice: once as it is, and once with each
special token inside a message replaced by filler of the same length. The
special tokens left in the second rendering are the template's; the text
between them, message text included, is encoded as plain text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from slm_tokenizer import BPETokenizer

TEMPLATE = "template"  # the prompt_format of a run that chats through its own template
_FILLER = "\x00"  # stands in for a message's special-token text in the second rendering


@dataclass(frozen=True)
class ChatTemplate:
    """A run's Jinja chat template, and the tokens it names bos_token and eos_token."""

    source: str
    bos_token: str | None = None
    eos_token: str | None = None

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> ChatTemplate | None:
        """The template a run chats through (prompt_format "template"), or None."""
        if config.get("prompt_format") != TEMPLATE:
            return None
        return cls(config["chat_template"], config.get("bos_token"), config.get("eos_token"))

    def render(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> str:
        """The conversation as the template writes it (transformers' rendering)."""
        return _compiled(self.source).render(
            messages=list(messages),
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token or "",
        )

    def encode(
        self,
        tokenizer: BPETokenizer,
        messages: Sequence[Mapping[str, str]],
        add_generation_prompt: bool = True,
    ) -> list[int]:
        """Ids of the rendered conversation; message text never becomes special tokens."""
        text = self.render(messages, add_generation_prompt)
        masked = self.render(_masked(messages, tokenizer.special_tokens), add_generation_prompt)
        if len(masked) != len(text):
            raise ValueError(
                "this chat template changes message text in a way slm cannot follow; "
                "remove special-token text from the messages"
            )
        ids: list[int] = []
        start = 0
        for marker in _special_pattern(tuple(tokenizer.special_tokens)).finditer(masked):
            ids += tokenizer.encode(text[start : marker.start()], disallowed_special=())
            ids.append(tokenizer.special_tokens[marker.group()])
            start = marker.end()
        return ids + tokenizer.encode(text[start:], disallowed_special=())

    def end_ids(self, tokenizer: BPETokenizer) -> list[int]:
        """Where a reply ends: the template's eos_token, when the tokenizer has it."""
        return (
            [tokenizer.special_tokens[self.eos_token]]
            if self.eos_token in (tokenizer.special_tokens)
            else []
        )


def _masked(messages: Sequence[Mapping[str, str]], specials: Mapping[str, int]) -> list[dict]:
    pattern = _special_pattern(tuple(specials))
    return [
        {**message, "content": pattern.sub(lambda m: _FILLER * len(m.group()), message["content"])}
        if isinstance(message.get("content"), str)
        else dict(message)
        for message in messages
    ]


@cache
def _special_pattern(specials: tuple[str, ...]) -> re.Pattern[str]:
    """Any special token's text, longest first (so "<|a|>x" is not read as "<|a|>")."""
    if not specials:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))


@cache
def _compiled(source: str):
    """The template compiled as transformers compiles it: sandboxed, trim_blocks and
    lstrip_blocks, loop controls, and its `tojson`, `raise_exception` and `strftime_now`."""
    import json

    from jinja2.exceptions import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                          separators=separators, sort_keys=sort_keys)  # fmt: skip

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = lambda form: datetime.now().strftime(form)
    return environment.from_string(source)
