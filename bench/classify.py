"""Classification fine-tuning benchmark: does `finetune classify` learn an easy task in its epochs?

    uv run python bench/classify.py                       # about 10 minutes on 2 busy CPU cores
    uv run python bench/classify.py --run runs/base --epochs 1 3 5 --seeds 1 2 3

1. Pre-trains the `tiny` preset for 60 steps on the built-in corpus (or takes --run).
2. Writes a keyword task (deterministic, no downloads): 600 texts of 6 to 14 common
   words, half of them "spam" because one of five words (free, win, prize, cash,
   offer) was put in at a random place; the rest "ham".
3. Fine-tunes with slm's old defaults and with the current `ClassifyConfig`
   defaults, for each number of epochs and each seed, and prints the test accuracy
   (120 held-out texts, chance 50 %) with the median over the seeds.

Every configuration trains from scratch: with a decaying learning rate, the
accuracy after 3 epochs of a 10-epoch run is not that of a 3-epoch run.
Threads default to 1: the model is so small that more threads only wait on
each other (and on a shared machine, on other people's work).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from slm_train import ClassifyConfig, TrainConfig, finetune_classifier, train

FILLER = "the man went to a house and saw his father with the people of the land in that day when they came from the city over the water under a tree by the road".split()  # noqa: SIM905, E501
KEYWORDS = ["free", "win", "prize", "cash", "offer"]

# What `ClassifyConfig` had before issue 19 (the book's GPT-2 settings): the
# learning rate was too low for a small model, and the cosine took it down to a tenth.
OLD = {"learning_rate": 1e-4, "read_at": "last"}
RECIPES = {"old defaults": OLD, "defaults": {}}


def keyword_rows(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) pairs: "spam" exactly when the text holds one of KEYWORDS."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        words = [rng.choice(FILLER) for _ in range(rng.randint(6, 14))]
        spam = i % 2 == 1
        if spam:
            words.insert(rng.randrange(len(words) + 1), rng.choice(KEYWORDS))
        rows.append((" ".join(words), "spam" if spam else "ham"))
    rng.shuffle(rows)
    return rows


def pretrain(folder: Path, steps: int) -> str:
    config = TrainConfig(
        preset="tiny",
        tokenizer="bpe:512",
        max_steps=steps,
        out_dir=str(folder / "base"),
        data_dir=str(folder / "data"),
    )
    result = train(config)
    print(f"pre-trained `tiny` for {steps} steps: validation loss {result.best_val_loss:.3f}")
    return str(result.run_dir)


def accuracy(data: Path, base: str, folder: Path, epochs: int, seed: int, recipe: dict) -> float:
    config = ClassifyConfig(
        data=str(data), base_run=base, out_dir=str(folder), epochs=epochs, seed=seed, **recipe
    )
    return finetune_classifier(config, force=True).test_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description="slm classification fine-tuning benchmark")
    parser.add_argument("--run", help="a pre-trained run to start from (default: pre-train one)")
    parser.add_argument("--pretrain-steps", type=int, default=60)
    parser.add_argument("--rows", type=int, default=600, help="texts in the keyword task")
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 3, 5, 10])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # short runs trip the warm-up warning; not the point here
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    print(f"# slm classification benchmark: {machine}")

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        base = args.run or pretrain(work, args.pretrain_steps)
        data = work / "keywords.csv"
        with open(data, "w", newline="") as file:
            csv.writer(file).writerows([("text", "label"), *keyword_rows(args.rows)])
        print(f"## test accuracy: {args.rows} texts, spam when one of {', '.join(KEYWORDS)}")
        seeds = "".join(f"{f'seed {s}':>9}" for s in args.seeds)
        print(f"{'recipe':<16}{'epochs':>7}{seeds}{'median':>9}")
        started = time.perf_counter()
        for name, recipe in RECIPES.items():
            for epochs in args.epochs:
                scores = [
                    accuracy(data, base, work / "clf", epochs, seed, recipe) for seed in args.seeds
                ]
                cells = "".join(f"{s:>9.1%}" for s in scores)
                print(f"{name:<16}{epochs:>7}{cells}{statistics.median(scores):>9.1%}", flush=True)
        print(f"({(time.perf_counter() - started) / 60:.1f} min of fine-tuning)")


if __name__ == "__main__":
    main()
