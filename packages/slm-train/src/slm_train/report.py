"""How training talks to a person.

The training engine calls a `Reporter` at a few points and never prints
itself, so the same loop runs silently in tests and in notebooks, draws a rich
progress bar in a terminal (slm-cli's reporters), or feeds another interface.
"""

from __future__ import annotations

from typing import Any


class Reporter:
    """Receives events from training; the base class ignores them all."""

    def start(self, info: dict[str, Any]) -> None:
        """Before the first step: what is being trained, on what, where."""

    def step(self, record: dict[str, Any]) -> None:
        """Every log_interval steps: step, loss, lr, tokens/s, progress (0..1)."""

    def evaluation(self, record: dict[str, Any], sample: str | None) -> None:
        """After each evaluation: its metrics, and a sample of text if the task draws one."""

    def message(self, text: str) -> None:
        """A line of news (data preparation, an interruption)."""

    def finish(self, summary: dict[str, Any]) -> None:
        """Training has stopped (finished or interrupted)."""
