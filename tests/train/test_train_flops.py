"""FLOP counting and MFU on CPUs: the measured peak (peak.py) and what a step computes
(metrics.py), each against a by-hand count or torch's own FLOP counter."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from helpers import quick_config
from slm_model import GPTModel, get_gpt_config
from slm_train import peak, train
from slm_train.metrics import flops_per_token, optimizer_flops_per_step
from slm_train.muon import Muon, orthogonalize
from torch.utils.flop_counter import FlopCounterMode


def test_probe_reports_the_flops_of_the_matmul_it_times(monkeypatch):
    """With a clock that ticks one second per reading, every matmul takes one second,
    so the probe must report exactly one (n x n) @ (n x n) matmul's 2 n^3 FLOPs."""
    clock = itertools.count()
    monkeypatch.setattr(peak.time, "perf_counter", lambda: float(next(clock)))
    shapes = []
    real_mm = torch.mm
    monkeypatch.setattr(peak.torch, "mm", lambda a, b: shapes.append(a.shape) or real_mm(a, b))
    assert peak.probe(torch.float32, size=48, seconds=0.5) == 2 * 48**3
    assert set(shapes) == {(48, 48)}


def test_peak_is_measured_once_and_cached(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(peak, "probe", lambda dtype: calls.append(dtype) or 1.5e11)
    monkeypatch.setattr(peak, "quiet", lambda: True)
    cache = tmp_path / "cache" / "peak.json"
    assert peak.cached_cpu_peak("bf16", cache) == 1.5e11
    assert peak.cached_cpu_peak("bf16", cache) == 1.5e11
    assert calls == [torch.bfloat16]  # the second call read the file
    entry = json.loads(cache.read_text())[peak.cpu_key("bf16")]
    assert entry == {"flops": 1.5e11, "settled": True, "probes": 1}
    assert peak.cached_cpu_peak("fp32", cache) == 1.5e11 and calls[-1] == torch.float32
    assert len(json.loads(cache.read_text())) == 2  # one entry per dtype


def test_a_probe_on_a_busy_machine_is_taken_again_and_the_best_kept(tmp_path, monkeypatch):
    readings = iter([1e10, 5e9, 8e10])
    monkeypatch.setattr(peak, "probe", lambda dtype: next(readings))
    cache = tmp_path / "peak.json"
    monkeypatch.setattr(peak, "quiet", lambda: False)
    assert peak.cached_cpu_peak("fp32", cache) == 1e10
    assert peak.cached_cpu_peak("fp32", cache) == 1e10  # 5e9: busier still
    monkeypatch.setattr(peak, "quiet", lambda: True)
    assert peak.cached_cpu_peak("fp32", cache) == 8e10
    assert peak.cached_cpu_peak("fp32", cache) == 8e10  # settled: read, not measured


def test_a_machine_never_idle_is_probed_a_few_times_only(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(peak, "probe", lambda dtype: calls.append(dtype) or 1e10)
    monkeypatch.setattr(peak, "quiet", lambda: False)
    for _ in range(peak.PROBES + 3):
        assert peak.cached_cpu_peak("fp32", tmp_path / "peak.json") == 1e10
    assert len(calls) == peak.PROBES


@pytest.mark.parametrize(
    "damage", ["{not json", "[1, 2]", '{"%s": "fast"}', '{"%s": {"flops": -1}}', ""]
)
def test_a_damaged_cache_is_measured_again(tmp_path, monkeypatch, damage):
    monkeypatch.setattr(peak, "probe", lambda dtype: 2e11)
    monkeypatch.setattr(peak, "quiet", lambda: True)
    cache = tmp_path / "peak.json"
    cache.write_text(damage.replace("%s", peak.cpu_key("fp32")))
    assert peak.cached_cpu_peak("fp32", cache) == 2e11
    assert json.loads(cache.read_text()) == {
        peak.cpu_key("fp32"): {"flops": 2e11, "settled": True, "probes": 1}
    }


def test_peak_flops_by_device(monkeypatch):
    monkeypatch.setattr(peak, "cached_cpu_peak", lambda precision: {"bf16": 4e11}[precision])
    assert peak.peak_flops(torch.device("cpu"), "bf16") == 4e11
    assert peak.peak_flops(torch.device("meta"), "bf16") is None
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 80GB HBM3")
    assert peak.peak_flops(torch.device("cuda"), "bf16") == 989e12


@pytest.mark.parametrize("preset", ["tiny", "qwen3-tiny"])
def test_flops_per_token_matches_torchs_counter(preset):
    """6N + 12 L w T against torch's FlopCounterMode over one forward and backward:
    the output layer counts though it is tied to the embedding."""
    config = get_gpt_config(preset, block_size=16, dropout=0.0)
    model = GPTModel(config)
    x = torch.randint(0, config.vocab_size, (2, config.block_size))
    with FlopCounterMode(display=False) as counter:
        model(x, x)[1].backward()
    counted = counter.get_total_flops() / x.numel()
    assert config.tie_weights and flops_per_token(model) == pytest.approx(counted, rel=0.01)


def test_newton_schulz_flops_match_torchs_counter():
    """Per step and matrix part: 5 iterations of X X^T, the Gram polynomial and its product."""
    wide, fused = torch.nn.Parameter(torch.randn(6, 10)), torch.nn.Parameter(torch.randn(12, 4))
    optimizer = Muon([{"params": [wide]}, {"params": [fused], "splits": [4, 8]}])
    by_hand = 5 * (4 * 6 * 6 * 10 + 2 * 6**3)  # m = 6, n = 10
    by_hand += 5 * (4 * 4 * 4 * 4 + 2 * 4**3) + 5 * (4 * 4 * 4 * 8 + 2 * 4**3)  # 4x4 and 8x4
    with FlopCounterMode(display=False) as counter:
        for matrix in (wide, *fused.split([4, 8])):
            orthogonalize(matrix.detach())
    assert optimizer_flops_per_step(optimizer) == by_hand == counter.get_total_flops()
    assert optimizer_flops_per_step(torch.optim.AdamW([wide])) == 0


def test_metrics_records_carry_mfu_against_the_cached_peak(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setattr(peak, "probe", lambda dtype: 1e9)
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))  # no peak from other tests
    config = quick_config(tmp_path, corpus_file, max_steps=4, eval_interval=4, warmup_steps=1)
    config = config.replace(optimizer="muon")
    result = train(config)
    steps = [r for r in result.history if r["type"] == "step"]
    assert steps and all(r["mfu"] == pytest.approx(r["flops_per_s"] / 1e9) for r in steps)
    model_only = [r["tokens_per_s"] * flops_per_token_of(result) for r in steps]
    assert all(r["flops_per_s"] > m for r, m in zip(steps, model_only, strict=True))  # + Muon


def flops_per_token_of(result) -> float:
    from slm_train import Run

    run = Run(result.run_dir)
    with torch.device("meta"):
        return flops_per_token(GPTModel(run.model_config))
