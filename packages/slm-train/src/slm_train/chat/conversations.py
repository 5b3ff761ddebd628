"""Reading conversations from people's files, for chat fine-tuning.

A conversation is what `slm_tokenizer.chat.render_conversation` takes: a list
of `{"role": "system" | "user" | "assistant", "content": str}`. The files
people have come in three layouts, one record per line of a .jsonl file or
one item of a .json list (as `finetune/data.py` reads instructions):

    OpenAI    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", ...}]}
    ShareGPT  {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", ...}]}
    Alpaca    {"instruction": "...", "input": "...", "output": "..."}   one turn and its reply

ShareGPT's speakers have many spellings (human, gpt, chatgpt, bard, model,
...); `ROLE_NAMES` maps the common ones. A top-level "system" text, as some
ShareGPT files have, becomes the first turn. Alpaca's input follows the
instruction after a blank line, in the user's turn.

A record that cannot be a conversation stops the reading with one line,
`file:line: what is wrong; the fix`: a data set is usually fixed once and read
many times, so guessing past a broken line would only hide it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.records import read_records
from ..data.sources import CorpusError

Conversation = list[dict[str, str]]

# Speaker names in the wild (ShareGPT's "from", OpenAI's "role"), by the role each means.
ROLE_NAMES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "bot": "assistant",
}
LAYOUTS = "'messages' (OpenAI), 'conversations' (ShareGPT), or 'instruction' and 'output' (Alpaca)"


def load_conversations(path: str | Path) -> list[Conversation]:
    """Every conversation in a .jsonl or .json file, in file order."""
    path = Path(path)
    if path.suffix not in (".jsonl", ".json"):
        raise CorpusError(
            f"{path}: give conversations as a .jsonl file (one per line) or a .json list"
        )
    rows = read_records(path)
    if not rows:
        raise CorpusError(f"{path} holds no conversations")
    conversations = []
    for number, record in rows:
        try:
            conversations.append(parse_conversation(record))
        except ValueError as error:
            raise CorpusError(f"{path}:{number}: {error}") from None
    return conversations


def parse_conversation(record: Any) -> Conversation:
    """One record, in any of the three layouts, as messages; ValueError says what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"each record must be a JSON object with {LAYOUTS}")
    key = next((k for k in ("messages", "conversations") if k in record), None)
    if key is not None:
        turns = record[key]
        if not isinstance(turns, list) or not turns:
            raise ValueError(f"{key!r} must be a list of turns, and it is empty or not a list")
        messages = [_message(turn, number) for number, turn in enumerate(turns, start=1)]
    elif "instruction" in record or "output" in record:
        messages = _alpaca(record)
    else:
        present = ", ".join(sorted(record)) or "none"
        raise ValueError(f"no messages: give {LAYOUTS} (fields present: {present})")
    system = record.get("system")
    if isinstance(system, str) and system.strip() and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    if not any(message["role"] == "assistant" for message in messages):
        raise ValueError("no assistant turn, so nothing to learn; add the reply or drop the line")
    return messages


def _message(turn: Any, number: int) -> dict[str, str]:
    if not isinstance(turn, dict):
        raise ValueError(f"turn {number} must be an object with 'role' and 'content'")
    role = turn.get("role", turn.get("from"))
    content = turn.get("content", turn.get("value"))
    name = ROLE_NAMES.get(role.lower()) if isinstance(role, str) else None
    if name is None:
        raise ValueError(
            f"turn {number} has the role {role!r}; use system, user or assistant "
            "(ShareGPT: system, human or gpt)"
        )
    if not isinstance(content, str):
        what = "missing" if content is None else f"a {type(content).__name__}"
        raise ValueError(
            f"turn {number}'s content is {what}, not text; give the words as one string "
            "(join a list of text parts)"
        )
    return {"role": name, "content": content}


def _alpaca(record: dict[str, Any]) -> Conversation:
    for name in ("instruction", "output"):
        if not isinstance(record.get(name), str) or not record[name].strip():
            raise ValueError(f"Alpaca records need text in {name!r}, and it is empty or missing")
    extra = record.get("input") or ""
    if not isinstance(extra, str):
        raise ValueError("Alpaca's 'input' must be text (or left out)")
    question = f"{record['instruction']}\n\n{extra}" if extra.strip() else record["instruction"]
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": record["output"]},
    ]
