"""The sections of a report card, each a function from runs to Markdown.

Each reads only what a run keeps (config.json, metrics.jsonl, the
checkpoints, `evals/`), except the tokenizer's bytes per token, counted on
the held-out split, and the samples, which the model writes now with a
fixed seed. The loss curves are drawn by plot.py, into the reported run's
`report/` folder.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from ..benchmarks.heldout import BenchmarkError, held_out, token_bytes
from ..benchmarks.results import read_evals
from ..compare import sample_run
from ..data.sources import CorpusError
from ..plot import plot_losses
from ..run import Run
from . import environment
from .markdown import code, duration, facts, number, table
from .stages import Stage

IMAGES = "report"  # the PNGs' folder, inside the reported run
SAMPLE_TOKENS = 48
LEGEND = (
    "Chance is a uniform guess over the vocabulary (bpb), one candidate in K (cloze) or the "
    "most common answer (chat); the unigram baseline is a model of the training tokens' "
    "frequencies alone, scored on the same items. lm-eval's tasks have neither."
)


def environment_section() -> str:
    rows = [
        ("machine", environment.machine()),
        ("software", environment.software()),
        ("git commit", environment.git_commit()),
    ]
    return "## Environment\n\n" + facts(rows)


def stages_section(stages: list[Stage]) -> str:
    rows, total = [], 0.0
    for stage in stages:
        stats = stage.stats()
        seconds = stats.elapsed if stats else None
        total += seconds or 0.0
        kind = stage.run.config.get("kind", "pre-trained")
        rows.append(
            (stage.name, f"`{stage.run.path}`", kind, duration(seconds) if seconds else "-")
        )
    rows.append(("**total**", "", "", f"**{duration(total)}**"))
    return "## Stages and wall time\n\n" + table(("stage", "run", "kind", "wall time"), rows)


def tokenizer_section(run: Run) -> str:
    tokenizer = run.tokenizer()
    specials = len(tokenizer.special_tokens)
    rows = [
        ("tokenizer", run.config["tokenizer"]["spec"]),
        ("vocabulary", f"{tokenizer.vocab_size:,} tokens ({specials} special)"),
    ]
    try:
        data = held_out(run)
        sizes = token_bytes(tokenizer)[data.tokens]
        per_token = sizes.sum() / max(1, (sizes > 0).sum())
        rows.append(("bytes per token", f"{per_token:.2f} on the held-out text of {data.source}"))
    except (BenchmarkError, CorpusError):
        rows.append(("bytes per token", "- (no held-out text: the run was not pre-trained here)"))
    return "## Tokenizer\n\n" + facts(rows)


def pretraining_section(stage: Stage, images: Path) -> str:
    run, stats = stage.run, stage.stats()
    summary = run.summary()
    model = run.model_config
    metrics = run.metrics()
    steps = [m for m in metrics if m.get("type") == "step"]
    rows = [
        ("model", f"{run.config['train'].get('preset', 'custom')}: {model.n_layer} layers, "
                  f"{model.n_head} heads, {model.n_embd} wide, context {model.block_size}"),
        ("parameters", f"{summary.parameters:,} ({summary.parameters_without_embeddings:,} "
                       "without embeddings)"),
        ("data", summary.data),
        ("training", summary.training),
    ]  # fmt: skip
    if stats:
        rows += [
            ("steps", f"{max((m['step'] for m in steps), default=0):,}"),
            ("tokens", f"{stats.tokens:,}"),
            ("time", duration(stats.elapsed)),
            ("tokens/s", f"{stats.tokens_per_s:,.0f} (median of the logged steps)"
                         if stats.tokens_per_s else "-"),
            ("MFU", _mfu(steps)),
        ]  # fmt: skip
    rows += _losses(summary)
    return f"## Pre-training (`{run.path}`)\n\n" + facts(rows) + _curves(stage, metrics, images)


def _mfu(steps: list[dict]) -> str:
    values = [m["mfu"] for m in steps if "mfu" in m]
    if not values:
        return "- (only on a GPU whose peak FLOP/s is known: metrics.PEAK_FLOPS)"
    return f"{statistics.median(values):.1%} (median)"


def _losses(summary) -> list[tuple[str, str]]:
    if not summary.best_eval:
        return [("validation loss", "- (never evaluated)")]
    best, last = summary.best_eval, summary.last_eval
    return [("validation loss", f"best {best['val_loss']:.4f} (step {best['step']:,}), "
                                f"last {last['val_loss']:.4f}")]  # fmt: skip


def _curves(stage: Stage, metrics: list[dict], images: Path) -> str:
    """The stage's loss curves as a PNG in `images`, and the Markdown that shows it."""
    usable = [
        m for m in metrics
        if (m.get("type") == "step" and "loss" in m)
        or (m.get("type") == "eval" and "train_loss" in m and "val_loss" in m)
    ]  # fmt: skip
    if not usable:
        return ""
    name = stage.name.replace(" ", "-")
    path = plot_losses(usable, images / f"{name}-loss.png")
    return f"\n\n![{stage.name}: loss curves]({IMAGES}/{path.name})"


def finetuning_section(stage: Stage, images: Path) -> str:
    run, stats = stage.run, stage.stats()
    summary = run.summary()
    metrics = run.metrics()
    evals = [m for m in metrics if m.get("type") == "eval"]
    rows = [("fine-tuned from", f"`{summary.base}`"), ("data", summary.data),
            ("training", summary.training)]  # fmt: skip
    if evals and "epoch" in evals[-1]:
        rows.append(("epochs", f"{evals[-1]['epoch']:g} ({evals[-1]['step']:,} steps)"))
    if stats:
        rows += [("tokens", f"{stats.tokens:,}"), ("time", duration(stats.elapsed))]
    rows += _losses(summary)
    if summary.test:
        tests = ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in summary.test.items())
        rows.append(("test", tests))
    heading = f"## {stage.name.capitalize()} (`{run.path}`)\n\n"
    return heading + facts(rows) + _curves(stage, metrics, images)


def import_section(stage: Stage) -> str:
    run = stage.run
    summary = run.summary()
    state = json.loads((run.path / "best" / "state.json").read_text(encoding="utf-8"))
    rows = [
        ("imported from", state.get("imported_from", run.config["data"]["source"])),
        ("parameters", f"{summary.parameters:,} ({summary.parameters_without_embeddings:,} "
                       "without embeddings)"),
        ("model", ", ".join(f"{k}={v}" for k, v in summary.model.items())),
        ("chat template", "yes" if run.config.get("chat_template") else "no"),
    ]  # fmt: skip
    return f"## Imported model (`{run.path}`)\n\n" + facts(rows)


def evaluations_section(stages: list[Stage]) -> tuple[str, list[str]]:
    """Every evaluation kept in the stages' `evals/` folders, oldest first, and any problems."""
    parts, problems = [], []
    header = ("task", "metric", "value", "± stderr", "n", "chance", "unigram baseline")
    for stage in stages:
        records, bad = read_evals(stage.run.path)
        problems += bad
        for record in records:
            rows = [
                (s.get("task"), s.get("metric"), number(s.get("value")), number(s.get("stderr"), 2),
                 number(s.get("n")), number(s.get("chance")), number(s.get("baseline")))
                for s in record["scores"]
            ]  # fmt: skip
            title = f"### {record.get('kind', '?')}, {record.get('created', '?')} ({stage.name})"
            parts.append(f"{title}\n\n" + table(header, rows))
    if parts:
        parts.insert(0, LEGEND)
    else:
        run = stages[-1].run.path
        parts.append(f"None yet: `slm-cli eval --run {run} --tasks bpb,cloze` adds some.")
    return "## Evaluations\n\n" + "\n\n".join(parts), problems


def samples_section(run: Run, device: str) -> str:
    kind = run.config.get("kind", "pre-trained")
    if kind == "classifier":
        return "## Samples\n\nNone: a classifier labels text, it does not write it."
    parts = []
    for prompt, temperature in _prompts(run):
        text = sample_run(run, prompt, SAMPLE_TOKENS, temperature=temperature, device=device)
        if run.config.get("prompt_format"):  # a reply to the prompt
            how = "greedy"
        else:  # a continuation of it
            how, text = f"temperature {temperature}, seed 0", prompt + text
        parts.append(f"**{prompt}** ({how})\n\n{code(text.strip())}")
    return "## Samples\n\n" + "\n\n".join(parts)


def _prompts(run: Run) -> list[tuple[str, float]]:
    """What to ask: questions of a chat or instruct run (greedy), else openings to continue."""
    if run.config.get("prompt_format") == "chatml":
        return [("Who are you?", 0.0), ("What is 7 + 5?", 0.0), ("Spell the word 'river'.", 0.0)]
    if run.config.get("prompt_format"):
        return [("Give three tips for staying healthy.", 0.0)]
    if run.config["data"].get("source") == "builtin:bbe":
        return [("And God said", 0.8), ("In the beginning", 0.8)]
    return [("The", 0.8), ("Once upon a time", 0.8)]
