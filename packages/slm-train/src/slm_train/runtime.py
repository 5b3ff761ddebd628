"""Where and how the numbers are computed: device, precision, and several processes.

Device and precision: `resolve_device("auto")` picks CUDA, then MPS, then the
CPU; `resolve_precision("auto")` picks bf16 where the hardware does it natively,
fp16 (with a gradient scaler) on older GPUs, fp32 elsewhere; `autocast` runs the
matmuls in that precision while weights and the optimizer stay in fp32.

Multi-process training with PyTorch DistributedDataParallel, when run with
`--devices N` (launch.py) or under torchrun:

`torchrun --nproc_per_node N script` starts N processes and tells each its
RANK, LOCAL_RANK and WORLD_SIZE through environment variables (launch.py sets
the same ones). Each process holds a full copy of the model and trains on its
own batches; DDP averages the gradients across processes during backward, so
every copy takes the same step. Without those variables everything here is a
no-op and training runs in one process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel

from .config import ConfigError
from .naming import setting


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} was asked for, but PyTorch sees no CUDA GPU; use "
            f"{setting('device', 'cpu')}"
        )
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """Pick a concrete precision for "auto".

    bf16 keeps fp32's range, so it needs no loss scaling; use it where the
    hardware computes it natively: most CUDA GPUs since Ampere, and CPUs with
    AVX512-BF16 or AMX (where it doubled training speed in bench/train.py).
    Older GPUs get fp16 with a gradient scaler; everything else fp32.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


@functools.cache
def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX in /proc/cpuinfo's flags (read once: Muon asks every step)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            flags = next((line for line in file if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision: matmuls in bf16/fp16, weights and the optimizer in fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch onto the device the model is on.

    To a GPU the copy is from pinned (page-locked) memory and non-blocking, so
    it overlaps the GPU's work on the previous micro-batch: from ordinary
    memory a "non-blocking" copy is staged and waited for all the same.
    On the CPU it is the tensor itself.
    """
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


@dataclass
class Distributed:
    enabled: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def from_environment(cls, device_name: str = "auto") -> Distributed:
        """One process of several (NCCL on GPUs, gloo on the CPU: `device_name` cpu
        chooses it on a GPU machine), or a no-op without torchrun's variables."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        world_size = int(os.environ["WORLD_SIZE"])
        wants_cuda = device_name == "auto" or device_name.startswith("cuda")
        if torch.cuda.is_available() and wants_cuda:
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
            backend = "nccl"
        else:
            device, backend = torch.device("cpu"), "gloo"
        if not torch_dist.is_initialized():
            _import_before_any_group()
            torch_dist.init_process_group(backend=backend)
        return cls(True, rank, local_rank, world_size, device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def resolve_device(self, name: str) -> torch.device:
        """The device of this process: torchrun's assignment, or `name` resolved."""
        return self.device if self.enabled else resolve_device(name)

    def wrap(self, model: torch.nn.Module) -> DistributedDataParallel:
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The average of `value` over all processes (for logging the loss of the whole batch)."""
        if not self.enabled:
            return value
        value = value.detach().clone()
        torch_dist.all_reduce(value, op=torch_dist.ReduceOp.SUM)
        return value / self.world_size

    def sum(self, count: int) -> int:
        """The sum of `count` over all processes (a step's targets, to weigh the loss by)."""
        if not self.enabled:
            return count
        value = torch.tensor(count, device=self.device)
        torch_dist.all_reduce(value, op=torch_dist.ReduceOp.SUM)
        return int(value.item())

    def agree(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true everywhere when it is true in any process, in one all-reduce:
        whether to stop (time budgets differ slightly between processes) or was
        interrupted, so that every process leaves the loop at the same step."""
        if not self.enabled:
            return flags
        values = torch.tensor([float(flag) for flag in flags], device=self.device)
        torch_dist.all_reduce(values, op=torch_dist.ReduceOp.MAX)
        return tuple(bool(value) for value in values.tolist())

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's `value` on every process."""
        if not self.enabled:
            return value
        holder = [value]
        torch_dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def close(self) -> None:
        if self.enabled and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def _import_before_any_group() -> None:
    """Import torch.distributed.nn.functional while no process group exists.

    Its ten functions take `group=group.WORLD` as a default argument, evaluated
    on import, and DistributedDataParallel imports the module. Imported after
    init_process_group, their defaults hold the group for the rest of the
    process: destroy_process_group can no longer join gloo's threads, which
    are still running when the process exits, and a peer that exits at that
    moment made rank 0 abort with "terminate called without an active
    exception" (a flaky test, and the end of some two-process runs).
    """
    import torch.distributed.nn.functional  # noqa: F401


class Interrupts:
    """Ctrl-C during DDP training: noted here, acted on by all processes at the next step.

    A KeyboardInterrupt raised in one process in the middle of a step would
    leave the others waiting in a collective that never completes. So while
    several processes train, SIGINT only sets `requested`, and the engine
    agrees on it with the others (`Distributed.agree`) before each step. In
    one process (or outside the main thread) nothing changes: Ctrl-C raises
    KeyboardInterrupt at once, as it always has.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False

    def __enter__(self) -> Interrupts:
        if self.enabled:
            self.previous = signal.signal(signal.SIGINT, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self.previous)

    def _note(self, signum: int, frame: Any) -> None:
        self.requested = True
