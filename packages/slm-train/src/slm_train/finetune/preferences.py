"""Preference pairs for DPO: reading them, and rendering them as the starting run saw text.

A record (JSONL, or a JSON list) is a prompt with two replies, the one a
person preferred and the one they did not:

    {"prompt": "Who are you?", "chosen": "I'm slm.", "rejected": "Paris is big."}
    {"messages": [{"role": "user", "content": ...}, ...], "chosen": ..., "rejected": ...}

`messages` is a conversation that ends with the user's turn (chat runs).
Each reply is rendered after its prompt in the run's own format, so DPO
sharpens the model in exactly the shape it answers in: ChatML through
`render_conversation` (the one renderer), a run's own template through
`prompts.encode_messages`, Alpaca for instruct runs. An encoded reply is
(ids, mask) with the mask 1 on the reply's tokens and its end marker only,
the tokens whose log-probabilities DPO sums (dpo_loss.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_tokenizer import BPETokenizer
from slm_tokenizer.chat import render_conversation

from ..chat_template import ChatTemplate
from ..data.records import read_records
from ..data.sources import CorpusError
from ..prompts import CHATML, CONVERSATIONAL, encode_messages, format_instruction
from .data import prompt_messages

Encoded = tuple[list[int], list[int]]  # ids, and a mask that is 1 on the reply
Pair = tuple[Encoded, Encoded]  # chosen, rejected
Record = dict[str, Any]  # {"messages": [...], "chosen": str, "rejected": str}
FIELDS = "'prompt' (or 'messages'), 'chosen' and 'rejected'"


def load_pairs(path: str | Path, *, conversations: bool = True) -> list[Record]:
    """Checked records, each with its prompt as `messages`; a bad one names its line.

    `conversations=False` for a run with no turns (Alpaca): each prompt must be one text.
    """
    path = Path(path)
    rows = read_records(path)
    if not rows:
        raise CorpusError(f"{path} has no preference pairs; each line needs {FIELDS}")
    records = [_checked(f"{path}:{number}", record) for number, record in rows]
    for (number, _), record in zip(rows, records, strict=True):
        if not conversations and len(record["messages"]) > 1:
            raise CorpusError(
                f"{path}:{number}: this run answers one prompt, not a conversation; "
                "give 'prompt' instead of 'messages'"
            )
    return records


def _checked(where: str, record: Any) -> Record:
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: each record must be an object with {FIELDS}")
    for name in ("chosen", "rejected"):
        if not isinstance(record.get(name), str) or not record[name].strip():
            raise CorpusError(f"{where}: {name!r} must be a non-empty reply text")
    if record["chosen"] == record["rejected"]:
        raise CorpusError(f"{where}: 'chosen' and 'rejected' are the same reply; drop the pair")
    replies = {k: record[k] for k in ("chosen", "rejected")}
    return {"messages": prompt_messages(where, record), **replies}


@dataclass
class PairEncoder:
    """Renders a record's prompt and replies in a run's prompt format."""

    tokenizer: BPETokenizer
    prompt_format: str
    template: ChatTemplate | None = None

    def encode(self, record: Record) -> Pair:
        chosen, rejected = (
            self.reply(record["messages"], record[k]) for k in ("chosen", "rejected")
        )
        return chosen, rejected

    def reply(self, messages: list[dict[str, str]], text: str) -> Encoded:
        """The prompt and the reply after it, the mask 1 on the reply and what ends it."""
        if self.prompt_format == CHATML:
            # Exactly render_conversation(messages + [reply]), learning from the last turn only.
            prompt = render_conversation(self.tokenizer, messages)[0]
            turn = render_conversation(self.tokenizer, [{"role": "assistant", "content": text}])
            return prompt + turn[0], [0] * len(prompt) + turn[1]
        if self.prompt_format in CONVERSATIONAL:
            prompt = encode_messages(self.tokenizer, self.prompt_format, messages, self.template)
            ends = self.template.end_ids(self.tokenizer) if self.template else []
        else:  # Alpaca: one prompt (load_pairs checks), as finetune instruct encodes it
            text_prompt = format_instruction(messages[-1]["content"])
            prompt = self.tokenizer.encode(text_prompt, disallowed_special=())
            ends = []
        end = (ends or [self.tokenizer.eot_id])[:1]
        reply = self.tokenizer.encode(text, disallowed_special=()) + end
        return prompt + reply, [0] * len(prompt) + [1] * len(reply)


@dataclass
class FittedPairs:
    """Encoded pairs that fit the window, and how many did not."""

    pairs: list[Pair]
    dropped: int = 0


def fit_pairs(encoder: PairEncoder, records: list[Record], window: int) -> FittedPairs:
    """Encode each record; drop a pair if either reply does not fit in `window` positions.

    Dropped, not cut: a reply cut short would be compared without its end,
    and the reward of a half reply says little about the whole one.
    """
    fitted = FittedPairs([])
    for record in records:
        pair = encoder.encode(record)
        if max(len(ids) for ids, _ in pair) > window + 1:
            fitted.dropped += 1
        else:
            fitted.pairs.append(pair)
    return fitted
