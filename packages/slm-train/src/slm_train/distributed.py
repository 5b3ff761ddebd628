"""Multi-process training with PyTorch DistributedDataParallel, when run under torchrun.

`torchrun --nproc_per_node N script` starts N processes and tells each its
RANK, LOCAL_RANK and WORLD_SIZE through environment variables. Each process
holds a full copy of the model and trains on its own batches; DDP averages the
gradients across processes during backward, so every copy takes the same step.
Without those variables everything here is a no-op and training runs in one
process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Distributed:
    enabled: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def from_environment(cls) -> Distributed:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        world_size = int(os.environ["WORLD_SIZE"])
        if torch.cuda.is_available():
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
            backend = "nccl"
        else:
            device, backend = torch.device("cpu"), "gloo"
        if not torch_dist.is_initialized():
            torch_dist.init_process_group(backend=backend)
        return cls(True, rank, local_rank, world_size, device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

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

    def agree_to_stop(self, wants_to_stop: bool) -> bool:
        """Stop when any process wants to (time budgets differ slightly between processes)."""
        if not self.enabled:
            return wants_to_stop
        flag = torch.tensor([1.0 if wants_to_stop else 0.0], device=self.device)
        torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MAX)
        return bool(flag.item())

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
