"""Reading records people write by hand: CSV rows, JSON lines, or a JSON list.

Fine-tuning data (labelled texts, instructions, conversations) comes in these
three shapes. Each record keeps its row number, so that a problem can be
reported as `file:row`: a typo on row 4,812 of a spreadsheet is otherwise very
hard to find.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from .sources import CorpusError


def read_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(row number, record) pairs from CSV, JSONL or a JSON list."""
    if not path.is_file():
        raise CorpusError(f"data file {path} does not exist")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        return [(number, dict(row)) for number, row in enumerate(reader, start=2)]
    if path.suffix == ".json":
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise CorpusError(
                f"{path} is not valid JSON ({error.msg} at line {error.lineno})"
            ) from None
        if not isinstance(records, list):
            raise CorpusError(f"{path} must hold a JSON list of records")
        return list(enumerate(records, start=1))
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as error:
                    raise CorpusError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        return rows
    raise CorpusError(f"{path}: use a .csv, .json or .jsonl file")
