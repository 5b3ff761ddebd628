"""Several processes from one call: `config.devices` (`slm-cli train --devices 2`).

Where it sits: the training functions (`train`, `finetune_classifier`,
`finetune_instructions`) are decorated with `on_devices`. With `devices > 1`
the call goes to `launch`, which starts that many processes through
PyTorch's elastic launcher (the library under torchrun: gloo on CPUs, NCCL on
GPUs). Each process calls the same function again; it then finds the
environment torchrun would have set, so `runtime.Distributed` and the engine
run exactly as under torchrun, and the result equals one process with
`devices` times the gradient accumulation.

What torchrun leaves to the caller, done here:
- the reporter stays in the calling process: rank 0 sends its events (and its
  warnings) through a queue, so a terminal or a notebook sees one stream;
- a worker's error comes back as the same exception (a `ConfigError` is a
  `ConfigError`), raised here, so the CLI prints its usual one line;
- Ctrl-C: the workers note it and stop together at the next step
  (`runtime.Interrupts`); the calling process passes a SIGINT sent to it
  alone on to them, then returns rank 0's interrupted result.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .config import ConfigError, LoopConfig
from .naming import command_line_names, naming_flags, setting
from .report import Reporter

F = TypeVar("F", bound=Callable)
# Signals the elastic agent would otherwise take over for good in the calling process.
_AGENT_SIGNALS = ("SIGTERM", "SIGHUP", "SIGQUIT")


def on_devices(function: F) -> F:
    """Decorator for a training function `function(config, ..., reporter=None)`.

    With `config.devices > 1` it runs in that many processes (`launch`);
    inside one of them (or under torchrun) it runs as it is.
    """

    @functools.wraps(function)
    def start(config: LoopConfig, *args: Any, reporter: Reporter | None = None, **kwargs: Any):
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size > 1:  # one of several processes, started by launch or by torchrun
            if config.devices not in (1, world_size):
                raise ConfigError(
                    f"torchrun started {world_size} processes but devices is {config.devices}; "
                    f"under torchrun leave out {setting('devices')}"
                )
            config = config.replace(devices=world_size)  # the run records how it trained
        elif config.devices > 1:
            return launch(start, config, *args, reporter=reporter, **kwargs)
        return function(config, *args, reporter=reporter, **kwargs)

    return start  # type: ignore[return-value]


def launch(
    function: Callable, config: LoopConfig, *args: Any, reporter: Reporter | None = None, **kwargs
) -> Any:
    """`function(config, *args, reporter=..., **kwargs)` in `config.devices` processes.

    Returns rank 0's result; raises the first error any process raised.
    `function` must be importable by name (the processes are spawned).
    """
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    check_devices(config)
    events = multiprocessing.get_context("spawn").SimpleQueue()
    with (
        tempfile.TemporaryDirectory(prefix="slm-launch-") as errors,
        _quiet_agent(),
        _forward_ctrl_c() as interrupted,
        _relay(events, reporter or Reporter()),
    ):
        settings = LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=config.devices,
            run_id=str(uuid.uuid4()),
            rdzv_backend="c10d",
            rdzv_endpoint="localhost:0",  # torchrun --standalone: a free port on this machine
            max_restarts=0,
            signals_to_handle=",".join(_AGENT_SIGNALS),  # SIGINT stays ours
            # Kept, and shown only for a process that died without an error of its own
            # (what gloo logs when a peer leaves is noise beside the cause).
            logs_specs=DefaultLogsSpecs(log_dir=errors, redirects=Std.ERR),
        )
        try:
            work = elastic_launch(settings, _worker)
            results = work(function, config, args, kwargs, events, errors, naming_flags())
        except ChildFailedError as failure:
            raise _first_error(Path(errors), failure, interrupted.is_set()) from None
    return results[0]


def check_devices(config: LoopConfig) -> None:
    """Refuse more processes than there are GPUs (or CPU cores), before starting any."""
    import torch

    devices, device = config.devices, config.device
    if torch.cuda.is_available() and (device == "auto" or device.startswith("cuda")):
        count, what, fix = torch.cuda.device_count(), "GPUs", ""
    elif device == "mps" or (device == "auto" and torch.backends.mps.is_available()):
        raise ConfigError(
            f"{setting('devices', devices)} needs CUDA GPUs or the CPU, not MPS; "
            f"add {setting('device', 'cpu')}, or leave out {setting('devices')}"
        )
    else:
        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        count, what = len(cores) if cores else os.cpu_count() or 1, "CPU cores"
        fix = " (each process trains on the CPU)"
    if devices > count:
        raise ConfigError(
            f"{setting('devices', devices)} asks for {devices} processes, but this machine has "
            f"{count} {what}{fix}; use {setting('devices', count)} or fewer"
        )


# ------------------------------------------------------------ in the workers
def _worker(function, config, args, kwargs, events, errors, flags: bool) -> Any:
    """One process: report through the queue (rank 0), keep an error for the caller."""
    import torch

    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if "OMP_NUM_THREADS" not in os.environ:  # share the cores, as torchrun does
        torch.set_num_threads(max(1, torch.get_num_threads() // world_size))
    if rank == 0:
        warnings.showwarning = functools.partial(_send_warning, events)
    else:
        warnings.simplefilter("ignore")  # rank 0 reports
    reporter = _Forward(events) if rank == 0 else None
    try:
        with command_line_names(flags):  # messages spelled as the caller's were
            result = function(config, *args, reporter=reporter, **kwargs)
    except KeyboardInterrupt:  # Ctrl-C before training started: nothing to save
        sys.exit(130)
    except Exception as error:
        _keep_error(Path(errors), rank, error)
        sys.exit(1)
    return result if rank == 0 else None


class _Forward(Reporter):
    """Rank 0's reporter: each event goes to the calling process's reporter."""

    def __init__(self, events) -> None:
        self.events = events

    def start(self, info: dict[str, Any]) -> None:
        self.events.put(("start", (info,)))

    def step(self, record: dict[str, Any]) -> None:
        self.events.put(("step", (record,)))

    def evaluation(self, record: dict[str, Any], sample: str | None) -> None:
        self.events.put(("evaluation", (record, sample)))

    def message(self, text: str) -> None:
        self.events.put(("message", (text,)))

    def finish(self, summary: dict[str, Any]) -> None:
        self.events.put(("finish", (summary,)))


def _send_warning(events, message, category, *where, **more) -> None:
    events.put(("warning", (str(message), category)))


def _keep_error(folder: Path, rank: int, error: Exception) -> None:
    """Pickle the error under a name that sorts causes first: an error raised
    inside a collective means another process left the group (its own error is
    the cause, and it may be recorded later, after that process's tear-down)."""
    trace = "".join(traceback.format_exception(error))
    try:
        data = pickle.dumps((error, trace))
    except Exception:  # an exception that does not pickle: keep its text
        data = pickle.dumps((RuntimeError(f"{type(error).__name__}: {error}"), trace))
    innermost = error.__traceback__
    while innermost is not None and innermost.tb_next is not None:
        innermost = innermost.tb_next
    where = innermost.tb_frame.f_code.co_filename if innermost else ""
    consequence = int(f"torch{os.sep}distributed" in where)
    name = f"{consequence}-{time.monotonic_ns():020d}-{rank}"  # one clock for the machine
    (folder / f"{name}.tmp").write_bytes(data)
    (folder / f"{name}.tmp").rename(folder / f"{name}.error")


# ------------------------------------------------------- in the calling process
def _first_error(folder: Path, failure, interrupted: bool) -> BaseException:
    """The exception to raise for a failed launch: the first worker's own error."""
    kept = sorted(folder.glob("*.error"))
    if kept:
        error, trace = pickle.loads(kept[0].read_bytes())
        if hasattr(error, "add_note"):
            error.add_note(f"raised in training process {kept[0].stem.split('-')[2]}:\n{trace}")
        return error
    if interrupted:
        return KeyboardInterrupt()
    from .task import TrainingError

    rank, process = failure.get_first_failure()
    code = process.exitcode
    ended = f"signal {process.signal_name()}" if code < 0 else f"exit code {code}"
    logs = sorted(folder.glob(f"**/attempt_*/{rank}/stderr.log"))
    lines = logs[0].read_text(errors="replace").splitlines() if logs else []
    said = f" after printing {lines[-1].strip()!r}" if lines else ""
    return TrainingError(
        f"training process {rank} ended with {ended}{said}, and the others were stopped; "
        f"run it again, or with {setting('devices', 1)} to see the error in one process"
    )


@contextlib.contextmanager
def _relay(events, reporter: Reporter) -> Iterator[None]:
    """Hand rank 0's events to `reporter` on a thread, until the launch is over."""

    failed: list[Exception] = []

    def relay() -> None:
        while (event := events.get()) is not None:
            name, args = event
            try:
                if name == "warning":
                    warnings.warn(args[0], args[1], stacklevel=1)
                elif not failed:  # after a reporter's error, drain: rank 0 must never block
                    getattr(reporter, name)(*args)
            except Exception as error:
                failed.append(error)

    thread = threading.Thread(target=relay, name="slm-reporter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        events.put(None)
        thread.join()
    if failed:
        raise failed[0]


@contextlib.contextmanager
def _forward_ctrl_c() -> Iterator[threading.Event]:
    """SIGINT here goes on to the workers (a terminal sends it to all; `kill -INT` to us
    alone). The agent's own handlers for the other signals are undone afterwards."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def forward(signum, frame) -> None:
        interrupted.set()
        for child in multiprocessing.active_children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGINT)

    names = ("SIGINT", *_AGENT_SIGNALS)
    saved = {name: signal.getsignal(getattr(signal, name)) for name in names}
    signal.signal(signal.SIGINT, forward)
    try:
        yield interrupted
    finally:
        for name, handler in saved.items():
            signal.signal(getattr(signal, name), handler)


@contextlib.contextmanager
def _quiet_agent() -> Iterator[None]:
    """The agent logs each start and stop; slm reports what matters itself. Its
    records stop at a handler that drops them (its loggers set their own levels)."""
    names = ("torch.distributed.elastic", "torch.distributed.launcher", "torch.multiprocessing")
    loggers = [logging.getLogger(name) for name in names]
    drop = logging.NullHandler()
    saved = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(drop)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in zip(loggers, saved, strict=True):
            logger.removeHandler(drop)
            logger.propagate = propagate
