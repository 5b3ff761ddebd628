"""How a message names a setting: `--resume` on the command line, `resume=True` in Python.

The libraries' errors say how to fix what went wrong, and the fix is usually a
setting. The same error reaches people through `slm-cli` and through notebooks,
so a message names a setting with `setting(...)`: Python's spelling by default,
the command line's flag while `command_line_names()` is active (the CLI wraps
each command in it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

# Flags whose short spelling is the one people know (nanoGPT, the book); slm_cli's
# generated options accept both, and messages use these.
SHORT_FLAGS = {
    "learning_rate": "--lr",
    "grad_accum_steps": "--grad-accum",
    "out_dir": "--out",
    "base_run": "--run",
    "gpt2_weights": "--gpt2",
}

_command_line = ContextVar("slm_command_line_names", default=False)


def setting(name: str, value: Any = None) -> str:
    """`setting("out_dir")` -> "--out" or "out_dir"; `setting("resume", True)` -> "--resume"
    or "resume=True"; `setting("device", "cpu")` -> "--device cpu" or "device='cpu'"."""
    if not _command_line.get():
        return name if value is None else f"{name}={value!r}"
    flag = SHORT_FLAGS.get(name, "--" + name.replace("_", "-"))
    if value is None or value is True:
        return flag
    if isinstance(value, dict):
        return " ".join(f"{flag} {key}={item}" for key, item in value.items())
    return f"{flag} {value}"


def naming_flags() -> bool:
    """Whether `setting` spells flags here (launch.py hands this to its processes)."""
    return _command_line.get()


@contextlib.contextmanager
def command_line_names(on: bool = True) -> Iterator[None]:
    """Within this block, `setting` spells settings as command-line flags (if `on`)."""
    token = _command_line.set(on)
    try:
        yield
    finally:
        _command_line.reset(token)
