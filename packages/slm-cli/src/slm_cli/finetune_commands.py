"""`slm-cli finetune classify | instruct` and `slm-cli classify`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from slm_train import Reporter
from slm_train.finetune import (
    ClassifyConfig,
    InstructConfig,
    classify,
    finetune_classifier,
    finetune_instructions,
)
from slm_train.train import resolve_device

from .errors import friendly_errors

console = Console()
app = typer.Typer(
    help="Fine-tune a trained model: text classification or instruction following.",
    no_args_is_help=True,
)

BaseRun = Annotated[Path | None, typer.Option("--run", help="The pre-trained run to start from.")]
Gpt2Weights = Annotated[
    Path | None,
    typer.Option("--gpt2", help="Or start from GPT-2: a model.safetensors from Hugging Face."),
]
Out = Annotated[Path, typer.Option(help="Where to write the fine-tuned run.")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite --out if it holds a run.")]


class EpochReporter(Reporter):
    """Prints the setup and one line per epoch."""

    def start(self, info: dict[str, Any]) -> None:
        table = Table(show_header=False, box=None)
        for key, value in info.items():
            table.add_row(f"[bold]{key}", str(value))
        console.print(table)

    def message(self, text: str) -> None:
        console.print(text, highlight=False)


@app.command(
    "classify",
    epilog="Example:\n\n  slm-cli finetune classify --data spam.csv --run runs/base "
    "--out runs/spam --balance",
)
@friendly_errors
def finetune_classify(
    data: Annotated[Path, typer.Option(help="CSV or JSONL with text and label columns.")],
    run: BaseRun = None,
    gpt2: Gpt2Weights = None,
    out: Out = Path("runs/classifier"),
    val_data: Annotated[Path | None, typer.Option(help="Separate validation file.")] = None,
    test_data: Annotated[Path | None, typer.Option(help="Separate test file.")] = None,
    train: Annotated[
        str, typer.Option("--train", help="What trains: last-block, all or head.")
    ] = "last-block",
    lora_rank: Annotated[
        int | None, typer.Option(help="Train LoRA adapters of this rank instead.")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training data.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Texts per batch.")] = 8,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-4,
    balance: Annotated[
        bool, typer.Option("--balance", help="Downsample to the smallest class.")
    ] = False,
    val_fraction: Annotated[float, typer.Option(help="Share held out for validation.")] = 0.1,
    test_fraction: Annotated[float, typer.Option(help="Share held out for testing.")] = 0.2,
    max_length: Annotated[int | None, typer.Option(help="Cut texts to this many tokens.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 123,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    force: Force = False,
) -> None:
    """Turn a language model into a text classifier (the book's chapter 6)."""
    config = ClassifyConfig(
        data=str(data),
        base_run=str(run) if run else None,
        gpt2_weights=str(gpt2) if gpt2 else None,
        val_data=str(val_data) if val_data else None,
        test_data=str(test_data) if test_data else None,
        out_dir=str(out),
        train=train,
        lora_rank=lora_rank,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        balance=balance,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        max_length=max_length,
        seed=seed,
        device=device,
    )
    result = finetune_classifier(config, force=force, reporter=EpochReporter())
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
def finetune_instruct(
    data: Annotated[
        Path, typer.Option(help="JSON or JSONL records: instruction, input (optional), output.")
    ],
    run: BaseRun = None,
    gpt2: Gpt2Weights = None,
    out: Out = Path("runs/instruct"),
    epochs: Annotated[int, typer.Option(help="Passes over the training data.")] = 3,
    batch_size: Annotated[int, typer.Option(help="Examples per batch.")] = 8,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-4,
    mask_prompt: Annotated[
        bool, typer.Option("--mask-prompt", help="Train on the responses only.")
    ] = False,
    max_length: Annotated[
        int | None, typer.Option(help="Truncate examples to this many tokens.")
    ] = None,
    lora_rank: Annotated[
        int | None, typer.Option(help="Train LoRA adapters of this rank instead.")
    ] = None,
    val_fraction: Annotated[float, typer.Option(help="Share held out for validation.")] = 0.1,
    test_fraction: Annotated[float, typer.Option(help="Share held out for testing.")] = 0.1,
    max_new_tokens: Annotated[int, typer.Option(help="Longest test response.")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 123,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    force: Force = False,
) -> None:
    """Teach a model to follow instructions in the Alpaca format (the book's chapter 7)."""
    config = InstructConfig(
        data=str(data),
        base_run=str(run) if run else None,
        gpt2_weights=str(gpt2) if gpt2 else None,
        out_dir=str(out),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        mask_prompt=mask_prompt,
        max_length=max_length,
        lora_rank=lora_rank,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        max_new_tokens=max_new_tokens,
        seed=seed,
        device=device,
    )
    result = finetune_instructions(config, force=force, reporter=EpochReporter())
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


@friendly_errors
def classify_command(
    text: Annotated[str, typer.Argument(help="The text to classify.")],
    run: Annotated[
        Path, typer.Option("--run", help="A classifier run (from slm-cli finetune classify).")
    ],
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
) -> None:
    """Label a text with a fine-tuned classifier and show the class probabilities."""
    probabilities = classify(run, [text], device=resolve_device(device))[0]
    best = max(probabilities, key=probabilities.get)
    console.print(f"[bold]{best}[/bold]", highlight=False)
    table = Table(show_header=True)
    table.add_column("label")
    table.add_column("probability", justify="right")
    for label, probability in sorted(probabilities.items(), key=lambda item: -item[1]):
        table.add_row(label, f"{probability:.1%}")
    console.print(table)
