"""`slm-cli finetune classify | instruct | chat | dpo | rl` and `slm-cli classify`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from slm_train import ChatConfig, ClassifyConfig, DPOConfig, InstructConfig, RLConfig

from .errors import friendly_errors
from .options import config_options

console = Console()
app = typer.Typer(
    help="Fine-tune a trained model: text classification, instruction following, chat, or "
    "preferences (DPO), rewards on checkable tasks (RL).",
    no_args_is_help=True,
)

Force = Annotated[bool, typer.Option("--force", help="Overwrite --out if it holds a run.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue an interrupted --out.")]


@app.command(
    "classify",
    epilog="Example:\n\n  slm-cli finetune classify --data spam.csv --run runs/base "
    "--out runs/spam --balance",
)
@friendly_errors
@config_options(ClassifyConfig, panel="Fine-tuning settings (slm_train.ClassifyConfig)")
def finetune_classify(
    force: Force = False, resume: Resume = False, *, overrides: dict[str, Any]
) -> None:
    """Turn a language model into a text classifier (the book's chapter 6)."""
    from slm_train import finetune_classifier

    from .reporting import FinetuneReporter

    config = ClassifyConfig(**overrides)
    result = finetune_classifier(
        config, force=force, resume=resume, reporter=FinetuneReporter(console)
    )
    if result.interrupted:
        raise typer.Exit(code=130)
    if not result.history:  # under torchrun, only rank 0 has the history and reports
        return
    matrix = Table(
        title=f"Test set: accuracy {result.test_accuracy:.1%} (rows: true, columns: predicted)"
    )
    matrix.add_column("")
    for name in result.labels:
        matrix.add_column(name, justify="right")
    matrix.add_column("precision", justify="right")
    matrix.add_column("recall", justify="right")
    for row, name in enumerate(result.labels):
        cells = [str(v) for v in result.confusion[row]]
        matrix.add_row(name, *cells, f"{result.precision[row]:.1%}", f"{result.recall[row]:.1%}")
    console.print(matrix)
    console.print(f"{result.seconds_per_epoch:.1f} s per epoch; run: {result.run_dir}")
    console.print(f'try it: uv run slm-cli classify "some text" --run {result.run_dir}')


@app.command(
    "instruct",
    epilog="Example:\n\n  slm-cli finetune instruct --data instructions.json --run runs/base "
    "--out runs/assistant --mask-prompt",
)
@friendly_errors
@config_options(InstructConfig, panel="Fine-tuning settings (slm_train.InstructConfig)")
def finetune_instruct(
    force: Force = False, resume: Resume = False, *, overrides: dict[str, Any]
) -> None:
    """Teach a model to follow instructions in the Alpaca format (the book's chapter 7)."""
    from slm_train import finetune_instructions

    from .reporting import FinetuneReporter

    config = InstructConfig(**overrides)
    result = finetune_instructions(
        config, force=force, resume=resume, reporter=FinetuneReporter(console)
    )
    if result.interrupted:
        raise typer.Exit(code=130)
    if not result.history:  # under torchrun, only rank 0 has the history and reports
        return
    scores = Table(title="Test set")
    for column in ("exact match", "token F1", "responses"):
        scores.add_column(column)
    scores.add_row(
        f"{result.exact_match:.1%}", f"{result.token_f1:.3f}", str(result.responses_file)
    )
    console.print(scores)
    samples = Table(title="Some test responses", show_lines=True)
    for column in ("instruction", "input", "expected", "response"):
        samples.add_column(column, overflow="fold")
    for sample in result.samples:
        samples.add_row(
            sample["instruction"], sample["input"], sample["expected"], sample["response"]
        )
    console.print(samples)
    console.print(f"{result.seconds_per_epoch:.1f} s per epoch")
    console.print(f"chat with it: uv run slm-cli chat --run {result.run_dir}")


@app.command(
    "chat",
    epilog="Example:\n\n  slm-cli finetune chat --data chats.jsonl --run runs/base --out runs/chat",
)
@friendly_errors
@config_options(ChatConfig, panel="Fine-tuning settings (slm_train.ChatConfig)")
def finetune_chat(
    force: Force = False, resume: Resume = False, *, overrides: dict[str, Any]
) -> None:
    """Teach a model to hold a conversation (ChatML turns, system prompts, many turns).

    --data: a .jsonl file of conversations, one per line, in OpenAI's "messages", ShareGPT's
    "conversations" or Alpaca's layout (or a .json list of them).
    """
    from slm_train import finetune_chat

    from .reporting import FinetuneReporter

    config = ChatConfig(**overrides)
    result = finetune_chat(config, force=force, resume=resume, reporter=FinetuneReporter(console))
    if result.interrupted:
        raise typer.Exit(code=130)
    if not result.history:  # under torchrun, only rank 0 has the history and reports
        return
    if result.test_loss is not None:
        console.print(f"Test set: masked loss {result.test_loss:.4f}")
    samples = Table(title="Some test replies", show_lines=True)
    for column in ("question", "expected", "reply"):
        samples.add_column(column, overflow="fold")
    for sample in result.samples:
        samples.add_row(sample["question"], sample["expected"], sample["reply"])
    console.print(samples)
    console.print(f"chat with it: uv run slm-cli chat --run {result.run_dir}")


@app.command(
    "dpo",
    epilog="Example:\n\n  slm-cli finetune dpo --data pairs.jsonl --run runs/chat --out runs/dpo",
)
@friendly_errors
@config_options(
    DPOConfig, skip=("gpt2_weights",), panel="Fine-tuning settings (slm_train.DPOConfig)"
)
def finetune_dpo(
    force: Force = False, resume: Resume = False, *, overrides: dict[str, Any]
) -> None:
    """Teach a chat or instruct run which of two replies people prefer (DPO).

    --data: a .jsonl file of {"prompt" (or "messages"), "chosen", "rejected"} records, rendered
    in the --run's own format (ChatML for chat runs, Alpaca for instruct runs).
    """
    from slm_train import finetune_dpo

    from .reporting import FinetuneReporter

    config = DPOConfig(**overrides)
    result = finetune_dpo(config, force=force, resume=resume, reporter=FinetuneReporter(console))
    if result.interrupted:
        raise typer.Exit(code=130)
    if not result.history:  # under torchrun, only rank 0 has the history and reports
        return
    columns = [
        ("DPO loss", "loss", ".4f"),
        ("reward accuracy", "reward_accuracy", ".1%"),
        ("reward margin", "reward_margin", ".3f"),
        ("prefers chosen", "prefers_chosen", ".1%"),
    ]
    print_before_after("Test pairs: the starting run and the best weights", result, columns)
    console.print(f"chat with it: uv run slm-cli chat --run {result.run_dir}")


@app.command(
    "rl",
    epilog="Example:\n\n  slm-cli finetune rl --task arithmetic --run runs/chat --out runs/rl",
)
@friendly_errors
@config_options(
    RLConfig,
    skip=("gpt2_weights", "data", "val_fraction", "test_fraction"),
    panel="Fine-tuning settings (slm_train.RLConfig)",
)
def finetune_rl(force: Force = False, resume: Resume = False, *, overrides: dict[str, Any]) -> None:
    """Reward a chat run's right answers on checkable tasks (RL, nanochat's simplified GRPO).

    Each step samples --samples answers per problem, checks them, and makes the answers that
    beat their siblings likelier; pass@1 and pass@k on held-out problems show the progress.
    """
    from slm_train import finetune_rl

    from .reporting import FinetuneReporter

    config = RLConfig(**overrides)
    result = finetune_rl(config, force=force, resume=resume, reporter=FinetuneReporter(console))
    if result.interrupted:
        raise typer.Exit(code=130)
    if not result.history:  # under torchrun, only rank 0 has the history and reports
        return
    columns = [("pass@1", "pass_at_1", ".1%"), (f"pass@{config.samples}", "pass_at_k", ".1%")]
    title = "Held-out test problems: the starting run and the best weights"
    print_before_after(title, result, columns)
    console.print(f"chat with it: uv run slm-cli chat --run {result.run_dir}")


def print_before_after(title: str, result: Any, columns: list[tuple[str, str, str]]) -> None:
    """A stage's test metrics for the starting run and the best weights, one row each;
    `columns` are (heading, metric, format). Nothing when the run had no test part."""
    if result.before is None or result.after is None:
        return
    table = Table(title=title)
    table.add_column("")
    for heading, _, _ in columns:
        table.add_column(heading, justify="right")
    for name, row in (("before", result.before), ("after", result.after)):
        table.add_row(name, *(format(row[metric], spec) for _, metric, spec in columns))
    console.print(table)


@friendly_errors
def classify_command(
    text: Annotated[str, typer.Argument(help="The text to classify.")],
    run: Annotated[
        Path, typer.Option("--run", help="A classifier run (from slm-cli finetune classify).")
    ],
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
) -> None:
    """Label a text with a fine-tuned classifier and show the class probabilities."""
    from slm_train import classify, resolve_device

    probabilities = classify(run, [text], device=resolve_device(device))[0]
    best = max(probabilities, key=probabilities.get)
    console.print(f"[bold]{best}[/bold]", highlight=False)
    table = Table(show_header=True)
    table.add_column("label")
    table.add_column("probability", justify="right")
    for label, probability in sorted(probabilities.items(), key=lambda item: -item[1]):
        table.add_row(label, f"{probability:.1%}")
    console.print(table)
