"""`slm-cli export` (a run out to Hugging Face or GGUF) and `slm-cli import hf` (a folder in).

Both only render: the work is `slm_train.export_hf`, `export_gguf` and
`import_hf`, so a notebook does the same with those names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .errors import friendly_errors

console = Console()

EXPORT_EXAMPLES = (
    "Examples:\n\n"
    "  slm-cli export runs/small --format hf --out exports/small-hf\n\n"
    "  slm-cli export runs/small --format gguf --out small.gguf --dtype f16"
)
IMPORT_EXAMPLES = (
    "Examples:\n\n"
    "  slm-cli import hf HuggingFaceTB/SmolLM2-135M-Instruct --out runs/smollm2\n\n"
    "  slm-cli import hf ./my-hf-model --out runs/imported"
)

import_app = typer.Typer(
    help="Turn another library's model into an slm run.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@friendly_errors
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="The run to export.", show_default=False)],
    out: Annotated[
        Path, typer.Option("--out", help="Folder (hf) or file (gguf) to write.", show_default=False)
    ],
    target: Annotated[
        str, typer.Option("--format", help="hf (transformers) or gguf (llama.cpp, Ollama).")
    ] = "hf",
    dtype: Annotated[str, typer.Option(help="GGUF weights: f32, f16, q8_0 or q4_0.")] = "f32",
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="Which weights: best or last.")
    ] = "best",
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
) -> None:
    """Export a run for transformers (a model folder) or llama.cpp and Ollama (a GGUF file)."""
    from slm_train import export_gguf, export_hf

    if target == "hf":
        path = export_hf(run_dir, out, checkpoint=checkpoint, force=force)
        console.print(f"[bold]wrote[/bold] {path}")
        console.print(f"load it with: AutoModelForCausalLM.from_pretrained({str(path)!r})")
    elif target == "gguf":
        path = export_gguf(run_dir, out, dtype=dtype, checkpoint=checkpoint, force=force)
        console.print(f"[bold]wrote[/bold] {path} ({path.stat().st_size / 1e6:.1f} MB, {dtype})")
        console.print(f"run it with: llama-cli -m {path}   (Ollama: a Modelfile with FROM {path})")
    else:
        raise ValueError(f"--format must be hf or gguf, not {target!r}")


@import_app.command("hf", epilog=IMPORT_EXAMPLES)
@friendly_errors
def import_hf_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A hub model id (OWNER/NAME) or a folder saved by transformers' save_pretrained.",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="The run to create.", show_default=False)],
    revision: Annotated[
        str | None,
        typer.Option("--revision", help="A branch, tag or commit of the hub repo (default main)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite --out if it holds a run.")
    ] = False,
) -> None:
    """A GPT-2, Llama, Qwen2 or Qwen3 model, from the Hugging Face hub or a folder, as a run."""
    from slm_train import import_hf

    with download_bar(console) as progress:
        run = import_hf(source, out, revision=revision, force=force, progress=progress)
    console.print(f"[bold]created[/bold] {run.path}")
    console.print(f"try it: slm-cli generate 'Hello' --run {run.path}")


@contextmanager
def download_bar(console: Console) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback drawing one rich bar, shown from its first call."""
    bar = Progress(
        TextColumn("downloading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = None

    def progress(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("download", total=total)
        bar.update(task, completed=done, total=total)

    try:
        yield progress
    finally:
        if task is not None:  # a bar never started would still print an empty line
            bar.stop()
