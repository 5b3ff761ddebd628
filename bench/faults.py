"""Fault injection: what happens to a run when things go wrong, counted.

    uv run python bench/faults.py [--kills 60] [--flips 3] [--pairs 5]

1. killed writers: a process saving checkpoints in a loop is `kill -9`ed at
   random moments; then the next writer takes the run's lock (which cleans up)
   and `last/` must be a complete checkpoint, newer than or equal to the one
   before, with no stray folders;
2. flipped bytes: one byte flipped at random places in every file of a run;
   reading the run (config, tokenizer, both checkpoints, optimizer state,
   metrics) must give a clear error, or the same data as before;
3. concurrent writers: two `train --resume` on the same run started together;
   exactly one may train, the other must be refused, and metrics.jsonl must
   hold every step once.

Every outcome is one of: recovered / unaffected (fine), clear error (fine: the
message says what to do), silent change (the data differs and nothing said
so), crash (a traceback). The last two are failures, and the script says which
file they came from.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import checkpoint_writer, quick_config, story
from slm_train import (
    CheckpointError,
    ConfigError,
    Run,
    RunError,
    read_checkpoint,
    train,
)
from slm_train.lock import RunLock

CLEAR = (CheckpointError, RunError, ConfigError, ValueError)


def killed_writers(work: Path, trials: int, seed: int) -> Counter:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "torch._dynamo", "slm_model", "helpers"])
    run, rng, step, outcomes = work / "killed", random.Random(seed), 0, Counter()
    for trial in range(trials):
        events = context.SimpleQueue()
        writer = context.Process(target=checkpoint_writer, args=(run, step, events), daemon=True)
        writer.start()
        events.get()
        if trial % 2 or trial == 0:
            events.get()  # a completed write first
        time.sleep(rng.uniform(0, 0.05))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        with RunLock(run):
            pass
        try:
            checkpoint = read_checkpoint(run / "last")
            stray = [p.name for p in run.iterdir() if p.name.startswith(".")]
            weights = checkpoint.build_model().tok_emb.weight
            good = (
                not stray
                and checkpoint.state["step"] >= step
                and torch.equal(weights, torch.full_like(weights, float(checkpoint.state["step"])))
            )
            outcomes["recovered" if good else "silent change"] += 1
            step = checkpoint.state["step"]
        except CLEAR:
            outcomes["clear error"] += 1  # only before the first write completes
        except Exception:
            outcomes["crash"] += 1
    return outcomes


def snapshot(run: Run) -> dict:
    """Everything a reader takes from a run, for comparison after a fault."""
    tokenizer = run.tokenizer()
    best, last = run.load_model("best"), run.load_model("last")
    optimizer = run.checkpoint("last").optimizer_state()
    return {
        "config": run.config,
        "tokenizer": tokenizer.encode("And God said, Let there be light"),
        "best": {k: v.clone() for k, v in best.state_dict().items()},
        "last": {k: v.clone() for k, v in last.state_dict().items()},
        "optimizer": optimizer,
        "metrics": run.metrics(),
    }


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def flipped_bytes(run_dir: Path, flips: int, seed: int) -> tuple[Counter, Counter]:
    reference, rng = snapshot(Run(run_dir)), random.Random(seed)
    outcomes, silent_files = Counter(), Counter()
    files = sorted(p for p in run_dir.rglob("*") if p.is_file() and p.name != "writer.lock")
    for path in files:
        original = path.read_bytes()
        for _ in range(flips):
            data = bytearray(original)
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(data))
            try:
                outcome = "unaffected" if same(snapshot(Run(run_dir)), reference) else "silent"
            except CLEAR:
                outcome = "clear error"
            except Exception:
                outcome = "crash"
            outcomes[outcome] += 1
            if outcome in ("silent", "crash"):
                silent_files[f"{path.relative_to(run_dir)} ({outcome})"] += 1
            path.write_bytes(original)
    return outcomes, silent_files


CONCURRENT = """
import json, sys
from slm_train import RunError, TrainConfig, train
config = TrainConfig.from_dict(json.loads(sys.argv[1]))
try:
    print("trained", train(config, resume=True).step)
except RunError as error:
    print("refused", error)
except Exception as error:
    print("other", type(error).__name__, error)
"""


def concurrent_writers(work: Path, corpus: Path, pairs: int) -> Counter:
    outcomes = Counter()
    config = quick_config(work / "c", corpus, max_steps=10, eval_interval=5)
    train(config)
    for pair in range(pairs):
        # Long enough (100 steps) that the second starts while the first trains.
        target = config.replace(max_steps=10 + 100 * (pair + 1))
        command = [sys.executable, "-c", CONCURRENT, json.dumps(target.to_dict())]
        processes = [subprocess.Popen(command, stdout=-1, stderr=-1, text=True) for _ in range(2)]
        results = sorted(p.communicate()[0].split()[0] for p in processes)
        steps = [r["step"] for r in Run(config.out_dir).metrics() if r["type"] == "step"]
        clean = results == ["refused", "trained"] and len(steps) == len(set(steps))
        outcomes["one trained, one refused" if clean else f"other: {results}"] += 1
        config = target
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--flips", type=int, default=3, help="flips per file")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, torch {torch.__version__}")
    work = Path(tempfile.mkdtemp(prefix="slm-faults-"))
    try:
        corpus = work / "corpus.txt"
        corpus.write_text("\n<|endoftext|>\n".join(story(i) for i in range(60)))
        print("killed writers:", dict(killed_writers(work, args.kills, 0)))
        result = train(quick_config(work / "f", corpus, max_steps=6, eval_interval=3))
        outcomes, bad = flipped_bytes(result.run_dir, args.flips, 0)
        print("flipped bytes:", dict(outcomes))
        for name, count in bad.items():
            print(f"  {name}: {count}")
        print("concurrent writers:", dict(concurrent_writers(work, corpus, args.pairs)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
