"""The `slm-cli` command: train, generate, chat, eval, prepare, tokenizer, info.

It only composes the libraries: every option maps onto `slm_train.TrainConfig`
or a library call, so anything the command line does, a script can do too.
"""

from __future__ import annotations

import math
import os
import re
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from slm_model import stream
from slm_train import (
    RichReporter,
    Run,
    RunError,
    TrainConfig,
    latest_run,
    load_prepared,
    prepare,
    train,
)
from slm_train.datasets import sequential_windows
from slm_train.prompts import format_prompt
from slm_train.train import default_data_dir, evaluate_loss, resolve_device, resolve_precision

from . import finetune_commands, tokenizer_commands
from .chat import Settings, run_chat
from .errors import debug_mode, fail, friendly_errors
from .streaming import stream_text

console = Console()
app = typer.Typer(
    name="slm-cli",
    help="Build, train and talk to small GPT-style language models.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
app.add_typer(tokenizer_commands.app, name="tokenizer")
app.add_typer(finetune_commands.app, name="finetune")
app.command(
    "classify", epilog="Example:\n\n  slm-cli classify 'WIN a free prize now!' --run runs/spam"
)(finetune_commands.classify_command)

# `slm-cli train` with no options: small model, built-in corpus, done in minutes on a laptop CPU.
DEFAULT_MAX_TIME = 8 * 60.0

RunOption = Annotated[
    Path | None,
    typer.Option(
        "--run", help="Run directory. Default: the most recent run under runs/.", show_default=False
    ),
]
CheckpointOption = Annotated[
    str,
    typer.Option(
        "--checkpoint", help="Which weights: [bold]best[/bold] (lowest validation loss) or last."
    ),
]


def versions() -> str:
    packages = ("slm-tokenizer", "slm-model", "slm-train", "slm-cli")
    return "  ".join(f"{name} {version(name)}" for name in packages)


def _version_callback(value: bool) -> None:
    if value:
        console.print(versions(), highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the package versions.",
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks for errors.")
    ] = False,
) -> None:
    """Build, train and talk to small GPT-style language models.

    Start with [bold]slm-cli train[/bold], then [bold]slm-cli chat[/bold].
    """
    debug_mode["on"] = debug


def parse_duration(text: str) -> float:
    """'90' or '90s', '8m', '1h30m' -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    if not text or not parts or not any(parts.groups()):
        raise typer.BadParameter(f"{text!r} is not a duration; use e.g. 90s, 8m or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_model_overrides(items: list[str]) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE, e.g. --model n_layer=6")
        if value.lower() in ("true", "false"):
            overrides[key] = value.lower() == "true"
        else:
            try:
                overrides[key] = int(value)
            except ValueError:
                try:
                    overrides[key] = float(value)
                except ValueError:
                    raise typer.BadParameter(f"{item!r}: {value!r} is not a number") from None
    return overrides


def open_run(run_dir: Path | None) -> Run:
    return Run(run_dir) if run_dir is not None else latest_run()


# -------------------------------------------------------------------- train
@app.command(
    "train",
    epilog="Examples:\n\n"
    "  slm-cli train                                    # small model, built-in corpus, ~8 min\n\n"
    "  slm-cli train --data tinystories --tokenizer gpt2 --preset gpt2 --max-time 2h\n\n"
    "  slm-cli train --data 'books/*.txt' --model n_layer=6 --max-steps 5000\n\n"
    "  slm-cli train --resume --max-steps 4000           # continue the latest run\n\n"
    "  torchrun --nproc_per_node 4 -m slm_cli train ...  # data-parallel on 4 processes",
)
@friendly_errors
def train_command(
    data: Annotated[
        str | None, typer.Option(help="builtin:bbe, tinystories, a file, folder or glob.")
    ] = None,
    tokenizer: Annotated[
        str | None, typer.Option(help="bpe:VOCAB_SIZE (trained on the data) or gpt2.")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="tiny, small, gpt2, gpt2-medium, gpt2-large, gpt2-xl.")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="Override a model field: KEY=VALUE, repeatable.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory. Default: runs/DATE-TIME-PRESET.")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many optimizer steps.")
    ] = None,
    max_time: Annotated[
        str | None, typer.Option(help="Stop after this long, e.g. 90s, 8m, 1h30m.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Stop after this many training tokens.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per micro-batch.")] = None,
    grad_accum: Annotated[
        int | None, typer.Option(help="Micro-batches per optimizer step.")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, fp32, bf16 or fp16.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    compile: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="Use torch.compile.")
    ] = None,
    eval_interval: Annotated[int | None, typer.Option(help="Steps between evaluations.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    config: Annotated[Path | None, typer.Option(help="A TOML file of training options.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue --out (default: the latest run).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite --out if it holds a run.")
    ] = False,
) -> None:
    """Train a model. With no options: a small GPT on the built-in corpus, in minutes on a CPU."""
    flags = {
        "data": data,
        "tokenizer": tokenizer,
        "preset": preset,
        "max_steps": max_steps,
        "max_time": parse_duration(max_time) if max_time else None,
        "max_tokens": max_tokens,
        "batch_size": batch_size,
        "grad_accum_steps": grad_accum,
        "learning_rate": lr,
        "precision": precision,
        "device": device,
        "compile": compile,
        "eval_interval": eval_interval,
        "seed": seed,
        "model": parse_model_overrides(model) if model else None,
        "out_dir": str(out) if out else None,
    }
    flags = {key: value for key, value in flags.items() if value is not None}
    if resume:
        run = open_run(out)
        values = {**run.config["train"], **flags, "out_dir": str(run.path)}
        train_config = TrainConfig.from_dict(values)
    else:
        values = TrainConfig.from_toml(config).to_dict() if config else {}
        budget_given = any(
            k in flags or values.get(k) for k in ("max_steps", "max_time", "max_tokens")
        )
        if not config and not budget_given:
            values["max_time"] = DEFAULT_MAX_TIME
        train_config = TrainConfig.from_dict({**values, **flags})

    result = train(train_config, resume=resume, force=force, reporter=RichReporter(console))
    if result.interrupted:
        raise typer.Exit(code=130)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, rank 0 reports
    summary = Table.grid(padding=(0, 2))
    summary.add_row("[bold]run", str(result.run_dir))
    summary.add_row(
        "[bold]steps",
        f"{result.step:,} ({result.tokens:,} tokens) in {result.elapsed / 60:.1f} min",
    )
    summary.add_row("[bold]best validation loss", f"{result.best_val_loss:.4f}")
    summary.add_row("[bold]loss curves", str(result.run_dir / "loss.png"))
    summary.add_row("[bold]chat with it", f"uv run slm-cli chat --run {result.run_dir}")
    prompt = "And God said" if train_config.data == "builtin:bbe" else "The"
    summary.add_row("[bold]generate", f'uv run slm-cli generate "{prompt}" --run {result.run_dir}')
    console.print(Panel(summary, title="Training finished", expand=False))


# ----------------------------------------------------------------- generate
@app.command(
    "generate",
    epilog="Examples:\n\n  slm-cli generate 'And God said'\n\n"
    "  slm-cli generate 'Once upon a time' --run runs/stories --temperature 0.7 --num-samples 3",
)
@friendly_errors
def generate_command(
    prompt: Annotated[str, typer.Argument(help="Text to continue.")],
    run_dir: RunOption = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 200,
    temperature: Annotated[float, typer.Option(help="0 = greedy; higher = more varied.")] = 0.8,
    top_k: Annotated[int | None, typer.Option(help="Sample from the k most likely tokens.")] = 40,
    top_p: Annotated[
        float | None, typer.Option(help="Nucleus sampling: the most likely tokens up to p.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed, for repeatable samples.")] = None,
    num_samples: Annotated[int, typer.Option(help="How many continuations.")] = 1,
    checkpoint: CheckpointOption = "best",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
) -> None:
    """Continue a prompt, printing tokens as they are generated."""
    run = open_run(run_dir)
    tok = run.tokenizer()
    model = run.load_model(checkpoint, resolve_device(device))
    prompt_format = run.config.get("prompt_format")
    ids = tok.encode(format_prompt(prompt_format, prompt), disallowed_special=())
    if not ids:
        raise ValueError("the prompt is empty; give some text to continue")
    generator = torch.Generator(device=model.tok_emb.weight.device)
    generator.manual_seed(seed) if seed is not None else generator.seed()
    for sample in range(num_samples):
        if num_samples > 1:
            console.rule(f"sample {sample + 1}")
        if prompt_format is None:
            console.print(prompt, style="bold", end="")
        tokens = stream(
            model,
            ids,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k or None,
            top_p=top_p,
            eos_id=tok.eot_id,
            generator=generator,
        )
        for piece in stream_text(tok, tokens, stop_at=tok.eot_id):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")


# --------------------------------------------------------------------- chat
@app.command(
    "chat", epilog="Example:\n\n  slm-cli chat\n\n  printf 'And God said\\n/quit\\n' | slm-cli chat"
)
@friendly_errors
def chat_command(
    run_dir: RunOption = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.8,
    top_k: Annotated[
        int, typer.Option(help="Sample from the k most likely tokens (0 = all).")
    ] = 40,
    max_tokens: Annotated[int, typer.Option(help="Longest reply, in tokens.")] = 120,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    checkpoint: CheckpointOption = "best",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
) -> None:
    """Talk to a model: each line you type gets a streamed reply. /help lists the commands."""
    run = open_run(run_dir)
    tok = run.tokenizer()
    model = run.load_model(checkpoint, resolve_device(device))
    settings = Settings(temperature=temperature, top_k=top_k or None, max_tokens=max_tokens)
    run_chat(model, tok, run.config.get("prompt_format"), settings, seed)


# --------------------------------------------------------------------- eval
@app.command(
    "eval", epilog="Examples:\n\n  slm-cli eval\n\n  slm-cli eval --run runs/x --data other.txt"
)
@friendly_errors
def eval_command(
    run_dir: RunOption = None,
    data: Annotated[
        str | None,
        typer.Option(help="Other text to evaluate on (default: the run's validation split)."),
    ] = None,
    max_batches: Annotated[
        int | None, typer.Option(help="Evaluate at most this many batches.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per batch.")] = 16,
    checkpoint: CheckpointOption = "best",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
) -> None:
    """Validation loss and perplexity of a run, on its own validation text or on --data."""
    run = open_run(run_dir)
    run.tokenizer()  # checks that it matches
    dev = resolve_device(device)
    model = run.load_model(checkpoint, dev)
    if data is None:
        prepared = load_prepared(run.config["data"]["dir"])
        if prepared.meta["tokenizer"]["sha256"] != run.config["tokenizer"]["sha256"]:
            raise RunError(
                f"the data in {prepared.directory} was re-prepared with another tokenizer; "
                "pass --data"
            )
        tokens, source = prepared.tokens("val"), f"{prepared.meta['source']} (validation split)"
    else:
        spec = f"file:{run.path / 'tokenizer.json'}"
        folder = default_data_dir(data, f"tokenizer-of-{run.path.name}")
        prepared = prepare(data, folder, spec, progress=console.print)
        tokens = np.concatenate([prepared.tokens("train"), prepared.tokens("val")])
        source = data
    block = model.config.block_size
    batches = sequential_windows(tokens, block, batch_size, max_batches)
    precision = resolve_precision("auto", dev)
    loss = evaluate_loss(model, batches, dev, precision)
    table = Table(title=f"Evaluation of {run.path} ({checkpoint})")
    for column in ("data", "tokens", "loss", "perplexity"):
        table.add_column(column)
    used = min(len(tokens), (max_batches or 10**12) * batch_size * block)
    table.add_row(source, f"{used:,}", f"{loss:.4f}", f"{math.exp(min(loss, 50)):.2f}")
    console.print(table)


# ------------------------------------------------------------------ prepare
@app.command("prepare", epilog="Example:\n\n  slm-cli prepare --data tinystories --tokenizer gpt2")
@friendly_errors
def prepare_command(
    data: Annotated[
        str, typer.Option(help="builtin:bbe, tinystories, a file, folder or glob.")
    ] = "builtin:bbe",
    tokenizer: Annotated[str, typer.Option(help="bpe:VOCAB_SIZE or gpt2.")] = "bpe:4096",
    out: Annotated[
        Path | None, typer.Option(help="Output folder. Default: data/SOURCE-TOKENIZER.")
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="Share of documents kept for validation.")
    ] = 0.1,
) -> None:
    """Tokenize a corpus into train.bin / val.bin (training does this itself when needed)."""
    out = out or default_data_dir(data, tokenizer)
    prepared = prepare(data, out, tokenizer, val_fraction, progress=console.print)
    meta = prepared.meta
    table = Table(title=f"Prepared {meta['source']} in {prepared.directory}", show_header=False)
    table.add_row(
        "tokenizer", f"{meta['tokenizer']['spec']} ({meta['tokenizer']['vocab_size']:,} tokens)"
    )
    table.add_row(
        "train", f"{meta['train_tokens']:,} tokens in {meta['train_documents']:,} documents"
    )
    table.add_row(
        "validation", f"{meta['val_tokens']:,} tokens in {meta['val_documents']:,} documents"
    )
    table.add_row("dtype", meta["dtype"])
    console.print(table)


# --------------------------------------------------------------------- info
@app.command("info", epilog="Example:\n\n  slm-cli info --run runs/20261122-001500-small")
@friendly_errors
def info_command(run_dir: RunOption = None) -> None:
    """Configuration, parameter counts and training summary of a run."""
    run = open_run(run_dir)
    model_config = run.model_config
    with torch.device("meta"):
        from slm_model import GPTModel

        model = GPTModel(model_config)
    table = Table(title=f"Run {run.path}", show_header=False)
    table.add_row("[bold]model", ", ".join(f"{k}={v}" for k, v in model_config.to_dict().items()))
    table.add_row(
        "[bold]parameters",
        f"{model.num_parameters():,} ({model.num_parameters(True):,} without embeddings)",
    )
    tokenizer = run.config["tokenizer"]
    table.add_row("[bold]tokenizer", f"{tokenizer['spec']} ({tokenizer['vocab_size']:,} tokens)")
    kind = run.config.get("kind", "pre-trained")
    table.add_row(
        "[bold]kind",
        kind + (f" ({', '.join(run.config['labels'])})" if "labels" in run.config else ""),
    )
    data = run.config["data"]
    if "train_tokens" in data:
        counts = f"{data['train_tokens']:,} train / {data['val_tokens']:,} val tokens"
    else:
        counts = f"{data['train']:,} train / {data['val']:,} val / {data['test']:,} test examples"
    table.add_row("[bold]data", f"{data['source']}: {counts}")
    if "base" in data:
        table.add_row("[bold]fine-tuned from", data["base"])
    if run.config.get("prompt_format"):
        table.add_row("[bold]prompt format", run.config["prompt_format"])
    settings = run.config["train"]
    schedule = (
        f"{settings['epochs']} epochs"
        if "epochs" in settings
        else f"batch {settings['batch_size']} x {settings['grad_accum_steps']}"
    )
    table.add_row(
        "[bold]training", f"{schedule}, lr {settings['learning_rate']}, {settings['precision']}"
    )
    metrics = run.metrics()
    evals = [m for m in metrics if m.get("type") == "eval"]
    if evals:
        last = evals[-1]
        best = min(evals, key=lambda m: m["val_loss"])
        minutes = last.get("elapsed", 0) / 60
        table.add_row(
            "[bold]progress", f"step {last['step']:,}, {last['tokens']:,} tokens, {minutes:.1f} min"
        )
        table.add_row(
            "[bold]validation loss",
            f"best {best['val_loss']:.4f} (step {best['step']:,}), last {last['val_loss']:.4f}",
        )
    test = next((m for m in metrics if m.get("type") == "test"), None)
    if test:
        scores = {k: v for k, v in test.items() if isinstance(v, float)}
        table.add_row(
            "[bold]test", ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in scores.items())
        )
    for which in ("best", "last"):
        present = (run.path / which).is_dir()
        table.add_row(f"[bold]{which} checkpoint", str(run.path / which) if present else "none")
    console.print(table)


def run() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        fail("interrupted")
        raise SystemExit(130) from None


if __name__ == "__main__":
    run()
