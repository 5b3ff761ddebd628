"""Command-line options made from the configuration dataclasses.

`config_options(TrainConfig)` gives a command one `--option` per field, with
the field's help text and default, so a new field is on the command line the
moment it exists in the library (litgpt makes its CLI from signatures in the
same spirit). Every option defaults to "not given"; the command receives only
the ones given, as `overrides`, so a resumed run keeps its own settings except
what the command line changes.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer
from slm_train.naming import SHORT_FLAGS

# Options that several commands share, written once.
CheckpointOption = Annotated[
    str,
    typer.Option(
        "--checkpoint", help="Which weights: [bold]best[/bold] (lowest validation loss) or last."
    ),
]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")]
QUANTIZE_HELP = (
    "Weight-only quantization for inference: none, int8 or int4 (bf16 activations, "
    "torchao: uv sync --extra quantize)."
)
QuantizeOption = Annotated[str, typer.Option(help=QUANTIZE_HELP)]
SystemOption = Annotated[
    str | None,
    typer.Option(help="A chat run's system prompt, the conversation's first turn."),
]


def max_new_tokens_option(help: str) -> Any:
    """One name for "how many tokens to generate" on every command (max_new_tokens, as in
    transformers and litgpt), with --max-tokens (OpenAI's and the REPL's word) as an alias."""
    return typer.Option("--max-new-tokens", "--max-tokens", min=1, help=help)


# Short names people know from nanoGPT, the book and the first slm releases; the
# libraries' messages use them too (slm_train.naming).
ALIASES = {name: [flag] for name, flag in SHORT_FLAGS.items()}


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
    """['n_layer=6', 'bias=false'] -> {'n_layer': 6, 'bias': False}: numbers, booleans, text."""
    overrides: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE, e.g. --model n_layer=6")
        overrides[key] = _scalar(value)
    return overrides


def _scalar(value: str) -> object:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value  # a string setting, e.g. norm=rmsnorm


def _option(field: dataclasses.Field, hint: Any, panel: str) -> tuple[Any, Callable]:
    """The option's annotation and a converter from what typer parsed to the field's value."""
    names = [f"--{field.name.replace('_', '-')}", *ALIASES.get(field.name, [])]
    default = field.default_factory() if callable(field.default_factory) else field.default
    shown = field.metadata.get("shown") or ("" if default in (None, "", {}) else str(default))
    shown = f" [dim]\\[default: {shown}][/dim]" if shown else ""
    help_text = field.metadata.get("help", "") + shown
    convert: Callable = lambda value: value  # noqa: E731
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
    base = typing.get_args(hint)[0] if optional else hint
    if field.name == "max_time":
        base, convert = str, parse_duration
    elif base is bool:
        names = [f"{names[0]}/--no-{names[0][2:]}"]
    elif typing.get_origin(base) is dict:
        base, convert = list[str], parse_model_overrides
    info = typer.Option(*names, help=help_text, show_default=False, rich_help_panel=panel)
    return Annotated[base | None, info], convert


def config_options(config_class: type, *, skip: tuple[str, ...] = (), panel: str = "Settings"):
    """Decorator: add an option per field of `config_class`; pass the given ones as `overrides`."""
    hints = typing.get_type_hints(config_class)
    fields = [f for f in dataclasses.fields(config_class) if f.name not in skip]
    options = {f.name: _option(f, hints[f.name], panel) for f in fields}

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "overrides"]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
            for name, (hint, _) in options.items()
        ]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in options}
            overrides = {
                name: options[name][1](value) for name, value in given.items() if value is not None
            }
            return command(**kwargs, overrides=overrides)

        wrapper.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
        return wrapper

    return decorate
