"""What fine-tuning shows in an 80-column terminal, rendered by rich as a user would see it."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

from helpers import quick_config, story
from rich.console import Console
from slm_cli.reporting import FinetuneReporter, join_fields
from slm_train import ClassifyConfig, finetune_classifier, train

FIELD = re.compile(r"epoch [\d.]+|(train|val) [a-z ]+ [\d.e+-]+|[\d.]+ s")


def test_finetune_bar_ends_at_100_percent_and_lines_break_between_fields(tmp_path: Path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n<|endoftext|>\n".join(story(i) for i in range(30)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two steps are shorter than the warm-up: fine here
        base = train(quick_config(tmp_path, corpus, max_steps=2)).run_dir
    data = tmp_path / "sport.csv"
    data.write_text(
        "text,label\n"
        + "".join(
            f"the dog ran to the {'goal' if i % 2 else 'park'},{'sport' if i % 2 else 'home'}\n"
            for i in range(60)
        )
    )
    console = Console(file=io.StringIO(), width=80, record=True)
    config = ClassifyConfig(
        data=str(data), base_run=str(base), out_dir=str(tmp_path / "clf"), epochs=3
    )
    # 42 training rows in batches of 8: 6 steps an epoch, 18 in all, logged every 10.
    finetune_classifier(config, reporter=FinetuneReporter(console))
    lines = console.export_text().splitlines()

    bar = lines[-1]
    assert bar.startswith("step 18 ") and " 100% " in bar, bar
    epochs = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    assert len(epochs) == 3
    for line in lines[epochs[0] : -1]:  # each evaluation's line and its continuation
        assert len(line) <= 80 and line.startswith(("epoch ", "  ")), lines
        for field in line.strip().rstrip(",").split(", "):
            assert FIELD.fullmatch(field), (field, lines)


def test_fields_are_joined_and_broken_only_between_fields():
    fields = ["epoch 1", "train loss 0.6542", "val accuracy 0.6167", "12.5 s"]
    assert join_fields(fields, 80) == "epoch 1, train loss 0.6542, val accuracy 0.6167, 12.5 s"
    assert join_fields(fields, 30) == ("epoch 1, train loss 0.6542,\n  val accuracy 0.6167, 12.5 s")
