"""One red line per problem, instead of a traceback.

Every error the libraries raise on purpose says what went wrong and how to fix
it; the command line only has to print that message. Anything else is a bug,
and `--debug` shows its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from slm_train.naming import command_line_names

error_console = Console(stderr=True)
debug_mode = {"on": False}

F = TypeVar("F", bound=Callable)


@functools.cache
def expected_errors() -> tuple[type[BaseException], ...]:
    """The errors the libraries raise on purpose (imported on first failure, not at start-up)."""
    import slm_train

    return (
        slm_train.CheckpointError,
        slm_train.ConfigError,
        slm_train.CorpusError,
        slm_train.DataTooSmallError,
        slm_train.RunError,
        slm_train.TrainingError,
        ValueError,
        FileNotFoundError,
        ModuleNotFoundError,
        PermissionError,
    )


def fail(message: str) -> typer.Exit:
    # escape: a message is text, so "pip install 'slm-cli[eval]'" keeps its brackets
    error_console.print(
        f"[bold red]error:[/bold red] {escape(str(message))}", highlight=False, soft_wrap=True
    )
    return typer.Exit(code=1)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (data repaired, odd settings) as one yellow line, without the source line."""
    error_console.print(
        f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False, soft_wrap=True
    )


def friendly_errors(command: F) -> F:
    """Turn the libraries' deliberate errors into one red line (unless --debug)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with command_line_names():  # errors name --flags, not Python's keywords
                return command(*args, **kwargs)
        except Exception as error:
            if debug_mode["on"] or not isinstance(error, expected_errors()):
                raise
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise fail(message) from None

    return wrapper  # type: ignore[return-value]
