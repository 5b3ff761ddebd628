"""RL measured: a chat run rewarded for right answers on one checkable task.

    uv run python bench/rl.py                          # the default chat run, runs/chat
    uv run python bench/rl.py --run runs/chat --task counting --epochs 1 --lr 3e-5

`slm-cli finetune rl` (slm_train/finetune/rl.py) on one task of
slm_train/chat/checkable.py. Reported on held-out problems that neither chat
tuning nor RL ever sees, for the starting run and the RL run's best weights:
the greedy accuracy (bench/chat.py's scorecard, beside always giving the most
common answer), and pass@1 / pass@k of k sampled answers (what the RL run
measures); and the time RL took.

Measured from the default chat run (`slm-cli train --chat`), counting, 256
training problems (32 steps of 8 problems x 4 answers), 40 held-out problems
(docs/benchmarks.md has the table): pass@1 40.0 % -> 34.4 % at lr 3e-5 (507 s,
load about 5) and -> 35.6 % at lr 1e-4 (202 s, load 2.9); greedy accuracy
42.5 % -> 42.5 % and 27.5 %, beside 37.5 % for always giving the commonest
count. RL does not help this model count in 32 steps.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from slm_train import RLConfig, Run, finetune_rl
from slm_train.chat.checkable import TASKS, task_conversations
from slm_train.chat.mixture import Example
from slm_train.chat.scoring import score_chat


def greedy_accuracy(run_dir: Path, task: str, count: int, seed: int) -> tuple[float, float]:
    """(accuracy, constant baseline) of the run's best weights, greedy, on held-out problems."""
    run = Run(run_dir)
    conversations = task_conversations(TASKS[task], count, seed + 1, held_out=True)
    examples = [Example(messages, task, check) for messages, check in conversations]
    card = score_chat(run.load_model("best", "cpu"), run.tokenizer(), examples)
    return card.tasks[task].accuracy, card.tasks[task].baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/chat")
    parser.add_argument("--task", default="counting", choices=sorted(TASKS))
    parser.add_argument("--problems", type=int, default=256)
    parser.add_argument("--eval-problems", type=int, default=40)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-reply-tokens", type=int, default=48)
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; RL on {args.task} from {args.run}"
    )
    with tempfile.TemporaryDirectory() as folder:
        config = RLConfig(
            task=args.task,
            base_run=args.run,
            out_dir=f"{folder}/rl",
            problems=args.problems,
            eval_problems=args.eval_problems,
            samples=args.samples,
            epochs=args.epochs,
            learning_rate=args.lr,
            batch_size=args.batch_size,
            max_reply_tokens=args.max_reply_tokens,
            device="cpu",
        )
        start = time.perf_counter()
        result = finetune_rl(config)
        seconds = time.perf_counter() - start
        greedy = {
            "start": greedy_accuracy(Path(args.run), args.task, args.eval_problems, 0),
            "after RL": greedy_accuracy(result.run_dir, args.task, args.eval_problems, 0),
        }
    k = args.samples
    print(f"\n| | greedy accuracy | baseline | pass@1 | pass@{k} | time |")
    print("|---|---|---|---|---|---|")
    for name, row, took in (
        ("start", result.before, ""),
        ("after RL", result.after, f"{seconds:.0f} s"),
    ):
        accuracy, baseline = greedy[name]
        print(
            f"| {name} | {accuracy:.1%} | {baseline:.1%} | {row['pass_at_1']:.1%} "
            f"| {row['pass_at_k']:.1%} | {took} |"
        )


if __name__ == "__main__":
    main()
