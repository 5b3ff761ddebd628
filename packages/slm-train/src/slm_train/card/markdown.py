"""The few pieces of Markdown a report card is made of, readable on GitHub and in rich."""

from __future__ import annotations

from collections.abc import Sequence

DASH = "-"  # an empty cell


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A pipe table; `|` inside a cell is escaped, line breaks become spaces."""
    lines = [_row(header), "|" + "|".join(" --- " for _ in header) + "|"]
    lines += [_row(row) for row in rows]
    return "\n".join(lines)


def facts(rows: Sequence[tuple[str, object]]) -> str:
    """A two-column table of what and how much."""
    return table(("", ""), [(f"**{name}**", value) for name, value in rows])


def _row(cells: Sequence[object]) -> str:
    text = (str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells)
    return "| " + " | ".join(text) + " |"


def code(text: str) -> str:
    """A fenced block that no backticks in `text` can close early."""
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text}\n{fence}"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def number(value: object, digits: int = 4) -> str:
    """Floats to `digits` significant figures (1.940, 0.2760), None as a dash."""
    if value is None:
        return DASH
    if isinstance(value, float):
        return f"{value:#.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
