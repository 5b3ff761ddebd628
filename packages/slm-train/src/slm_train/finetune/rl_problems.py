"""Where RL's problems come from: the built-in checkable tasks, or a person's own.

RL needs questions and a program that says whether an answer is right. The
built-in tasks (chat/checkable.py) bring both. A person's own task is a file
of problems and a checker, a Python function named by module path:

    problems.jsonl
        {"prompt": "What is 12 * 3?", "answer": 36}
        {"messages": [{"role": "system", ...}, {"role": "user", ...}], "answer": "Paris"}

    mytasks.py
        def check(reply: str, answer) -> bool | float:
            return reply.strip().rstrip(".").endswith(str(answer))

    slm-cli finetune rl --run runs/chat --task problems.jsonl --checker mytasks:check

The checker gets the model's reply as text and the record's `answer` (any
JSON value, passed as it is) and returns True or False, or a reward between 0
and 1 for partial credit; pass@k counts an answer as right when its reward is 1.
`--checker` is `module:function` (the module importable from the current
folder, as `python -m` would find it) or `path/to/file.py:function`.

Held-out problems are one in five, chosen by a hash of the prompt (as the
built-in tasks choose theirs, so the split does not move when lines are added
or reordered), and split in halves for validation and testing.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..chat.checkable import HELD_OUT_SHARE, TASKS, Expected, problems
from ..config import ConfigError
from ..data.records import read_records
from ..data.sources import CorpusError
from ..naming import setting
from .data import prompt_messages

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Problem:
    messages: Messages  # the question, ending with the user's turn
    check: Callable[[str], float]  # a reply -> its reward, 0 to 1


def builtin_parts(names: list[str], count: int, eval_count: int, seed: int) -> dict:
    """`count` training problems of each built-in task, and `eval_count` held-out ones
    each for validation and for testing (disjoint halves of the held-out problems)."""
    parts: dict[str, list[Problem]] = {"train": [], "val": [], "test": []}
    for name in names:
        for held_out, number in ((False, count), (True, 2 * eval_count)):
            drawn = [
                Problem([{"role": "user", "content": p.question}], Expected(name, p.answer))
                for p in problems(TASKS[name], number, seed, held_out=held_out)
            ]
            if held_out:
                parts["val"] += drawn[0::2]
                parts["test"] += drawn[1::2]
            else:
                parts["train"] += drawn
    return parts


# ------------------------------------------------------------------ a person's task
@dataclass(frozen=True)
class Checked:
    """A person's checker bound to one problem's answer; its result becomes a reward."""

    checker: Callable[[str, Any], Any]
    answer: Any
    where: str  # "problems.jsonl:12", for the message when the checker misbehaves

    def __call__(self, reply: str) -> float:
        try:
            result = self.checker(reply, self.answer)
        except Exception as error:  # the person's code: any failure is theirs to fix
            raise ConfigError(
                f"the checker raised {type(error).__name__}: {error} (on the answer to "
                f"{self.where}); make it return False for replies it cannot read"
            ) from None
        if isinstance(result, bool | int | float) and 0 <= result <= 1:
            return float(result)
        raise ConfigError(
            f"the checker returned {result!r} for the answer to {self.where}; "
            "it must return True, False or a reward between 0 and 1"
        )


def file_parts(path: str | Path, checker_spec: str | None) -> dict:
    """A person's problems, split into training, validation and testing."""
    if checker_spec is None:
        raise ConfigError(
            f"a task file needs the function that checks its answers; give "
            f"{setting('checker')} module:function (or path/to/file.py:function)"
        )
    checker = load_checker(checker_spec)
    path = Path(path)
    rows = read_records(path)
    if not rows:
        raise CorpusError(f"{path} has no problems; each line needs 'prompt' (or 'messages') "
                          "and 'answer'")  # fmt: skip
    parts: dict[str, list[Problem]] = {"train": [], "val": [], "test": []}
    held = 0
    for number, record in rows:
        where = f"{path}:{number}"
        messages = _messages(where, record)
        problem = Problem(messages, Checked(checker, record["answer"], where))
        key = json.dumps(messages, sort_keys=True).encode()
        if zlib.crc32(key) % HELD_OUT_SHARE:
            parts["train"].append(problem)
        else:
            parts["test" if held % 2 else "val"].append(problem)
            held += 1
    return parts


def _messages(where: str, record: Any) -> Messages:
    if not isinstance(record, dict) or "answer" not in record:
        raise CorpusError(f"{where}: each problem needs 'prompt' (or 'messages') and 'answer'")
    return prompt_messages(where, record)


def load_checker(spec: str) -> Callable[[str, Any], Any]:
    """The function `module:function` or `path/to/file.py:function` names."""
    where, _, name = spec.rpartition(":")
    if not where or not name.isidentifier():
        raise ConfigError(
            f"{setting('checker')} {spec!r} must name a function as module:function "
            "or path/to/file.py:function"
        )
    module = _import(where, spec)
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"{where} has no function {name!r}; check the name in {spec!r}")
    return function


def _import(where: str, spec: str):
    """The checker's module: a file by its path, or a module by name from this folder."""
    try:
        if where.endswith(".py"):
            if not Path(where).is_file():
                raise ConfigError(f"checker file {where} does not exist")
            module_spec = importlib.util.spec_from_file_location(Path(where).stem, where)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))  # as `python -m` finds modules
        return importlib.import_module(where)
    except ConfigError:
        raise
    except Exception as error:  # importing runs the person's code
        raise ConfigError(
            f"cannot import the checker {spec!r} ({type(error).__name__}: {error}); give a "
            "module importable from this folder, or path/to/file.py:function"
        ) from None
