"""The `slm-cli` command: train, generate, chat, eval, prepare, tokenizer, info, finetune, report.

Every command is parse -> one library call -> render: the options come from
the libraries' configuration dataclasses (options.py), the work is a public
function of slm_train or slm_model, and this module only prints. Anything the
command line does, a notebook can do with the same names.

PyTorch is imported inside the commands, not here, so `slm-cli --help` and
`--version` answer at once.
"""

from __future__ import annotations

import sys
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from slm_serve.config import ServeConfig
from slm_train import DataConfig, TrainConfig

from . import (
    eval_commands,
    export_commands,
    finetune_commands,
    inspect_commands,
    report_commands,
    tokenizer_commands,
)
from .errors import debug_mode, fail, friendly_errors, show_warning
from .options import (
    CheckpointOption,
    DeviceOption,
    QuantizeOption,
    SystemOption,
    config_options,
    max_new_tokens_option,
)

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

RunOption = Annotated[
    Path | None,
    typer.Option(
        "--run", help="Run directory. Default: the most recent run under runs/.", show_default=False
    ),
]
BENCH = {"rich_help_panel": "Benchmarks (lm-evaluation-harness)"}


def versions() -> str:
    packages = ("slm-tokenizer", "slm-model", "slm-train", "slm-serve", "slm-cli")
    return "  ".join(f"{name} {version(name)}" for name in packages)


def _version_callback(value: bool) -> None:
    if value:
        console.print(versions(), highlight=False, soft_wrap=True)
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
    if not debug:
        warnings.showwarning = show_warning


def open_run(run_dir: Path | None):
    from slm_train import Run, latest_run

    return Run(run_dir) if run_dir is not None else latest_run()


# -------------------------------------------------------------------- train
@app.command(
    "train",
    epilog="Examples:\n\n"
    "  slm-cli train                                    # small model, built-in corpus, ~8 min\n\n"
    "  slm-cli train --chat                             # then chat-tuned: a model that answers\n\n"
    "  slm-cli train --data tinystories --tokenizer gpt2 --preset gpt2 --max-time 2h\n\n"
    "  slm-cli train --data 'books/*.txt' --model n_layer=6 --max-steps 5000\n\n"
    "  slm-cli train --resume --max-steps 4000           # continue the latest run\n\n"
    "  slm-cli train --devices 4 ...                     # data-parallel on 4 processes\n\n"
    "  torchrun --nproc_per_node 4 -m slm_cli -- train ...  # the same, started by torchrun",
)
@friendly_errors
@config_options(TrainConfig, panel="Training settings (slm_train.TrainConfig)")
def train_command(
    config: Annotated[Path | None, typer.Option(help="A TOML file of training settings.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue --out (default: the latest run).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite --out if it holds a run.")
    ] = False,
    chat: Annotated[
        bool,
        typer.Option(
            "--chat",
            help="Then chat-tune it on the built-in conversations: from nothing to a model "
            "that answers, in 10 minutes (--max-time) for both stages; --out defaults to "
            "runs/chat, the pre-trained run goes to runs/chat-base.",
        ),
    ] = False,
    *,
    overrides: dict[str, Any],
) -> None:
    """Train a model. With no options: a small GPT on the built-in corpus, in minutes on a CPU.

    Training stops at the first of its budgets. With none given, that is 2000
    steps or 8 minutes; the budgets you give (--max-steps, --max-tokens,
    --max-time) replace that pair, so --max-steps 5000 has no time limit.
    """
    from slm_train import plan_training, train

    from .reporting import RichReporter

    if chat:
        from slm_train.chat_recipe import plan_chat, train_chat

        from .reporting import FinetuneReporter

        plan = plan_chat(overrides, config_file=config, resume=resume)
        reporters = {"reporter": RichReporter(console), "chat_reporter": FinetuneReporter(console)}
        outcome = train_chat(plan, force=force, **reporters)
        if outcome.interrupted:
            raise typer.Exit(code=130)
        return render_chat_trained(outcome)
    train_config = plan_training(overrides, config_file=config, resume=resume)
    result = train(train_config, resume=resume, force=force, reporter=RichReporter(console))
    if result.interrupted:
        raise typer.Exit(code=130)
    if result.history:  # under torchrun, only rank 0 has the history and reports
        render_trained(result, "And God said" if train_config.data == "builtin:bbe" else "The")


def render_trained(result, prompt: str) -> None:
    summary = Table.grid(padding=(0, 2))
    summary.add_row("[bold]run", str(result.run_dir))
    summary.add_row(
        "[bold]steps",
        f"{result.step:,} ({result.tokens:,} tokens) in {result.elapsed / 60:.1f} min",
    )
    summary.add_row("[bold]time", ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items()))
    summary.add_row("[bold]best validation loss", f"{result.best_val_loss:.4f}")
    summary.add_row("[bold]loss curves", str(result.run_dir / "loss.png"))
    summary.add_row("[bold]chat with it", f"uv run slm-cli chat --run {result.run_dir}")
    summary.add_row("[bold]generate", f'uv run slm-cli generate "{prompt}" --run {result.run_dir}')
    console.print(Panel(summary, title="Training finished", expand=False))


def render_chat_trained(outcome) -> None:
    summary = Table.grid(padding=(0, 2))
    summary.add_row("[bold]runs", f"{outcome.base.run_dir} (pre-trained), {outcome.chat.run_dir}")
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in outcome.seconds.items())
    summary.add_row("[bold]time", stages)
    summary.add_row("[bold]validation loss", f"{outcome.base.best_val_loss:.3f} (pre-training)")
    if outcome.chat.test_loss is not None:
        summary.add_row("[bold]chat test loss", f"{outcome.chat.test_loss:.3f} (replies only)")
    if outcome.greeting:
        question, reply = outcome.greeting
        summary.add_row("[bold]you", question)
        summary.add_row("[bold]model", reply)
    summary.add_row("[bold]chat with it", f"uv run slm-cli chat --run {outcome.chat.run_dir}")
    console.print(Panel(summary, title="Chat model ready", expand=False))


# ----------------------------------------------------------------- generate
@app.command(
    "generate",
    epilog="Examples:\n\n  slm-cli generate 'And God said'\n\n"
    "  slm-cli generate 'Once upon a time' --run runs/stories --temperature 0.7 --num-samples 3",
)
@friendly_errors
def generate_command(
    prompt: Annotated[
        str, typer.Argument(help="Text to continue (special tokens are plain text).")
    ],
    run_dir: RunOption = None,
    max_new_tokens: Annotated[int, max_new_tokens_option("Tokens to generate.")] = 200,
    temperature: Annotated[
        float, typer.Option(min=0.0, help="0 = greedy; higher = more varied.")
    ] = 0.8,
    top_k: Annotated[
        int | None, typer.Option(min=0, help="Sample from the k most likely tokens (0 = all).")
    ] = 40,
    top_p: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Nucleus sampling: the most likely tokens up to p."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed, for repeatable samples.")] = None,
    num_samples: Annotated[int, typer.Option(min=1, help="How many continuations.")] = 1,
    system: SystemOption = None,
    checkpoint: CheckpointOption = "best",
    device: DeviceOption = "auto",
    quantize: QuantizeOption = "none",
) -> None:
    """Continue a prompt, printing tokens as they are generated.

    A fine-tuned run answers the prompt in its format instead: an instruct run's
    Alpaca, or a chat run's one user turn, whose reply ends at <|im_end|>.
    """
    import torch
    from slm_model import stream
    from slm_train import ChatTemplate, encode_prompt, reply_ends, resolve_device

    from .streaming import stream_text

    run = open_run(run_dir)
    tok = run.tokenizer()
    prompt_format = run.config.get("prompt_format")
    template = ChatTemplate.of(run.config)
    ids = encode_prompt(tok, prompt_format, prompt, system, template)
    ends = reply_ends(tok, prompt_format, template)
    if not ids:
        raise ValueError("the prompt is empty; give some text to continue")
    model = run.load_model(checkpoint, resolve_device(device), quantize)
    generator = torch.Generator(device=model.tok_emb.weight.device)
    generator.manual_seed(seed) if seed is not None else generator.seed()
    settings = {"temperature": temperature, "top_k": top_k or None, "top_p": top_p}
    for sample in range(num_samples):
        if num_samples > 1:
            console.rule(f"sample {sample + 1}")
        if prompt_format is None:
            console.print(prompt, style="bold", end="")
        eos = ends[0] if ends else None
        tokens = stream(model, ids, max_new_tokens, eos_id=eos, generator=generator, **settings)
        for piece in stream_text(tok, tokens, stop_at=ends):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")


# --------------------------------------------------------------------- chat
@app.command(
    "chat",
    epilog="Examples:\n\n  slm-cli chat\n\n"
    "  slm-cli chat --run runs/chat --system 'You answer in one sentence.'\n\n"
    "  printf 'And God said\\n/quit\\n' | slm-cli chat",
)
@friendly_errors
def chat_command(
    run_dir: RunOption = None,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature.")] = 0.8,
    top_k: Annotated[
        int, typer.Option(min=0, help="Sample from the k most likely tokens (0 = all).")
    ] = 40,
    max_new_tokens: Annotated[int, max_new_tokens_option("Longest reply, in tokens.")] = 120,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    system: SystemOption = None,
    checkpoint: CheckpointOption = "best",
    device: DeviceOption = "auto",
    quantize: QuantizeOption = "none",
) -> None:
    """Talk to a model: each line you type gets a streamed reply. /help lists the commands.

    A chat run holds a conversation (ChatML turns, each reply ending at
    <|im_end|>); a pre-trained run continues the running text.
    """
    from slm_train import resolve_device

    from .chat import Settings, run_chat

    run = open_run(run_dir)
    tok = run.tokenizer()
    model = run.load_model(checkpoint, resolve_device(device), quantize)
    settings = Settings(temperature=temperature, top_k=top_k or None, max_new_tokens=max_new_tokens)
    run_chat(model, tok, run.config, settings, seed, system)


# --------------------------------------------------------------------- eval
@app.command(
    "eval",
    epilog="Examples:\n\n  slm-cli eval\n\n  slm-cli eval --run runs/x --data other.txt\n\n"
    "  slm-cli eval --run runs/x --tasks hellaswag,arc_easy --limit 200   # the eval extra\n\n"
    "  slm-cli eval --run runs/x --tasks my_task --include-path tasks/ --output-path results/",
)
@friendly_errors
def eval_command(
    run_dir: RunOption = None,
    data: Annotated[
        str | None,
        typer.Option(help="Other text to evaluate on (default: the run's validation split)."),
    ] = None,
    max_batches: Annotated[
        int | None, typer.Option(min=1, help="Evaluate at most this many batches.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Sequences per batch.")] = 16,
    checkpoint: CheckpointOption = "best",
    device: DeviceOption = "auto",
    tasks: Annotated[
        str | None,
        typer.Option(
            help="Benchmarks instead of the loss, comma-separated: slm's offline bpb, cloze "
            "and chat, lm-eval's task names (hellaswag, arc_easy, ...) or ones "
            "--include-path defines.",
            **BENCH,
        ),
    ] = None,
    include_path: Annotated[
        Path | None, typer.Option(help="A folder of your own lm-eval task YAMLs.", **BENCH)
    ] = None,
    num_fewshot: Annotated[
        int | None, typer.Option(min=0, help="Examples shown before each question.", **BENCH)
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Score at most this many examples a task.", **BENCH)
    ] = None,
    output_path: Annotated[
        Path | None, typer.Option(help="Write lm-eval's results files here.", **BENCH)
    ] = None,
    log_samples: Annotated[
        bool,
        typer.Option(
            "--log-samples", help="With --output-path: every example's record too.", **BENCH
        ),
    ] = False,
    apply_chat_template: Annotated[
        bool,
        typer.Option(
            "--apply-chat-template", help="Wrap prompts in a chat run's template.", **BENCH
        ),
    ] = False,
) -> None:
    """Validation loss and perplexity of a run (on its validation text or on --data), or its
    scores on benchmarks (--tasks); each evaluation is kept in RUN/evals/."""
    run = open_run(run_dir)
    if tasks is not None:
        if data is not None or max_batches is not None:
            raise ValueError("--data and --max-batches are for the loss; drop them with --tasks")
        names = [name.strip() for name in tasks.split(",") if name.strip()]
        eval_commands.evaluate_tasks(
            run, names, limit=limit, include_path=include_path, num_fewshot=num_fewshot,
            batch_size=batch_size, output_path=output_path, log_samples=log_samples,
            apply_chat_template=apply_chat_template, checkpoint=checkpoint, device=device,
        )  # fmt: skip
        return
    _evaluate_loss(run, data, max_batches, batch_size, checkpoint, device)


def _evaluate_loss(run, data, max_batches, batch_size, checkpoint, device) -> None:
    from slm_train import evaluate_run, save_evaluation

    result = evaluate_run(
        run,
        data,
        checkpoint=checkpoint,
        batch_size=batch_size,
        max_batches=max_batches,
        device=device,
        progress=console.print,
    )
    table = Table(title=f"Evaluation of {run.path} ({checkpoint})")
    for column in ("data", "tokens", "loss", "perplexity"):
        table.add_column(column)
    loss, perplexity = f"{result.loss:.4f}", f"{result.perplexity:.2f}"
    table.add_row(result.source, f"{result.tokens:,}", loss, perplexity)
    console.print(table)
    console.print(f"Saved in {save_evaluation(run.path, 'loss', result.scores())}")


# ------------------------------------------------------------------ prepare
@app.command(
    "prepare",
    epilog="Examples:\n\n  slm-cli prepare --data tinystories --tokenizer gpt2\n\n"
    "  slm-cli prepare --data notes/ --near-dedup 0.8 --min-chars 200",
)
@friendly_errors
@config_options(DataConfig, skip=("data_dir",), panel="Data settings (slm_train.DataConfig)")
def prepare_command(
    out: Annotated[
        Path | None, typer.Option(help="Output folder. Default: data/SOURCE-TOKENIZER.")
    ] = None,
    *,
    overrides: dict[str, Any],
) -> None:
    """Tokenize a corpus into train.bin / val.bin (training does this itself when needed)."""
    from slm_train import prepare_config

    data = prepare_config(DataConfig(**overrides), out, progress=console.print)
    meta = data.meta
    table = Table(title=f"Prepared {meta['source']} in {data.directory}", show_header=False)
    table.add_row(
        "tokenizer", f"{meta['tokenizer']['spec']} ({meta['tokenizer']['vocab_size']:,} tokens)"
    )
    for split, name in (("train", "train"), ("val", "validation")):
        tokens, documents = meta[f"{split}_tokens"], meta[f"{split}_documents"]
        table.add_row(name, f"{tokens:,} tokens in {documents:,} documents")
    table.add_row("dtype", meta["dtype"])
    table.add_row("cleaning", data.cleaning.summary())  # each step's count is printed above
    if meta["skipped_files"]:
        count = len(meta["skipped_files"])
        files = f"{count} file{'s' * (count != 1)}"
        table.add_row("skipped", f"{files} (named above, and in meta.json)")
    console.print(table)


# --------------------------------------------------------------------- info
@app.command("info", epilog="Example:\n\n  slm-cli info --run runs/20261122-001500-small")
@friendly_errors
def info_command(run_dir: RunOption = None) -> None:
    """Configuration, parameter counts and training summary of a run."""
    s = open_run(run_dir).summary()
    table = Table(title=f"Run {s.path}", show_header=False)
    table.add_row("[bold]model", ", ".join(f"{k}={v}" for k, v in s.model.items()))
    table.add_row(
        "[bold]parameters",
        f"{s.parameters:,} ({s.parameters_without_embeddings:,} without embeddings)",
    )
    table.add_row("[bold]tokenizer", s.tokenizer)
    table.add_row("[bold]kind", s.kind + (f" ({', '.join(s.labels)})" if s.labels else ""))
    table.add_row("[bold]data", s.data)
    if s.base:
        table.add_row("[bold]fine-tuned from", s.base)
    if s.prompt_format:
        table.add_row("[bold]prompt format", s.prompt_format)
    table.add_row("[bold]training", s.training)
    if s.speed:
        table.add_row("[bold]speed", s.speed)
    if s.last_eval:
        last, best = s.last_eval, s.best_eval
        minutes = last.get("elapsed", 0) / 60
        table.add_row(
            "[bold]progress", f"step {last['step']:,}, {last['tokens']:,} tokens, {minutes:.1f} min"
        )
        table.add_row(
            "[bold]validation loss",
            f"best {best['val_loss']:.4f} (step {best['step']:,}), last {last['val_loss']:.4f}",
        )
    if s.test:
        scores = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in s.test.items())
        table.add_row("[bold]test", scores)
    for which, present in s.checkpoints.items():
        table.add_row(f"[bold]{which} checkpoint", str(s.path / which) if present else "none")
    console.print(table)


# -------------------------------------------------------------------- serve
@app.command(
    "serve",
    epilog="Examples:\n\n  slm-cli serve --run runs/chat\n\n"
    '  slm-cli serve --run runs/chat --host 0.0.0.0 --api-key "$(openssl rand -hex 16)"',
)
@friendly_errors
@config_options(ServeConfig, panel="Server settings (slm_serve.ServeConfig)")
def serve_command(*, overrides: dict[str, Any]) -> None:
    """Serve a run over HTTP with OpenAI's API (/v1/chat/completions, /v1/completions).

    Any OpenAI client works against it: point its base URL at
    http://HOST:PORT/v1. Requests that arrive together are generated together.
    Ctrl-C stops it, ending running replies properly.
    """
    from slm_serve import serve

    config = ServeConfig(**overrides)

    def announce(served, url: str) -> None:
        kind = "chat run" if served.is_chat else "text-continuing run"
        console.print(
            f"Serving {served.run_dir} ({kind}) as model [bold]{served.name}[/bold] at "
            f"{url}  (Ctrl-C stops)",
            highlight=False,
            soft_wrap=True,
        )

    serve(config, announce)


# Registered last, so that --help lists them after the commands they build on.
app.command("inspect", epilog=inspect_commands.INSPECT_EXAMPLES)(inspect_commands.inspect_command)
app.command("compare", epilog=inspect_commands.COMPARE_EXAMPLES)(inspect_commands.compare_command)
app.command("export", epilog=export_commands.EXPORT_EXAMPLES)(export_commands.export_command)
app.add_typer(export_commands.import_app, name="import")
app.command("report", epilog=report_commands.REPORT_EXAMPLES)(report_commands.report_command)


def run() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        fail("interrupted")
        raise SystemExit(130) from None


if __name__ == "__main__":
    run()
