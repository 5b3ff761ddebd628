"""The chat REPL.

A chat run (fine-tuned on conversations, prompt format ChatML) keeps the
conversation as messages (conversation.py): each reply is generated from the
whole conversation rendered as ChatML, and ends at `<|im_end|>`. A system
prompt (--system, /system) opens it. When the window fills, the oldest turns
are left out.

A pre-trained (not instruction-tuned) model does not answer questions: it
continues text. So the conversation is one running text: each line you type is
appended, and the model's continuation is the reply. An instruction-tuned run
wraps each turn in the prompt format it was trained with instead. The context
never grows past the model's window: the oldest tokens are dropped first.

Interactive use has line editing and history (arrow keys). With stdin from a
pipe, each line is one prompt, so a conversation can be scripted.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from dataclasses import dataclass
from typing import TextIO

import torch
from slm_model import GPTModel, stream
from slm_tokenizer import BPETokenizer
from slm_train.chat_template import ChatTemplate
from slm_train.prompts import CONVERSATIONAL, no_system_prompt, reply_ends

from .conversation import Conversation, TurnTooLong
from .prompts import format_turn
from .streaming import WordWrap, stream_text

HELP = """commands:
  /help            this help
  /reset           forget the conversation so far (a chat run keeps its system prompt)
  /system TEXT     a chat run's system prompt (/system alone removes it)
  /temperature X   sampling temperature (0 = always the most likely token)
  /top_k N         sample from the N most likely tokens (0 = all)
  /max_new_tokens N  longest reply, in tokens (/max_tokens N too)
  /quit            leave (Ctrl-D works too; Ctrl-C stops a reply)"""


@dataclass
class Settings:
    temperature: float = 0.8
    top_k: int | None = 40
    max_new_tokens: int = 120


class ChatSession:
    def __init__(
        self,
        model: GPTModel,
        tokenizer: BPETokenizer,
        run_config: dict,
        out: TextIO,
        settings: Settings | None = None,
        seed: int | None = None,
        system: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format = run_config.get("prompt_format")
        template = ChatTemplate.of(run_config)
        self.out = out
        self.settings = settings or Settings()
        self.ends = reply_ends(tokenizer, prompt_format, template)
        self.history: list[int] = []  # the running text of a run that is not a chat run
        self.conversation = None
        if prompt_format in CONVERSATIONAL:
            window = model.config.block_size
            self.conversation = Conversation(tokenizer, window, system or None, template=template)
        elif system is not None:
            raise ValueError(no_system_prompt(prompt_format))
        device = model.tok_emb.weight.device
        self.generator = torch.Generator(device=device)
        if seed is not None:
            self.generator.manual_seed(seed)
        else:
            self.generator.seed()

    def command(self, line: str) -> bool:
        """Handle a /command; returns False when the session should end."""
        name, _, argument = line[1:].partition(" ")
        argument = argument.strip()
        if name in ("quit", "exit"):
            return False
        if name == "help":
            self.say(HELP)
        elif name == "reset":
            self.history = []
            if self.conversation:
                self.conversation.reset()
            self.say("(conversation reset)")
        elif name == "system":
            self.set_system(argument)
        elif name in ("temperature", "top_k", "max_new_tokens", "max_tokens"):
            self.set_number(name, argument)
        else:
            self.say(f"(unknown command /{name}; /help lists them)")
        return True

    def set_system(self, text: str) -> None:
        if self.conversation is None:
            self.say(f"({no_system_prompt(self.prompt_format)})")
            return
        self.conversation.system = text or None
        self.say(f"(system prompt: {text})" if text else "(no system prompt)")

    def set_number(self, name: str, argument: str) -> None:
        try:
            value = float(argument) if name == "temperature" else int(argument)
            if value < 0 or (value == 0 and name in ("max_new_tokens", "max_tokens")):
                raise ValueError
        except ValueError:
            example = 0.7 if name == "temperature" else 100
            self.say(f"(/{name} needs a non-negative number, e.g. /{name} {example})")
            return
        if name == "temperature":
            self.settings.temperature = value
            self.say(f"(temperature {value})")
        elif name == "top_k":
            self.settings.top_k = value or None
            self.say(f"(top_k {value or 'off'})")
        else:
            self.settings.max_new_tokens = value
            self.say(f"(max_new_tokens {value})")

    def reply(self, text: str) -> str:
        """Add the user's turn, stream the model's reply to `out`, and return it."""
        if self.conversation is None:
            context = self.running_context(text)
        else:
            try:
                context = self.conversation.ask(text, self.settings.max_new_tokens)
            except TurnTooLong as error:
                self.say(str(error))
                return ""
        produced, shown = self.stream_reply(context)
        said = [t for t in produced if t not in self.ends]
        if self.conversation is None:
            self.history += said
        else:
            self.conversation.answer(self.tokenizer.decode(said))
        return shown

    def running_context(self, text: str) -> list[int]:
        """A text-continuing run's context: the running text, cut to leave room for the reply."""
        turn = format_turn(self.prompt_format, text, first=not self.history)
        self.history += self.tokenizer.encode(turn, disallowed_special=())
        keep = max(1, self.model.config.block_size - self.settings.max_new_tokens)
        return self.history[-keep:]

    def stream_reply(self, context: list[int]) -> tuple[list[int], str]:
        """Print the reply as it comes, after "model> "; return its ids and the text shown."""
        self.out.write("model> ")
        tokens = stream(
            self.model,
            context,
            self.settings.max_new_tokens,
            temperature=self.settings.temperature,
            top_k=self.settings.top_k,
            eos_id=self.ends[0] if self.ends else None,
            generator=self.generator,
        )
        produced: list[int] = []

        def record(ids):
            for token in ids:
                produced.append(token)
                yield token

        pieces: list[str] = []
        started = False
        wrap = WordWrap(shutil.get_terminal_size().columns - 1, column=len("model> "))
        try:
            for piece in stream_text(self.tokenizer, record(tokens), stop_at=self.ends):
                if not started:  # "model> " already ends in a space
                    piece = piece.lstrip()
                    started = bool(piece)
                pieces.append(piece)
                self.out.write(wrap(piece))
                self.out.flush()
        except KeyboardInterrupt:
            self.out.write(" [stopped]")
        finally:
            tokens.close()
        self.out.write("\n")
        self.out.flush()
        return produced, "".join(pieces)

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def repl(session: ChatSession, stdin: TextIO, interactive: bool) -> None:
    """Read prompts until /quit or end of input."""
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        session.say("Chat with the model. /help for commands, /quit or Ctrl-D to leave.")
    while True:
        try:
            line = input("you> ") if interactive else stdin.readline()
        except EOFError:
            break
        except KeyboardInterrupt:
            session.out.write("\n")
            continue
        if not interactive:
            if not line:
                break
            line = line.rstrip("\n")
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            if not session.command(line):
                break
            continue
        if not interactive:
            session.out.write(f"you> {line}\n")
        session.reply(line)
    if interactive:
        session.say("bye")


def run_chat(
    model: GPTModel,
    tokenizer: BPETokenizer,
    run_config: dict,
    settings: Settings,
    seed: int | None,
    system: str | None = None,
) -> None:
    session = ChatSession(model, tokenizer, run_config, sys.stdout, settings, seed, system)
    repl(session, sys.stdin, interactive=sys.stdin.isatty())
