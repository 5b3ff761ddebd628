"""`slm-cli tokenizer train | encode | decode`: see what a tokenizer does to text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text
from slm_tokenizer import GPT2_PATTERN, GPT4_PATTERN, RESERVED_TOKENS, BPETokenizer, gpt2

from .errors import friendly_errors

console = Console()
app = typer.Typer(
    help="Train a BPE tokenizer, or look at how one splits text.", no_args_is_help=True
)

PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}
# Background colours that alternate between neighbouring tokens, so boundaries show.
COLOURS = ["on dark_blue", "on dark_green", "on dark_red", "on purple4", "on dark_orange3"]

TokenizerOption = Annotated[
    str | None,
    typer.Option(
        "--tokenizer",
        "-t",
        help="gpt2, a tokenizer .json file, or a run directory (its tokenizer). "
        "Default: the latest run's tokenizer under runs/, else gpt2.",
        show_default=False,
    ),
]


def load_tokenizer(spec: str | None) -> BPETokenizer:
    """The tokenizer `spec` names; with none, the latest run's (what `generate` would use)."""
    if spec is None:
        from slm_train import RunError, latest_run

        try:
            run = latest_run()
        except RunError:
            spec = "gpt2"
        else:
            console.print(f"[dim]tokenizer of {run.path}[/dim]", highlight=False)
            return run.tokenizer()
    if spec == "gpt2":
        return gpt2()
    path = Path(spec)
    if path.is_dir():
        from slm_train import Run

        return Run(path).tokenizer()
    if path.is_file():
        return BPETokenizer.load(path)
    raise ValueError(f"tokenizer {spec!r} is not gpt2, a tokenizer file or a run directory")


@app.command(
    "train",
    epilog="Example:\n\n  slm-cli tokenizer train --data builtin:bbe --vocab-size 4096",
)
@friendly_errors
def train_tokenizer(
    data: Annotated[
        str, typer.Option(help="builtin:bbe, tinystories, hf:OWNER/NAME, a file, folder or glob.")
    ] = "builtin:bbe",
    vocab_size: Annotated[
        int, typer.Option(help="Tokens in all: 256 bytes + merges + special tokens.")
    ] = 4096,
    out: Annotated[Path, typer.Option(help="Where to save it (then: --tokenizer PATH).")] = Path(
        "tokenizer.json"
    ),
    pattern: Annotated[str, typer.Option(help="Pre-tokenization pattern: gpt2 or gpt4.")] = "gpt2",
) -> None:
    """Learn a byte-level BPE tokenizer from a corpus."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}; use gpt2 or gpt4")
    from slm_train import resolve

    corpus = resolve(data)
    with console.status(f"training a {vocab_size:,}-token tokenizer on {data}"):
        documents = corpus.documents("train") if corpus.shipped_splits else corpus.documents()
        tok = BPETokenizer.train(documents, vocab_size, RESERVED_TOKENS, PATTERNS[pattern])
    tok.save(out)
    longest = sorted(tok.merges, key=lambda m: len(m[0] + m[1]))[-5:]
    examples = ", ".join(repr((a + b).decode("utf-8", "replace")) for a, b in longest)
    console.print(
        f"saved {out}: {tok.vocab_size:,} tokens, {len(tok.merges):,} merges; longest: {examples}"
    )
    console.print(f"use it with: slm-cli train --tokenizer {out}", highlight=False)


@app.command(
    "encode", epilog="Example:\n\n  slm-cli tokenizer encode 'Hello world, tokenizers!' -t gpt2"
)
@friendly_errors
def encode(
    text: Annotated[str, typer.Argument(help="Text to encode.")],
    tokenizer: TokenizerOption = None,
    special: Annotated[
        bool,
        typer.Option(
            "--special",
            help="Read <|endoftext|> in the text as the special token. Without it, special "
            "tokens are plain text, as in generate and chat.",
        ),
    ] = False,
) -> None:
    """Show the tokens of a text, coloured by boundary, and their ids."""
    tok = load_tokenizer(tokenizer)
    ids = (
        tok.encode(text, allowed_special="all")
        if special
        else tok.encode(text, disallowed_special=())
    )
    shown = Text()
    for position, token in enumerate(ids):
        piece = tok.decode_bytes([token]).decode("utf-8", "replace")
        shown.append(piece.replace("\n", "\\n"), style=COLOURS[position % len(COLOURS)])
    console.print(shown)
    console.print(f"{ids}", highlight=False)
    console.print(f"[dim]{len(ids)} tokens for {len(text)} characters[/dim]")


@app.command("decode", epilog="Example:\n\n  slm-cli tokenizer decode 15496 995 -t gpt2")
@friendly_errors
def decode(
    ids: Annotated[list[int], typer.Argument(help="Token ids.")],
    tokenizer: TokenizerOption = None,
) -> None:
    """Turn token ids back into text."""
    console.print(load_tokenizer(tokenizer).decode(ids), markup=False, highlight=False)
