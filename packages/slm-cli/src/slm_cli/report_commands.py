"""`slm-cli report`: a run's report card, written into the run and shown in the terminal.

Parse -> `slm_train.card.write_report` -> render: the library writes
`RUN/report.md` and its PNGs; this command shows the same Markdown with rich,
so what the terminal shows is what GitHub shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .errors import friendly_errors
from .options import DeviceOption

console = Console()

REPORT_EXAMPLES = (
    "Examples:\n\n"
    "  slm-cli report                    # the latest run\n\n"
    "  slm-cli report runs/chat          # a chat run, with the pre-training it was tuned from\n\n"
    "  slm-cli report runs/x --no-samples"
)


@friendly_errors
def report_command(
    run_dir: Annotated[
        Path | None,
        typer.Argument(
            metavar="RUN",
            help="Run directory. Default: the most recent run under runs/.",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[
        bool, typer.Option("--samples/--no-samples", help="Let the model write a few samples.")
    ] = True,
    device: DeviceOption = "cpu",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Write the report without printing it.")
    ] = False,
) -> None:
    """Write RUN/report.md: machine, versions, tokenizer, every stage, evaluations, samples.

    The loss curves go beside it as PNGs in RUN/report/. A chat run's report
    covers the pre-training it was tuned from too.
    """
    from rich.markdown import Markdown  # markdown-it: loaded for this command only
    from slm_train import Run, latest_run
    from slm_train.card import write_report

    run = Run(run_dir) if run_dir is not None else latest_run()
    card = write_report(run, samples=samples, device=device)
    if not quiet:
        console.print(Markdown(card.markdown))
    pictures = f" and {len(card.images)} PNG{'s' * (len(card.images) != 1)}" if card.images else ""
    console.print(f"wrote {card.path}{pictures}", highlight=False, soft_wrap=True)
