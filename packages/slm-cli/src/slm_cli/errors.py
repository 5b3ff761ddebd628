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
from slm_train import (
    CheckpointError,
    ConfigError,
    CorpusError,
    DataTooSmallError,
    RunError,
    TrainingError,
)
from slm_train.download import DownloadError

EXPECTED = (
    CheckpointError,
    ConfigError,
    CorpusError,
    DataTooSmallError,
    DownloadError,
    RunError,
    TrainingError,
    ValueError,
    FileNotFoundError,
    ModuleNotFoundError,
    PermissionError,
)

error_console = Console(stderr=True)
debug_mode = {"on": False}

F = TypeVar("F", bound=Callable)


def fail(message: str) -> typer.Exit:
    error_console.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def friendly_errors(command: F) -> F:
    """Turn the libraries' deliberate errors into one red line (unless --debug)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EXPECTED as error:
            if debug_mode["on"]:
                raise
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise fail(message) from None

    return wrapper  # type: ignore[return-value]
