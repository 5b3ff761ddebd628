"""The race: GPT-2's recipe against each modern change, the same wall-clock time for each.

    uv run python bench/recipe.py                 # 4 minutes per entry, about 45 minutes in all
    uv run python bench/recipe.py --minutes 2 --entries 0,7
    uv run python bench/recipe.py --quick         # a smoke test: seconds per entry
    uv run python bench/recipe.py --ablate        # today's default + each piece of issue 27
    uv run python bench/recipe.py --nanochat ../nanochat   # + nanochat's own recipe as a row
    uv run python bench/recipe.py --minutes 2 --entries 8 --set warmup_steps=20 \
        --vary muon_lr=0.01,0.02                  # tuning: one entry per value

Every entry trains on the built-in corpus (`builtin:bbe`, `bpe:4096`) for the
same time budget, which covers everything `slm_train.train` does (setting up,
training, the final evaluation). The entries form a ladder: the old default GPT-2
`small` recipe, then that recipe re-tuned for a budget of minutes, then one
modern change added at a time, so each row shows what its change buys on top
of the rows above it; the full modern recipe, and last the same without
QK-norm.

A shared machine is noisy, and noise that hits one entry and not another
would decide the race. So the entries take turns: each trains for a slice (30
seconds by default), is stopped as Ctrl-C would stop it (`last/` is saved),
and later resumes exactly where it stopped (`train(config, resume=True)`),
until each has spent its budget. The learning-rate schedule follows the whole
budget, as in an uninterrupted run, and a resumed run repeats the uninterrupted
one's steps exactly, so the slicing changes only when each step runs.

`--ablate` races a different list: today's default (`TrainConfig()`'s recipe)
and then that default plus one piece at a time from bench/ablations.py, so
each row shows what its piece alone buys. `--nanochat PATH` adds one row that
trains nanochat's own model and optimiser from a local checkout
(bench/nanochat_row.py says how it is set up and what is patched around).

The score is the validation loss in bits per byte of text, computed after
training on every token of the validation split: bits/byte = (summed loss in
nats) / (ln 2 x UTF-8 bytes of those tokens' text), so models with different
tokenizers could be compared; and the same loss in nats per token. Tokens per
second counts training steps only.
The same script runs on a GPU unchanged: the device is detected.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from ablations import ABLATIONS_MODEL, ABLATIONS_OPTIM
from nanochat_row import NanochatEntry
from slm_train import Reporter, TrainConfig, prepare, read_checkpoint, train
from slm_train.runtime import resolve_device

# The ladder. Each entry adds its changes to everything above it. The second row
# only re-tunes the old default for a budget of minutes (a 100-step warm-up is
# most of a 4-minute CPU run), so the rows after it show what the architecture
# and the optimiser buy on top of tuning alone. Rates from `--vary` sweeps on
# 2-minute budgets (README, "The modern recipe").
LADDER: list[tuple[str, dict[str, Any]]] = [
    ("GPT-2 small, AdamW + cosine (the old default)", {}),
    ("+ warm-up 20 steps, lr 2e-3", {"warmup_steps": 20, "learning_rate": 2e-3}),
    ("+ RoPE", {"model": {"pos": "rope"}}),
    ("+ RMSNorm, no biases", {"model": {"norm": "rmsnorm", "bias": False}}),
    ("+ SwiGLU", {"model": {"mlp": "swiglu"}}),
    ("+ GQA, 2 kv heads (= llama-small)", {"model": {"n_kv_head": 2, "intermediate_size": 768}}),
    ("+ QK-norm", {"model": {"qk_norm": True}}),
    (
        "+ Muon at 0.01, AdamW part at 4e-3",
        {"optimizer": "muon", "muon_lr": 0.01, "learning_rate": 4e-3},
    ),
    ("+ WSD schedule (slm-cli train's default)", {"schedule": "wsd"}),
    ("- QK-norm (= llama-small, Muon + WSD)", {"model": {"qk_norm": False}}),
]


# What every entry shares: a time budget, one evaluation at the end, no samples.
RACE: dict[str, Any] = dict(
    max_steps=None,
    max_time=240.0,  # replaced by --minutes
    eval_interval=10**9,  # evaluate once, at the end
    eval_batches=4,
    sample_tokens=0,
    log_interval=1,  # StopAt looks at every step
)


def ablations() -> list[tuple[str, TrainConfig]]:
    """Today's default, then the default plus each piece of bench/ablations.py alone."""
    default = TrainConfig(**RACE)
    rows = [("today's default (qwen3-small, Muon + AdamW, WSD)", default)]
    for name, changes in [*ABLATIONS_OPTIM, *ABLATIONS_MODEL]:
        model = {**default.model, **changes.get("model", {})}
        rows.append((name, default.replace(**{**changes, "model": model})))
    return rows


class StopAt(Reporter):
    """Stops training (as Ctrl-C does) once the run's clock passes `deadline` seconds."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def step(self, record: dict[str, Any]) -> None:
        if record["elapsed"] >= self.deadline:
            raise KeyboardInterrupt


def entries(
    selected: str | None, vary: str | None, settings: Sequence[str] = ()
) -> list[tuple[str, TrainConfig]]:
    """The ladder as complete configurations: all of it, or the indexes in `selected`.

    `settings` ("KEY=VALUE", VALUE in JSON) change every selected entry; `vary`
    ("KEY=V1,V2,..."): each selected entry once per value. Both are for tuning.
    """
    config = TrainConfig(  # the old default, spelled out: today's defaults are the winner's
        preset="small",
        optimizer="adamw",
        schedule="cosine",
        learning_rate=1e-3,
        warmup_steps=100,
        **RACE,
    )
    ladder = []
    for name, changes in LADDER:
        model = {**config.model, **changes.get("model", {})}
        config = config.replace(**{**changes, "model": model})
        ladder.append((name, config))
    if selected:
        ladder = [ladder[int(i)] for i in selected.split(",")]
    for key, _, value in (setting.partition("=") for setting in settings):
        ladder = [
            (f"{name}, {key}={value}", c.replace(**{key: json.loads(value)})) for name, c in ladder
        ]
    if not vary:
        return ladder
    key, _, values = vary.partition("=")
    return [
        (f"{name}, {key}={value}", config.replace(**{key: json.loads(value)}))
        for name, config in ladder
        for value in values.split(",")
    ]


def bits_per_byte(logits, block: int, data, device, max_tokens: int | None) -> tuple[float, float]:
    """(bits per byte, nats per token) of `logits` (a model's forward) on the validation
    tokens: summed next-token loss / (ln 2 x bytes of their text), and / their count."""
    tokens = torch.from_numpy(data.tokens("val").astype("int64"))[: max_tokens or None]
    nats = 0.0
    windows = [tokens[i : i + block + 1] for i in range(0, len(tokens) - 1, block)]
    full, last = windows[:-1], windows[-1:]  # all but the last window are block + 1 long
    batches = [torch.stack(full[i : i + 16]) for i in range(0, len(full), 16)]
    with torch.no_grad():
        for batch in [*batches, *(w[None] for w in last)]:
            batch = batch.to(device)
            nats += torch.nn.functional.cross_entropy(
                logits(batch[:, :-1]).flatten(0, 1).float(), batch[:, 1:].flatten(), reduction="sum"
            ).item()
    tokenizer = data.load_tokenizer()
    targets = [t for t in tokens[1:].tolist() if t != tokenizer.eot_id]
    text_bytes = len(tokenizer.decode(targets).encode("utf-8"))
    return nats / (math.log(2) * text_bytes), nats / (len(tokens) - 1)


def score(r: dict, data, device: torch.device, max_tokens: int | None) -> tuple[float, float]:
    """An entry's (bits per byte, nats per token): slm's from its `last/` checkpoint."""
    if "entry" in r:
        return bits_per_byte(r["entry"].logits, 256, data, device, max_tokens)
    model = read_checkpoint(Path(r["config"].out_dir) / "last").build_model(device).eval()
    return bits_per_byte(model, model.config.block_size, data, device, max_tokens)


def race(configs, data, budget: float, slice_seconds: float, root: Path, extra=()) -> list[dict]:
    """Train every entry for `budget` seconds, in turns of `slice_seconds`.

    `extra`: entries that train themselves (NanochatEntry), in the same turns."""
    results = [
        {"name": name, "config": config.replace(out_dir=str(root / str(i)), max_time=budget)}
        for i, (name, config) in enumerate(configs)
    ] + [{"name": entry.name, "entry": entry} for entry in extra]
    for r in results:
        r.update(started=False, done=False, steps=0, tokens=0, training_seconds=0.0)
    turn = 0
    while not all(r["done"] for r in results):
        turn += 1
        for r in (r for r in results if not r["done"]):
            began = time.perf_counter()
            take_turn(r, data, turn * slice_seconds)
            print(
                f"  turn {turn:>2}  {r['name']:<38} step {r['steps']:>5}  "
                f"{time.perf_counter() - began:5.1f} s{'  done' if r['done'] else ''}",
                flush=True,
            )
    return results


def take_turn(r: dict, data, deadline: float) -> None:
    """Train one entry until its own clock passes `deadline` (or its budget ends)."""
    if "entry" in r:
        entry = r["entry"]
        entry.advance(deadline)
        r.update(done=entry.done, steps=entry.steps, tokens=entry.tokens)
        r["training_seconds"] = entry.training_seconds
        return
    fit = train(r["config"], resume=r["started"], data=data, reporter=StopAt(deadline))
    r.update(started=True, done=not fit.interrupted, steps=fit.step, tokens=fit.tokens)
    r["training_seconds"] += fit.seconds["training"]


def machine() -> str:
    """The CPU (lscpu's model name), cores, GPU, torch and the load average, in one line."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        names = [
            line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line
        ]
        cpu = names[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        cpu = platform.processor() or platform.machine()
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    load = ", load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads{gpu}, "
        f"torch {torch.__version__}, Python {platform.python_version()}{load}"
    )


def table(results: list[dict], minutes: float) -> str:
    baseline = results[0]["bpb"]
    lines = [
        f"| entry ({minutes:g} min each) | steps | tokens/s | val bits/byte | val loss "
        "| vs first |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        speed = r["tokens"] / max(r["training_seconds"], 1e-9)
        change = f"{100 * (r['bpb'] / baseline - 1):+.1f}%"
        lines.append(
            f"| {r['name']} | {r['steps']:,} | {speed:,.0f} | {r['bpb']:.4f} | "
            f"{r['nats']:.3f} | {change} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="slm recipe race")
    parser.add_argument("--minutes", type=float, default=4.0, help="budget per entry")
    parser.add_argument("--slice", type=float, default=30.0, help="seconds per turn")
    parser.add_argument("--entries", help="comma-separated indexes into the ladder (default all)")
    parser.add_argument("--vary", help="KEY=V1,V2,...: each entry once per value (tuning)")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for every entry")
    parser.add_argument("--quick", action="store_true", help="smoke test: 12 s per entry")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--ablate", action="store_true", help="default + each piece alone")
    parser.add_argument("--nanochat", metavar="PATH", help="+ a row: nanochat from this checkout")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.slice = 0.2, 4.0

    configs = ablations() if args.ablate else entries(args.entries, args.vary, args.set)
    device = resolve_device(configs[0][1].device)
    print(f"# slm recipe race: {machine()}")
    print(f"device {device}, {args.minutes:g} min per entry in turns of {args.slice:g} s\n")
    data = prepare("builtin:bbe", Path("data") / "builtin-bbe-bpe-4096", "bpe:4096")
    with tempfile.TemporaryDirectory() as root:
        budget = args.minutes * 60
        extra = [NanochatEntry(args.nanochat, data, budget, device, args.quick)]
        extra = extra if args.nanochat else []
        results = race(configs, data, budget, args.slice, Path(root), extra)
        for r in results:
            r["bpb"], r["nats"] = score(r, data, device, 20_000 if args.quick else None)
    print(f"\n{table(results, args.minutes)}\n\nafter: {machine()}")
    if args.json:
        keep = ("name", "steps", "tokens", "training_seconds", "bpb", "nats")
        rows = [{k: r[k] for k in keep} | configuration(r) for r in results]
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


def configuration(r: dict) -> dict[str, Any]:
    if "entry" in r:
        return {"config": {"nanochat": r["entry"].path}}
    return {"config": r["config"].to_dict()}


if __name__ == "__main__":
    sys.exit(main())
