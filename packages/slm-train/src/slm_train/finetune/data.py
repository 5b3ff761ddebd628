"""Reading and checking fine-tuning data.

Classification: CSV or JSONL rows with `text` and `label`.
Instructions: JSON (a list) or JSONL records with `instruction`, an optional
`input`, and `output` (the Alpaca layout the book uses).
Prompts of preference pairs and RL problems: `prompt` (one text) or
`messages` (a conversation that ends with the user's turn).

Every problem names the file, the row and the fix, because a typo on row
4,812 of a spreadsheet is otherwise very hard to find.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from slm_tokenizer.chat import check_messages

from ..data.records import read_records
from ..data.sources import CorpusError


def _require(path: Path, number: int, record: Any, fields: tuple[str, ...]) -> None:
    if not isinstance(record, dict):
        raise CorpusError(
            f"{path}:{number}: each record must be an object with {', '.join(fields)}"
        )
    for name in fields:
        if name not in record:
            present = ", ".join(sorted(record)) or "none"
            raise CorpusError(f"{path}:{number}: no {name!r} field (fields present: {present})")
        if not isinstance(record[name], str) or not record[name].strip():
            raise CorpusError(f"{path}:{number}: {name!r} is empty; every row needs one")


def load_labelled(path: str | Path) -> list[tuple[str, str]]:
    """(text, label) pairs from a CSV or JSONL file with `text` and `label` columns."""
    path = Path(path)
    rows = read_records(path)
    if not rows:
        raise CorpusError(f"{path} has no rows")
    examples = []
    for number, record in rows:
        if (
            isinstance(record, dict)
            and not isinstance(record.get("label"), str)
            and "label" in record
        ):
            record = {**record, "label": str(record["label"])}  # numeric labels in JSONL
        _require(path, number, record, ("text", "label"))
        examples.append((record["text"], record["label"].strip()))
    return examples


def load_instructions(path: str | Path) -> list[dict[str, str]]:
    """Instruction records: `instruction`, optional `input`, `output`."""
    path = Path(path)
    rows = read_records(path)
    if not rows:
        raise CorpusError(f"{path} has no records")
    records = []
    for number, record in rows:
        _require(path, number, record, ("instruction", "output"))
        extra = record.get("input") or ""
        if not isinstance(extra, str):
            raise CorpusError(f"{path}:{number}: 'input' must be text")
        records.append(
            {"instruction": record["instruction"], "input": extra, "output": record["output"]}
        )
    return records


def label_names(examples: list[tuple[str, str]]) -> list[str]:
    names = sorted({label for _, label in examples})
    if len(names) < 2:
        raise CorpusError(
            f"the data has only one class ({names[0]!r}); a classifier needs at least two"
        )
    return names


def balance(examples: list[tuple[str, str]], seed: int) -> list[tuple[str, str]]:
    """Downsample every class to the size of the smallest, as the book does for spam."""
    counts = Counter(label for _, label in examples)
    smallest = min(counts.values())
    rng = random.Random(seed)
    kept: list[tuple[str, str]] = []
    for label in sorted(counts):
        members = [e for e in examples if e[1] == label]
        kept += rng.sample(members, smallest)
    rng.shuffle(kept)
    return kept


def split(items: list, fractions: tuple[float, float], seed: int) -> tuple[list, list, list]:
    """Shuffle, then cut into train / validation / test by the two given fractions (val, test)."""
    val_fraction, test_fraction = fractions
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError("validation and test fractions must be >= 0 and add up to less than 1")
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    n_val = round(len(shuffled) * val_fraction)
    n_test = round(len(shuffled) * test_fraction)
    if (
        (val_fraction and not n_val)
        or (test_fraction and not n_test)
        or len(shuffled) - n_val - n_test < 1
    ):
        raise CorpusError(
            f"{len(shuffled)} examples are too few to split into train, validation and test"
        )
    return shuffled[n_val + n_test :], shuffled[:n_val], shuffled[n_val : n_val + n_test]


def prompt_messages(where: str, record: dict[str, Any]) -> list[dict[str, str]]:
    """A record's prompt as a conversation: its `prompt` as one user turn, or its
    `messages` checked to end with the user's turn that is answered."""
    if ("prompt" in record) == ("messages" in record):
        raise CorpusError(f"{where}: give exactly one of 'prompt' and 'messages'")
    if "prompt" in record:
        if not isinstance(record["prompt"], str) or not record["prompt"].strip():
            raise CorpusError(f"{where}: 'prompt' must be a non-empty text")
        return [{"role": "user", "content": record["prompt"]}]
    messages = record["messages"]
    try:
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list of turns")
        check_messages(messages)
    except ValueError as error:
        raise CorpusError(f"{where}: {error}") from None
    if messages[-1]["role"] != "user":
        raise CorpusError(f"{where}: 'messages' must end with the user's turn that is answered")
    return [{"role": m["role"], "content": m["content"]} for m in messages]
