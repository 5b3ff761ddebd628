"""A chat run's conversation, kept as messages and rendered for each reply (as ChatML, or
through the run's own chat template).

The REPL keeps the turns, not a running list of tokens, so that a new system
prompt, /reset or a full window changes which messages are rendered and the
model always sees a well-formed conversation (slm_tokenizer.chat.render_conversation,
the same renderer that made its fine-tuning data). When the rendered
conversation plus the room for a reply would not fit the model's window, the
oldest whole turns (a user message and the reply to it) are left out first;
the system prompt always stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slm_tokenizer import BPETokenizer
from slm_tokenizer.chat import render_conversation
from slm_train.chat_template import ChatTemplate


class TurnTooLong(ValueError):
    """Even the newest user turn alone leaves no room for the reply; the message says so."""


@dataclass
class Conversation:
    tokenizer: BPETokenizer
    window: int  # the model's block_size
    system: str | None = None
    turns: list[list[dict[str, str]]] = field(default_factory=list)  # [user, assistant?]
    template: ChatTemplate | None = None  # a hub model's own format; None: ChatML

    def ask(self, text: str, reply_limit: int) -> list[int]:
        """Add the user's `text` and return the prompt ids for the reply to it.

        Raises TurnTooLong (and forgets `text`) when it cannot fit with `reply_limit`.
        """
        self.turns.append([{"role": "user", "content": text}])
        room = self.window - reply_limit
        fits = None
        for first in reversed(range(len(self.turns))):  # newest first: older turns add length
            ids = self.render(self.turns[first:])
            if len(ids) > room:
                break
            fits = ids
        if fits is not None:
            return fits
        self.turns.pop()
        raise TurnTooLong(
            f"(your message and the system prompt take {len(ids)} tokens, and with room for "
            f"a {reply_limit}-token reply that passes the model's window of {self.window}; "
            "write less, or lower /max_new_tokens)"
        )

    def answer(self, text: str) -> None:
        """Record the model's reply to the newest user turn."""
        self.turns[-1].append({"role": "assistant", "content": text})

    def render(self, turns: list[list[dict[str, str]]]) -> list[int]:
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages += [message for turn in turns for message in turn]
        if self.template is not None:
            return self.template.encode(self.tokenizer, messages)
        return render_conversation(self.tokenizer, messages, add_generation_prompt=True)[0]

    def reset(self) -> None:
        """Forget the turns; the system prompt stays."""
        self.turns = []
