"""How a chat turn becomes text for the model."""

from __future__ import annotations

from slm_train import format_prompt


def format_turn(prompt_format: str | None, text: str, first: bool) -> str:
    """A pre-trained model continues the running text (turns joined by a space);
    an instruction-tuned one gets each turn in its prompt format, after a blank line."""
    if prompt_format is None:
        return text if first else " " + text
    return (
        format_prompt(prompt_format, text) if first else "\n\n" + format_prompt(prompt_format, text)
    )
