"""The report card: `RUN/report.md`, a run's whole life on one page (nanochat's report.md).

Where this sits: `slm-cli report [RUN]` calls `write_report`. It reads what
training, fine-tuning and evaluation left in the run and in the runs it was
tuned from (stages.py), writes `report.md` with its loss curves as PNGs in
`RUN/report/`, and returns the Markdown, which renders on GitHub and in a
terminal (rich). A file that is missing or damaged costs its section, which
says so in one line; it never stops the report.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..checkpoint import CheckpointError
from ..data.sources import CorpusError
from ..files import write_text_atomically
from ..run import Run, RunError
from . import sections
from .stages import stages

# What a damaged or missing file raises while a section reads it.
SECTION_ERRORS = (RunError, CheckpointError, CorpusError, OSError, ValueError, KeyError, TypeError)


@dataclass
class ReportCard:
    path: Path  # RUN/report.md
    markdown: str
    images: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per section left out


def write_report(
    run: Run | str | os.PathLike, *, samples: bool = True, device: str = "cpu"
) -> ReportCard:
    """Write `RUN/report.md` (and `RUN/report/*.png`); returns what was written."""
    run = run if isinstance(run, Run) else Run(run)
    images = run.path / sections.IMAGES
    images.mkdir(exist_ok=True)
    for old in images.glob("*.png"):
        old.unlink()
    found, problems = stages(run)
    written = f"Written {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} by `slm-cli report`."
    parts = [f"# Report card: `{run.path}`", written]

    def add(title: str, make: Callable[[], str]) -> None:
        try:
            parts.append(make())
        except SECTION_ERRORS as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            line = f"{title}: left out ({reason})"
            problems.append(line)
            parts.append(f"## {title}\n\n_{line}_")

    add("Environment", sections.environment_section)
    add("Stages", lambda: sections.stages_section(found))
    add("Tokenizer", lambda: sections.tokenizer_section(run))
    for stage in found:
        add(stage.name.capitalize(), lambda stage=stage: _stage_section(stage, images))
    add("Evaluations", lambda: _collect(sections.evaluations_section(found, images), problems))
    if samples:
        add("Samples", lambda: sections.samples_section(run, device))
    if problems:
        parts.append("## Problems\n\n" + "\n".join(f"- {line}" for line in problems))
    markdown = "\n\n".join(parts) + "\n"
    path = run.path / "report.md"
    write_text_atomically(path, markdown)
    return ReportCard(path, markdown, sorted(images.glob("*.png")), problems)


def _stage_section(stage, images: Path) -> str:
    if stage.imported:
        return sections.import_section(stage)
    if stage.pretrained:
        return sections.pretraining_section(stage, images)
    return sections.finetuning_section(stage, images)


def _collect(made: tuple[str, list[str]], problems: list[str]) -> str:
    text, found = made
    problems += found
    return text


__all__ = ["ReportCard", "write_report"]
