"""`slm-cli inspect` (inside one model) and `slm-cli compare` (across runs).

Both only render: the numbers come from `slm_train.inspect_text` (built on
`slm_model.inspect`) and `slm_train.compare_runs`, so a notebook gets the same.
Everything fits an 80-column terminal; pictures go to PNG files.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import friendly_errors
from .options import CheckpointOption, DeviceOption, max_new_tokens_option

console = Console()

INSPECT_EXAMPLES = (
    "Examples:\n\n"
    "  slm-cli inspect 'And God said, Let there be light'\n\n"
    "  slm-cli inspect 'The cat sat on the' --at 3 --top-k 5 --out inspect/\n\n"
    "  slm-cli inspect 'Once upon a time' --layer 0 --head 2 --out inspect/ --json"
)
COMPARE_EXAMPLES = (
    "Examples:\n\n"
    "  slm-cli compare runs/small runs/llama-small\n\n"
    "  slm-cli compare runs/a runs/b runs/c --out curves.png --prompt 'And God said'"
)

# Surprise (nats) up to each bound gets this colour; a uniform guess over 4,096 tokens is 8.3.
SURPRISE_COLOURS = ((1.0, "green"), (3.0, "yellow"), (5.0, "dark_orange"), (7.0, "red"))
TOO_SURPRISED = "magenta"

RunOption = Annotated[
    Path | None,
    typer.Option(
        "--run", help="Run directory. Default: the most recent run under runs/.", show_default=False
    ),
]


def _shown(token: str) -> Text:
    """A token in a table: quoted, with newlines and tabs escaped, so spaces are visible."""
    return Text(repr(token), no_wrap=True)


def surprise_colour(nats: float) -> str:
    return next((colour for bound, colour in SURPRISE_COLOURS if nats < bound), TOO_SURPRISED)


# ------------------------------------------------------------------ inspect
@friendly_errors
def inspect_command(
    text: Annotated[
        str, typer.Argument(help="The text to look at (special tokens are plain text).")
    ],
    run_dir: RunOption = None,
    at: Annotated[
        int | None,
        typer.Option(help="Show the next tokens after token N (from 0; default: the last)."),
    ] = None,
    top_k: Annotated[int, typer.Option(min=1, help="How many next-token candidates.")] = 10,
    layer: Annotated[
        int | None, typer.Option(help="Draw only this layer's attention (from 0).")
    ] = None,
    head: Annotated[
        int | None, typer.Option(help="Draw only this head's attention (from 0).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for attention.png and next_tokens.png.", show_default=False),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the numbers as JSON instead.")
    ] = False,
    checkpoint: CheckpointOption = "best",
    device: DeviceOption = "auto",
) -> None:
    """See what the model makes of a text: surprise per token, next tokens, logit lens, attention.

    An instruction-tuned run reads the text in its prompt format, as generate does;
    a classifier run is refused (its outputs are labels, not tokens).
    """
    from slm_train import Run, inspect_text, latest_run

    run = Run(run_dir) if run_dir is not None else latest_run()
    result = inspect_text(
        run,
        text,
        at=at,
        top_k=top_k,
        layer=layer,
        head=head,
        out=out,
        checkpoint=checkpoint,
        device=device,
    )
    if json_output:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        return
    render_surprise(result)
    render_next_tokens(result)
    render_logit_lens(result)
    for path in result.plots:
        console.print(f"[bold]wrote[/bold] {path}", highlight=False)
    if not result.plots:
        console.print("[dim]add --out DIR for the attention heatmaps and a next-token chart[/dim]")


def render_surprise(result) -> None:
    """The text, each token coloured by the model's surprise, then a legend."""
    console.print(
        f"[bold]{result.run}[/bold]: {len(result.tokens)} tokens, coloured by surprise "
        "(the loss at each token, in nats)",
        highlight=False,
    )
    text = Text(result.tokens[0], style="dim")
    for token, nats in zip(result.tokens[1:], result.surprise, strict=True):
        text.append(token, style=surprise_colour(nats))
    console.print(text)
    legend = Text("  ")
    bounds = [0.0] + [bound for bound, _ in SURPRISE_COLOURS]
    for low, (high, colour) in zip(bounds, SURPRISE_COLOURS, strict=False):
        legend.append("\u25a0 ", style=colour).append(f"{low:g}-{high:g}  ")
    legend.append("\u25a0 ", style=TOO_SURPRISED).append(f"{bounds[-1]:g}+  ")
    legend.append("\u25a0 ", style="dim").append("first")
    console.print(legend)
    if result.surprise:
        mean = sum(result.surprise) / len(result.surprise)
        worst = sorted(
            zip(result.surprise, result.tokens[1:], strict=True), key=lambda pair: -pair[0]
        )[:3]
        console.print(
            f"  mean {mean:.2f} (perplexity {math.exp(min(mean, 50)):.1f})\n  most surprising: "
            + ", ".join(f"{token!r} {nats:.1f}" for nats, token in worst),
            highlight=False,
        )


def render_next_tokens(result) -> None:
    context = "".join(result.tokens[max(0, result.at - 5) : result.at + 1])
    console.print(
        f"\n[bold]Next token[/bold] after token {result.at}: \u2026{context[-40:]!r}",
        highlight=False,
    )
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("token", max_width=24, no_wrap=True)
    table.add_column("id", justify="right")
    table.add_column("probability", justify="right")
    table.add_column("", no_wrap=True)
    for rank, candidate in enumerate(result.next_tokens, 1):
        bar = "\u2588" * max(1, round(candidate.probability * 20))
        table.add_row(
            str(rank),
            _shown(candidate.token),
            str(candidate.id),
            f"{candidate.probability:.1%}",
            Text(bar, style="blue"),
        )
    console.print(table)


def render_logit_lens(result) -> None:
    """Each layer's top guesses at position `at`: how the prediction forms with depth."""
    console.print(
        f"\n[bold]Logit lens[/bold] at token {result.at} {result.tokens[result.at]!r}: what the "
        "residual stream after each layer predicts",
        highlight=False,
    )
    table = Table()
    table.add_column("after")
    for rank in range(len(result.lens[0][result.at])):
        table.add_column(f"guess {rank + 1}", max_width=20, no_wrap=True)
    for row, positions in zip(result.lens_rows, result.lens, strict=True):
        cells = [
            Text(f"{c.token!r} ").append(f"{c.probability:.0%}", style="dim")
            for c in positions[result.at]
        ]
        table.add_row(row, *cells)
    console.print(table)


# ------------------------------------------------------------------ compare
@friendly_errors
def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Two or more run directories.")],
    out: Annotated[Path, typer.Option(help="Where to write the loss curves.")] = Path(
        "compare.png"
    ),
    prompt: Annotated[
        str | None,
        typer.Option(
            help="Also continue this prompt with each run (same seed).", show_default=False
        ),
    ] = None,
    max_new_tokens: Annotated[int, max_new_tokens_option("Tokens per sample.")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed for the samples.")] = 0,
    checkpoint: CheckpointOption = "best",
    device: DeviceOption = "auto",
) -> None:
    """Compare runs: loss curves on one picture, and what differs between them."""
    from slm_train import compare_runs

    comparison = compare_runs(
        runs,
        out=out,
        prompt=prompt,
        max_new_tokens=max_new_tokens,
        seed=seed,
        checkpoint=checkpoint,
        device=device,
    )
    render_comparison(comparison)
    if comparison.prompt is not None:
        render_samples(comparison)
    if comparison.plot is not None:
        console.print(f"[bold]loss curves[/bold] {comparison.plot}", highlight=False)
    else:
        console.print("no loss curves: none of these runs was trained here (no metrics.jsonl)")


def render_comparison(comparison) -> None:
    table = Table()
    table.add_column("")
    for stats in comparison.runs:
        table.add_column(stats.name, justify="right", overflow="fold")
    rows = {
        "kind": [s.kind for s in comparison.runs],
        "parameters": [f"{s.parameters / 1e6:.2f} M" for s in comparison.runs],
        "tokens seen": [_or_dash(s.tokens, "{:,}") for s in comparison.runs],
        "time": [
            _or_dash(None if s.elapsed is None else s.elapsed / 60, "{:.1f} min")
            for s in comparison.runs
        ],
        "tokens/s": [f"{s.tokens_per_s:,.0f}" if s.tokens_per_s else "-" for s in comparison.runs],
        "best val loss": [
            f"{s.best_val_loss:.4f} (step {s.best_step:,})" if s.best_val_loss is not None else "-"
            for s in comparison.runs
        ],
    }
    for name, values in rows.items():
        table.add_row(Text(name, style="bold"), *values, end_section=name == "best val loss")
    if not comparison.differences:
        table.add_row(Text("settings", style="bold"), *["all the same"] * len(comparison.runs))
    for name, values in comparison.differences.items():
        table.add_row(name, *["-" if v is None else str(v) for v in values])
    console.print(table)


def _or_dash(value, form: str) -> str:
    """`value` formatted, or "-" for a number a run does not have (not trained here)."""
    return "-" if value is None else form.format(value)


def render_samples(comparison) -> None:
    console.print(f"\n[bold]{comparison.prompt!r}[/bold] continued by each run", highlight=False)
    table = Table(show_lines=True)
    for stats in comparison.runs:
        table.add_column(stats.name, overflow="fold", ratio=1)
    table.add_row(
        *[Text(comparison.prompt, style="bold").append(s.sample or "") for s in comparison.runs]
    )
    console.print(table)
