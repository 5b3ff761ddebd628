"""How a training run talks to a person.

The training loop calls a `Reporter` at a few points and never prints itself,
so the same loop can run silently in tests, draw a rich progress bar in a
terminal, or feed another interface.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


class Reporter:
    """Receives events from the training loop; the base class ignores them all."""

    def start(self, info: dict[str, Any]) -> None: ...
    def step(self, record: dict[str, Any]) -> None: ...
    def evaluation(self, record: dict[str, Any], sample: str | None) -> None: ...
    def message(self, text: str) -> None: ...
    def finish(self, summary: dict[str, Any]) -> None: ...


class RichReporter(Reporter):
    """A progress bar (step, loss, lr, tokens/s, ETA), an evaluation table and samples."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("[bold]step {task.fields[step]}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("loss [cyan]{task.fields[loss]}"),
            TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[speed]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = None

    def start(self, info: dict[str, Any]) -> None:
        table = Table(title="Training", show_header=False, box=None)
        for key, value in info.items():
            table.add_row(f"[bold]{key}", str(value))
        self.console.print(table)
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=1.0, step=info.get("start step", 0), loss="-", lr="-", speed="-"
        )

    def step(self, record: dict[str, Any]) -> None:
        if self.task is None:
            return
        self.progress.update(
            self.task,
            completed=record["progress"],
            step=record["step"],
            loss=f"{record['loss']:.4f}",
            lr=f"{record['lr']:.2e}",
            speed=f"{record['tokens_per_s']:,.0f}",
        )

    def evaluation(self, record: dict[str, Any], sample: str | None) -> None:
        table = Table(title=f"Evaluation at step {record['step']:,} ({record['tokens']:,} tokens)")
        for column in ("split", "loss", "perplexity"):
            table.add_column(column, justify="right" if column != "split" else "left")
        for split in ("train", "val"):
            table.add_row(
                split, f"{record[f'{split}_loss']:.4f}", f"{record[f'{split}_perplexity']:.2f}"
            )
        self.console.print(table)
        if sample is not None:
            self.console.print(f"[dim]sample:[/dim] {sample!r}")

    def message(self, text: str) -> None:
        self.console.print(text)

    def finish(self, summary: dict[str, Any]) -> None:
        if self.task is not None:
            self.progress.stop()
            self.task = None
