"""What the built-in tasks of one evaluation share: the run, its model, its held-out text.

The model is loaded once and the held-out split read once, however many
tasks ask for them; progress goes to one callback, `progress(task, done,
total)`, which a command line draws as a bar and a notebook can ignore.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from slm_model import GPTModel
from slm_tokenizer import BPETokenizer

from ..run import Run
from .heldout import HeldOut, held_out
from .unigram import Unigram

Progress = Callable[[str, int, int], None]  # (task, items done, items in all)


@dataclass
class TaskContext:
    run: Run
    model: GPTModel
    progress: Progress | None = None

    @cached_property
    def tokenizer(self) -> BPETokenizer:
        return self.run.tokenizer()

    @cached_property
    def held_out(self) -> HeldOut:
        return held_out(self.run)

    @cached_property
    def unigram(self) -> Unigram:
        return Unigram(self.held_out.train_counts)

    def counter(self, task: str, total: int) -> Callable[[int], None]:
        """An `advance(k)` that reports k more of `total` items of `task` done."""
        done = 0
        if self.progress:
            self.progress(task, 0, total)

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if self.progress:
                self.progress(task, done, total)

        return advance
