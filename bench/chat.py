"""The one-command chat recipe, measured: `slm-cli train --chat` and its scorecard.

    uv run python bench/chat.py                        # the recipe as shipped, then scored
    uv run python bench/chat.py --shares 0.5 0.6 0.7   # how to split the budget between the stages
    uv run python bench/chat.py --base runs/chat-base --sft-time 240 --lrs 1e-4 3e-4 1e-3
    uv run python bench/chat.py --score runs/chat      # score a chat run made by train --chat

The first two run `train_chat` (tokenizer, pre-training, chat fine-tuning under
one clock) once per pre-training share; `--base` fine-tunes an existing
pre-trained run once per learning rate, to tune the chat stage alone. Each
result is scored on the built-in conversations' held-out test split
(`slm_train.chat.scoring`): greedy replies of at most 64 tokens to

- identity questions in phrasings never trained on (is the reply true?),
- checkable problems never trained on (arithmetic, letter counting, spelling,
  reversing a list), beside the best constant answer's accuracy,
- held-out small talk (does each reply end with <|im_end|>?).

The goals (issue 20): 95 % of replies end, 90 % of identity questions answered
correctly, every task clearly above its baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from slm_train import ChatConfig, Run, TrainConfig
from slm_train.chat import score_chat
from slm_train.chat_recipe import (
    CHAT_BUDGET,
    PRETRAIN_SHARE,
    base_run_dir,
    chat_config,
    train_chat,
)
from slm_train.finetune.chat import conversation_splits, finetune_chat


def scorecard(chat_run: Path, base_run: Path, seed: int) -> dict[str, str]:
    """The chat run's best weights on the held-out test split, as table cells."""
    run = Run(chat_run)
    model, tokenizer = run.load_model("best", torch.device("cpu")), run.tokenizer()
    data = ChatConfig(base_run=str(base_run), seed=seed)  # the built-in conversations
    test = conversation_splits(data, model.config.vocab_size)[2]
    started = time.perf_counter()
    card = score_chat(model, tokenizer, test)
    cells = {"ended": f"{card.ended:.0%}", "identity": f"{card.identity:.0%}"}
    for name, task in card.tasks.items():
        cells[name] = f"{task.accuracy:.0%} ({task.baseline:.0%})"
    cells["scoring"] = f"{time.perf_counter() - started:.0f} s"
    examples = [r for r in card.replies if r.source == "identity"][:3]
    for reply in examples:
        verdict = "ok" if reply.correct else "wrong"
        print(f"  identity  {reply.question!r} -> {reply.text!r} ({verdict})")
    return cells


def recipe(folder: Path, budget: float, share: float, seed: int) -> dict[str, str]:
    config = TrainConfig(out_dir=str(folder / "chat"), max_time=budget, seed=seed)
    result = train_chat(config, force=True, pretrain_share=share)
    cells = {"setting": f"pre-training share {share:.0%}"}
    cells |= {name: f"{seconds:.0f} s" for name, seconds in result.seconds.items()}
    cells["base val loss"] = f"{result.base.best_val_loss:.3f}"
    cells["chat test loss"] = f"{result.chat.test_loss:.3f}"
    return cells | scorecard(result.chat.run_dir, result.base.run_dir, config.seed)


def tune(folder: Path, base: Path, seconds: float, lr: float, seed: int) -> dict[str, str]:
    config = chat_config(TrainConfig(seed=seed), base, folder / f"chat-{lr:g}", seconds)
    result = finetune_chat(config.replace(learning_rate=lr), force=True)
    cells = {"setting": f"lr {lr:g}", "chat fine-tuning": f"{seconds:.0f} s"}
    cells["chat test loss"] = f"{result.test_loss:.3f}"
    return cells | scorecard(result.run_dir, base, config.seed)


def print_table(rows: list[dict[str, str]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row.get(column, "") for column in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=CHAT_BUDGET, help="seconds, all stages")
    parser.add_argument("--shares", type=float, nargs="+", default=[PRETRAIN_SHARE])
    parser.add_argument("--base", type=Path, help="tune the chat stage on this pre-trained run")
    parser.add_argument("--sft-time", type=float, default=240.0, help="seconds, with --base")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4])
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--score", type=Path, help="only score this run of `train --chat`")
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"{machine}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    if args.score:
        return print_table([scorecard(args.score, base_run_dir(args.score), args.seed)])
    with tempfile.TemporaryDirectory(prefix="slm-bench-chat-") as scratch:
        folder = args.out or Path(scratch)
        if args.base:
            rows = [tune(folder, args.base, args.sft_time, lr, args.seed) for lr in args.lrs]
        else:
            rows = [recipe(folder / f"share-{s}", args.budget, s, args.seed) for s in args.shares]
    print_table(rows)


if __name__ == "__main__":
    main()
