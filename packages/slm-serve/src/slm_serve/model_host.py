"""A run being served: its model, its tokenizer, its prompt format, and the worker that owns them.

Everything that reads or runs the model goes through the one worker thread
(batcher.py): generation by `submit`, anything else by `exclusive`, which runs
a function between two generation steps. So the model is never used by two
threads at once, and routes added later (the playground's "look inside") need
no lock of their own.

Text from a request is always encoded as plain text: a user who writes
"<|im_end|>" gets those characters, never the special id (the chat template
places the markers itself: slm_tokenizer.chat.render_conversation for ChatML, and
slm_train.chat_template for a hub model's own template).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from slm_model import GPTModel
from slm_tokenizer import BPETokenizer
from slm_tokenizer.chat import Message
from slm_train.chat_template import ChatTemplate
from slm_train.prompts import encode_messages

from .batcher import Batcher, Request
from .config import ServeConfig

T = TypeVar("T")


class NotAChatRun(ValueError):
    """A chat request to a run without a chat template."""


class Served:
    def __init__(
        self,
        model: GPTModel,
        tokenizer: BPETokenizer,
        run_dir: Path,
        prompt_format: str | None,
        config: ServeConfig | None = None,
        template: ChatTemplate | None = None,
    ) -> None:
        """`template`: the run's own chat template, for a run imported with one that is not
        ChatML (slm_train.ChatTemplate.of(run.config)); ChatML runs need none."""
        from slm_train.prompts import CONVERSATIONAL, reply_ends

        config = config or ServeConfig()
        self.model, self.tokenizer, self.run_dir = model.eval(), tokenizer, Path(run_dir)
        self.prompt_format = prompt_format
        self.template = template
        self.is_chat = prompt_format in CONVERSATIONAL
        self.context_length = model.config.block_size
        self.name = config.model_name or self.run_dir.name
        # what ends a reply, as in `generate`
        self.ends = reply_ends(tokenizer, prompt_format, template)
        self.batcher = Batcher(model, config.max_batch, config.max_queue)

    @classmethod
    def load(cls, config: ServeConfig) -> Served:
        """The run `config.run` names (default: the latest under runs/), on its device."""
        from slm_train import ChatTemplate, Run, latest_run, resolve_device

        run = Run(config.run) if config.run else latest_run()
        tokenizer = run.tokenizer()
        model = run.load_model(config.checkpoint, resolve_device(config.device), config.quantize)
        prompt_format, template = run.config.get("prompt_format"), ChatTemplate.of(run.config)
        return cls(model, tokenizer, run.path, prompt_format, config, template)

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """The conversation in the run's chat template, ending with an open assistant turn."""
        if not self.is_chat:
            raise NotAChatRun(
                f"{self.name} is not a chat run (it has no chat template), so it takes no "
                "messages; send a prompt to /v1/completions instead"
            )
        return encode_messages(self.tokenizer, self.prompt_format, list(messages), self.template)

    def text_ids(self, text: str) -> list[int]:
        """`text` as plain text (special-token markers are characters, not ids)."""
        return self.tokenizer.encode(text, disallowed_special=())

    def submit(self, request: Request) -> None:
        self.batcher.submit(request)

    async def exclusive(self, function: Callable[[], T]) -> T:
        """`function()`'s result, run on the worker thread between two generation steps."""
        return await asyncio.wrap_future(self.batcher.call(function))

    def close(self) -> None:
        """End the running generations and stop the worker."""
        self.batcher.stop()
