"""The CUDA paths, checked on a CPU with torch.cuda mocked: none has run on a GPU yet.

The precision chosen, fused AdamW only on CUDA, pinned non-blocking batch copies,
and NCCL for several processes on GPUs (gloo on CPUs). fp16 with its gradient
scaler is exercised for real on the CPU in test_train_engine.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as torch_dist
from slm_model import GPTModel, get_gpt_config
from slm_train import TrainConfig, make_optimizer, muon, resolve_precision, runtime
from slm_train.runtime import Distributed, to_device

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.mark.parametrize(
    ("device", "bf16_gpu", "native_cpu", "expected"),
    [
        (CUDA, True, False, "bf16"),  # Ampere and later
        (CUDA, False, True, "fp16"),  # older GPUs: fp16 with the gradient scaler
        (CPU, False, True, "bf16"),  # AVX512-BF16 or AMX
        (CPU, True, False, "fp32"),
        (torch.device("mps"), True, True, "fp32"),
    ],
)
def test_auto_precision(monkeypatch, device, bf16_gpu, native_cpu, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_gpu)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native_cpu)
    assert resolve_precision("auto", device) == expected
    assert resolve_precision("fp32", device) == "fp32"  # a choice given is kept


def test_newton_schulz_runs_in_bf16_where_it_is_native(monkeypatch):
    monkeypatch.setattr(muon, "cpu_has_native_bf16", lambda: False)
    assert muon.ns_dtype(CUDA) == torch.bfloat16 and muon.ns_dtype(CPU) == torch.float32
    monkeypatch.setattr(muon, "cpu_has_native_bf16", lambda: True)
    assert muon.ns_dtype(CPU) == torch.bfloat16


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_fused_adamw_only_on_cuda(monkeypatch, optimizer):
    made = []
    real = torch.optim.AdamW

    def spy(params, **kwargs):
        made.append(kwargs["fused"])
        return real(params, **{**kwargs, "fused": False})  # the CPU cannot run the fused one

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    model = GPTModel(get_gpt_config("tiny"))
    config = TrainConfig(optimizer=optimizer)
    make_optimizer(model, config, CUDA)
    make_optimizer(model, config, CPU)
    assert made == [True, False]


class Recorder:
    """A tensor's stand-in that records how it is moved."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def pin_memory(self):
        self.calls.append(("pin_memory",))
        return self

    def to(self, device, non_blocking=False):
        self.calls.append(("to", device, non_blocking))
        return self


def test_batches_go_to_a_gpu_pinned_and_non_blocking():
    batch = Recorder()
    to_device(batch, CUDA)
    assert batch.calls == [("pin_memory",), ("to", CUDA, True)]
    batch = Recorder()
    to_device(batch, CPU)
    assert batch.calls == [("to", CPU, False)]


@pytest.mark.parametrize(
    ("device_name", "gpus", "backend", "device"),
    [
        ("auto", True, "nccl", torch.device("cuda", 1)),
        ("cuda", True, "nccl", torch.device("cuda", 1)),
        ("cpu", True, "gloo", CPU),  # --device cpu on a GPU machine
        ("auto", False, "gloo", CPU),
    ],
)
def test_devices_use_nccl_on_gpus_and_gloo_on_cpus(monkeypatch, device_name, gpus, backend, device):
    """What `--devices 2` starts in each process (launch.py sets torchrun's variables)."""
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    chosen, current = [], []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.setattr(torch_dist, "is_initialized", lambda: False)
    monkeypatch.setattr(torch_dist, "init_process_group", lambda backend: chosen.append(backend))
    dist = Distributed.from_environment(device_name)
    assert chosen == [backend] and dist.device == device and dist.world_size == 2
    assert current == ([device] if backend == "nccl" else [])
    assert dist.resolve_device("cpu") == device  # torchrun's assignment wins
