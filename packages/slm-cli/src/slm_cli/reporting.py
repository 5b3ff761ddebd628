"""How training looks in a terminal: the library reports events, these draw them with rich.

`RichReporter`: the setup table, a progress bar (step, loss, lr, tokens/s,
ETA), an evaluation table and a sample after each evaluation.
`FinetuneReporter`: the same bar, and one line per epoch's evaluation.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from slm_train import Reporter


class RichReporter(Reporter):
    def __init__(self, console: Console | None = None, title: str = "Training") -> None:
        self.console = console or Console()
        self.title = title
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
        table = Table(title=self.title, show_header=False, box=None)
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
        self.console.print(text, highlight=False)

    def finish(self, summary: dict[str, Any]) -> None:
        if self.task is not None:
            self.progress.stop()
            self.task = None


class FinetuneReporter(RichReporter):
    """One line per evaluation: epoch, losses, accuracies; and the sample response, if any."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__(console, title="Fine-tuning")

    def evaluation(self, record: dict[str, Any], sample: str | None) -> None:
        text = join_fields(epoch_fields(record), self.console.width)
        self.console.print(text, highlight=False, soft_wrap=True)
        if sample is not None:
            self.console.print(f"  sample: {sample!r}", highlight=False)


def epoch_fields(record: dict[str, Any]) -> list[str]:
    """['epoch 2', 'train loss 0.41', 'val loss 0.52', 'val accuracy 0.81', '12.3 s']."""
    fields = [f"epoch {record['epoch']:g}"]
    for key, value in record.items():
        if key.startswith(("train_", "val_")):
            fields.append(f"{key.replace('_', ' ')} {value:.4g}")
    fields.append(f"{record['elapsed']:.1f} s")
    return fields


def join_fields(fields: list[str], width: int) -> str:
    """The fields joined by commas, broken into lines of at most `width` between fields only.

    A terminal (or rich) would break the line at any space, which can part a
    name from its number ("val accuracy" at the end of one line, "0.81" on the
    next); here a field always stays whole, and continuation lines are indented.
    """
    lines = [fields[0]]
    for field in fields[1:]:
        if len(lines[-1]) + len(", ") + len(field) + len(",") <= width:
            lines[-1] += f", {field}"
        else:
            lines[-1] += ","
            lines.append(f"  {field}")
    return "\n".join(lines)
