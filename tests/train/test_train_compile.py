"""`--compile auto|on|off`: when auto compiles, what the run records, and that evaluation
and sampling never recompile the training module."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from helpers import quick_config
from slm_train import ConfigError, Reporter, TrainConfig, compilation, train
from torch._dynamo.testing import CompileCounter

CPU = torch.device("cpu")


@pytest.fixture
def with_compiler(monkeypatch):
    monkeypatch.setattr(compilation, "compiler_missing", lambda device: None)


def decide(peak: float | None = 1e11, **budget) -> tuple[str, str]:
    config = TrainConfig(**{"max_steps": None, "precision": "bf16", **budget})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compilation, "peak_flops", lambda device, precision: peak)
        return compilation.resolve_compile(config, CPU, 1e7, 4096)


def test_break_even_by_hand():
    # (T - 40) x 1.39 = 1.1 T  <=>  T = 40 x 1.39 / 0.29
    assert compilation.break_even_seconds() == pytest.approx(191.72, abs=0.01)
    assert compilation.break_even_seconds(1.0) == pytest.approx(40 * 1.39 / 0.39)


def test_auto_compiles_only_budgets_that_repay_it(with_compiler):
    assert decide(max_time=8 * 60)[0] == "on"  # the default 8 minutes
    assert decide(max_time=60)[0] == "off"
    # a step: 1e7 FLOPs x 4096 tokens at 28 % of 1e11 FLOP/s = 1.463 s; 150 steps ~ 219 s
    assert decide(max_steps=150) == ("on", "compiled: ~219 s repays ~40 s of compiling")
    assert decide(max_steps=120)[0] == "off"  # ~176 s
    assert decide(max_tokens=150 * 4096)[0] == "on"
    assert decide(max_steps=100, max_time=3600)[0] == "off"  # whichever budget ends first
    off, why = decide(peak=None, max_steps=10**6)
    assert off == "off" and "--max-time" in why  # no peak known: cannot estimate steps


def test_explicit_settings_are_obeyed():
    assert decide(max_time=1, compile="on")[0] == "on"
    assert decide(max_time=3600, compile="off")[0] == "off"


def test_auto_stays_eager_without_a_compiler(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compilation.shutil, "which", lambda name: None)
    setting, why = decide(max_time=3600)
    assert setting == "off" and "no C++ compiler" in why and "CXX" in why
    monkeypatch.setattr(compilation.platform, "system", lambda: "Windows")
    assert "Windows" in decide(max_time=3600)[1]


def test_old_configs_with_booleans_still_load():
    assert TrainConfig(compile=True).compile == "on"
    assert TrainConfig.from_dict({"compile": False}).compile == "off"
    assert TrainConfig().compile == "auto"
    with pytest.raises(ConfigError, match="choose one of auto, on, off"):
        TrainConfig(compile="maybe")


class Summary(Reporter):
    def start(self, info):
        self.info = info


def test_the_run_says_and_records_its_choice(tmp_path, corpus_file):
    """A test-sized run: auto says no (and the suite never waits for a compiler)."""
    summary = Summary()
    config = quick_config(tmp_path, corpus_file, max_steps=2, warmup_steps=1, compile="auto")
    result = train(config, reporter=summary)
    assert "not compiled: ~0 s is too short" in summary.info["device"]
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["train"]["compile"] == "off"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_evaluation_and_sampling_do_not_recompile(tmp_path, corpus_file, monkeypatch, precision):
    """Compiled training (dynamo's tracing only, no code generation: fast) with
    evaluations and samples between steps: any recompilation is an error."""
    counter = CompileCounter()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=counter))
    torch._dynamo.reset()
    config = quick_config(
        tmp_path, corpus_file, max_steps=4, eval_interval=1, warmup_steps=1, compile="on"
    ).replace(precision=precision)
    try:
        with torch._dynamo.config.patch(error_on_recompile=True):
            result = train(config)
    finally:
        torch._dynamo.reset()
    assert result.step == 4 and len([r for r in result.history if r["type"] == "eval"]) == 4
    assert counter.frame_count >= 1  # the training steps did run compiled
