"""A run's life as stages: the run itself and the runs it was tuned from, oldest first.

`train --chat` leaves two runs, `runs/chat-base` (pre-training) and
`runs/chat` (chat fine-tuning), and the second names the first in its
config.json (`data.base`). Following those names back gives every stage of a
model's life, whichever run the report is asked for. A run that names no
base and has no token files of its own was imported from the hub.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..compare import RunStats, run_stats
from ..run import Run, RunError

MAX_STAGES = 8  # more is a loop of bases, not a model's life

STAGE_NAMES = {
    "pre-trained": "pre-training",
    "imported": "import",
    "chat": "chat fine-tuning",
    "instruct": "instruction tuning",
    "classifier": "classifier fine-tuning",
}


@dataclass
class Stage:
    run: Run
    name: str  # "pre-training", "chat fine-tuning", "import"...

    @property
    def imported(self) -> bool:
        data = self.run.config.get("data", {})
        return not data.get("base") and "val_tokens" not in data

    @property
    def pretrained(self) -> bool:
        return "val_tokens" in self.run.config.get("data", {})

    def stats(self) -> RunStats | None:
        """Speed, tokens and time from metrics.jsonl; None where nothing was trained."""
        try:
            return run_stats(self.run, self.run.path.name)
        except RunError:
            return None


def stage_of(run: Run) -> Stage:
    kind = run.config.get("kind", "pre-trained")
    stage = Stage(run, STAGE_NAMES.get(kind, kind))
    if stage.imported:
        stage.name = "import"
    return stage


def stages(run: Run) -> tuple[list[Stage], list[str]]:
    """The stages that made `run`, oldest first, and a line for a base that is gone."""
    found, problems = [stage_of(run)], []
    while len(found) < MAX_STAGES:
        base = found[0].run.config.get("data", {}).get("base")
        if not base:
            break
        try:
            found.insert(0, stage_of(Run(base)))
        except RunError as error:
            problems.append(f"the base run {base} cannot be read ({error}); its stage is left out")
            break
    return found, problems
