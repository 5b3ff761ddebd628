"""The chat REPL.

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

from .prompts import format_turn
from .streaming import WordWrap, stream_text

HELP = """commands:
  /help            this help
  /reset           forget the conversation so far
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
        prompt_format: str | None,
        out: TextIO,
        settings: Settings | None = None,
        seed: int | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format
        self.out = out
        self.settings = settings or Settings()
        self.history: list[int] = []
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
        try:
            if name in ("quit", "exit"):
                return False
            if name == "help":
                self.say(HELP)
            elif name == "reset":
                self.history = []
                self.say("(conversation reset)")
            elif name == "temperature":
                value = float(argument)
                if value < 0:
                    raise ValueError
                self.settings.temperature = value
                self.say(f"(temperature {value})")
            elif name == "top_k":
                value = int(argument)
                if value < 0:
                    raise ValueError
                self.settings.top_k = value or None
                self.say(f"(top_k {value or 'off'})")
            elif name in ("max_new_tokens", "max_tokens"):
                value = int(argument)
                if value < 1:
                    raise ValueError
                self.settings.max_new_tokens = value
                self.say(f"(max_new_tokens {value})")
            else:
                self.say(f"(unknown command /{name}; /help lists them)")
        except ValueError:
            example = 0.7 if name == "temperature" else 100
            self.say(f"(/{name} needs a non-negative number, e.g. /{name} {example})")
        return True

    def reply(self, text: str) -> str:
        """Append the user's turn, stream the model's reply to `out`, and return it."""
        turn = format_turn(self.prompt_format, text, first=not self.history)
        self.history += self.tokenizer.encode(turn, disallowed_special=())
        block = self.model.config.block_size
        keep = max(1, block - self.settings.max_new_tokens)
        context = self.history[-keep:]
        eot = self.tokenizer.eot_id
        tokens = stream(
            self.model,
            context,
            self.settings.max_new_tokens,
            temperature=self.settings.temperature,
            top_k=self.settings.top_k,
            eos_id=eot,
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
            for piece in stream_text(self.tokenizer, record(tokens), stop_at=eot):
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
        self.history += [t for t in produced if t != eot]
        return "".join(pieces)

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
        session.out.write("model> ")
        session.reply(line)
    if interactive:
        session.say("bye")


def run_chat(
    model: GPTModel,
    tokenizer: BPETokenizer,
    prompt_format: str | None,
    settings: Settings,
    seed: int | None,
) -> None:
    session = ChatSession(model, tokenizer, prompt_format, sys.stdout, settings, seed)
    repl(session, sys.stdin, interactive=sys.stdin.isatty())
