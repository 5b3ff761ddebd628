"""Prompt formats for instruction-tuned models (the book's chapter 7).

An instruction-tuned run records its format name in config.json, so
`generate` and `chat` wrap what you type the way the model saw it in training.
"""

from __future__ import annotations

ALPACA = "alpaca"
FORMATS = (ALPACA,)

_ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)


def format_instruction(instruction: str, input_text: str | None = None) -> str:
    """The Alpaca prompt up to and including "### Response:" and its newline."""
    prompt = f"{_ALPACA_PREAMBLE}\n\n### Instruction:\n{instruction}"
    if input_text:
        prompt += f"\n\n### Input:\n{input_text}"
    return prompt + "\n\n### Response:\n"


def format_prompt(prompt_format: str | None, text: str) -> str:
    """Wrap `text` in the run's prompt format (unchanged for pre-trained runs)."""
    if prompt_format is None:
        return text
    if prompt_format == ALPACA:
        return format_instruction(text)
    raise ValueError(f"unknown prompt format {prompt_format!r}; known: {', '.join(FORMATS)}")
