"""The sections of a report card, each a function from runs to Markdown.

Each reads only what a run keeps (config.json, metrics.jsonl, the
checkpoints, `evals/`), except the tokenizer's bytes per token, counted on
the held-out split, and the samples, which the model writes now with a
fixed seed. The loss curves are drawn by plot.py, into the reported run's
`report/` folder.
"""

from __future__ import annotations

from pathlib import Path

from ..benchmarks.heldout import BenchmarkError, held_out, token_bytes
from ..compare import sample_run
from ..evals import read_evals
from ..plot import plot_losses
from ..run import Run
from . import environment
from .figures import plot_scores
from .markdown import DASH, code, duration, facts, number, table
from .stages import Stage, StageStats, parameter_counts

IMAGES = "report"  # the PNGs' folder, inside the reported run
SAMPLE_TOKENS = 48
NO_MFU = "- (only where the peak FLOP/s is known: a CPU, or a GPU in peak.GPU_PEAK_FLOPS)"
LEGEND = (
    "Chance is a uniform guess over the vocabulary (bpb), one candidate in K (cloze) or the "
    "most common answer (chat); the unigram baseline is a model of the training tokens' "
    "frequencies alone, scored on the same items. A dash: the task has none."
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
        total += stats.elapsed if stats else 0.0
        kind = stage.run.config.get("kind", "pre-trained")
        time = duration(stats.elapsed) if stats else DASH
        rows.append((stage.name, f"`{stage.run.path}`", kind, time))
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
    except BenchmarkError:
        rows.append(("bytes per token", "- (no held-out text: the run was not pre-trained here)"))
    return "## Tokenizer\n\n" + facts(rows)


def pretraining_section(stage: Stage, images: Path) -> str:
    run, stats = stage.run, stage.stats()
    model = run.model_config
    rows = [
        ("model", f"{run.config['train'].get('preset', 'custom')}: {model.n_layer} layers, "
                  f"{model.n_head} heads, {model.n_embd} wide, context {model.block_size}"),
        ("parameters", _parameters(run)),
        ("data", _data(run)),
        ("training", _training(run)),
    ]  # fmt: skip
    if stats:
        speed = f"{stats.tokens_per_s:,.0f} (median of the logged steps)"
        rows += [
            ("steps", f"{stats.steps:,}"),
            ("tokens", f"{stats.tokens:,}"),
            ("time", duration(stats.elapsed)),
            ("tokens/s", speed if stats.tokens_per_s else DASH),
            ("MFU", f"{stats.mfu:.1%} (median)" if stats.mfu else NO_MFU),
        ]
    rows += _losses(stats)
    return f"## Pre-training (`{run.path}`)\n\n" + facts(rows) + _curves(stage, images)


def _parameters(run: Run) -> str:
    total, without = parameter_counts(run)
    return f"{total:,} ({without:,} without embeddings)"


def _data(run: Run) -> str:
    data = run.config["data"]
    if "train_tokens" in data:
        return (
            f"{data['source']}: {data['train_tokens']:,} train / {data['val_tokens']:,} val tokens"
        )
    return (
        f"{data['source']}: {data['train']:,} train / {data['val']:,} val / {data['test']:,} test"
    )


def _training(run: Run) -> str:
    train = run.config["train"]
    schedule = (
        f"{train['epochs']} epochs"
        if "epochs" in train
        else f"batch {train['batch_size']} x {train['grad_accum_steps']}"
    )
    return f"{schedule}, lr {train['learning_rate']}, {train['precision']}"


def _losses(stats: StageStats | None) -> list[tuple[str, str]]:
    if not stats or not stats.best:
        return [("validation loss", "- (never evaluated)")]
    best, last = stats.best, stats.last
    return [("validation loss", f"best {best['val_loss']:.4f} (step {best['step']:,}), "
                                f"last {last['val_loss']:.4f}")]  # fmt: skip


def _curves(stage: Stage, images: Path) -> str:
    """The stage's loss curves as a PNG in `images`, and the Markdown that shows it."""
    usable = [
        m for m in stage.run.metrics()
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
    rows = [("fine-tuned from", f"`{run.config['data'].get('base')}`"), ("data", _data(run)),
            ("training", _training(run))]  # fmt: skip
    if stats and stats.last and "epoch" in stats.last:
        rows.append(("epochs", f"{stats.last['epoch']:g} ({stats.steps:,} steps)"))
    if stats:
        rows += [("tokens", f"{stats.tokens:,}"), ("time", duration(stats.elapsed))]
    rows += _losses(stats)
    if stats and stats.test:
        tests = ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in stats.test.items())
        rows.append(("test", tests))
    heading = f"## {stage.name.capitalize()} (`{run.path}`)\n\n"
    return heading + facts(rows) + _curves(stage, images)


def import_section(stage: Stage) -> str:
    run = stage.run
    state = run.checkpoint("best").state
    rows = [
        ("imported from", state.get("imported_from", run.config["data"]["source"])),
        ("parameters", _parameters(run)),
        ("model", ", ".join(f"{k}={v}" for k, v in run.config["model"].items())),
        ("chat template", "yes" if run.config.get("chat_template") else "no"),
    ]
    return f"## Imported model (`{run.path}`)\n\n" + facts(rows)


def evaluations_section(stages: list[Stage], images: Path) -> tuple[str, list[str]]:
    """Every evaluation kept in the stages' `evals/` folders, oldest first, with a picture of
    the latest score of each task against its baselines; and a line per damaged record."""
    parts, problems, latest = [], [], {}
    for stage in stages:
        records, bad = read_evals(stage.run.path)
        problems += bad
        for record in records:
            parts.append(_record(record, stage))
            latest |= {(s.get("task"), s.get("metric")): s for s in record["scores"]}
    if not parts:
        run = stages[-1].run.path
        return (
            f"## Evaluations\n\nNone yet: `slm-cli eval --run {run} --tasks bpb,cloze` adds some.",
            problems,
        )
    parts.insert(0, LEGEND)
    picture = plot_scores(list(latest.values()), images / "evaluations.png")
    if picture:
        parts.append(f"![the latest scores beside their baselines]({IMAGES}/{picture.name})")
    return "## Evaluations\n\n" + "\n\n".join(parts), problems


def _record(record: dict, stage: Stage) -> str:
    """One evaluation: a heading (kind, when, which stage, how long) and its scores."""
    header = ("task", "metric", "value", "± stderr", "n", "chance", "unigram baseline")
    rows = [
        (s.get("task"), s.get("metric"), number(s.get("value")), number(s.get("stderr"), 2),
         number(s.get("n")), number(s.get("chance")), number(s.get("baseline")))
        for s in record["scores"]
    ]  # fmt: skip
    raw = record.get("raw") if isinstance(record.get("raw"), dict) else {}
    took = f", {duration(raw['seconds'])}" if isinstance(raw.get("seconds"), float) else ""
    when = f"{record.get('kind', '?')}, {record.get('created', '?')}"
    return f"### {when} ({stage.name}{took})\n\n" + table(header, rows)


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
    if run.config.get("kind") == "chat":  # ChatML, or a hub model's own template
        return [("Who are you?", 0.0), ("What is 7 + 5?", 0.0)]
    if run.config.get("prompt_format"):
        return [("Give three tips for staying healthy.", 0.0)]
    if run.config["data"].get("source") == "builtin:bbe":
        return [("And God said", 0.8), ("In the beginning", 0.8)]
    return [("The", 0.8), ("Once upon a time", 0.8)]
