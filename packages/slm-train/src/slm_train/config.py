"""Training configuration: one dataclass, loadable from TOML, overridable field by field."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from slm_model import PRESETS, GPTConfig

from .prepare import parse_tokenizer_spec

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it and the fix."""


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults suit the `small` preset on a CPU.

    Budgets: training stops at whichever of max_steps, max_tokens (tokens
    processed, all processes together) and max_time (seconds) comes first; the
    learning-rate schedule follows the fraction of that budget already spent.
    """

    # Data
    data: str = "builtin:bbe"
    tokenizer: str = "bpe:4096"
    val_fraction: float = 0.1
    data_dir: str | None = None  # default: data/<source>-<tokenizer>
    # Model: a preset from slm_model, with any GPTConfig field overridden.
    preset: str = "small"
    model: dict[str, Any] = field(default_factory=dict)
    # Optimisation
    batch_size: int = 16
    grad_accum_steps: int = 1
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    # Budget
    max_steps: int | None = 2000
    max_tokens: int | None = None
    max_time: float | None = None
    # Evaluation and logging
    eval_interval: int = 200
    eval_batches: int = 20
    log_interval: int = 10
    sample_tokens: int = 64
    # Hardware
    precision: str = "auto"  # bf16 where the hardware does it natively, else fp16 (CUDA) or fp32
    device: str = "auto"
    compile: bool = False
    seed: int = 1337
    out_dir: str | None = None  # default: runs/<date>-<time>-<preset>

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        positive = (
            "batch_size",
            "grad_accum_steps",
            "eval_interval",
            "eval_batches",
            "log_interval",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("max_steps", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer or unset, got {value!r}")
        if self.max_time is not None and self.max_time <= 0:
            raise ConfigError(
                f"max_time must be a positive number of seconds, got {self.max_time!r}"
            )
        if self.max_steps is None and self.max_tokens is None and self.max_time is None:
            raise ConfigError("set at least one budget: max_steps, max_tokens or max_time")
        if not self.learning_rate > 0 or not 0 <= self.min_lr <= self.learning_rate:
            raise ConfigError(
                f"need learning_rate > 0 and 0 <= min_lr <= learning_rate, got "
                f"{self.learning_rate!r} and {self.min_lr!r}"
            )
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("warmup_steps, weight_decay and grad_clip must not be negative")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"betas must be in [0, 1), got {self.beta1!r}, {self.beta2!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        if self.device not in ("auto", "cpu", "mps") and not self.device.startswith("cuda"):
            raise ConfigError(f"unknown device {self.device!r}; use auto, cpu, cuda, cuda:N or mps")
        if not isinstance(self.model, dict):
            raise ConfigError(
                "model must be a table of GPTConfig fields, e.g. model = {n_layer = 4}"
            )
        # Fail before any slow work (data preparation) on settings that cannot work.
        if self.preset not in PRESETS:
            raise ConfigError(
                f"unknown model preset {self.preset!r}; choose one of: {', '.join(PRESETS)}"
            )
        fields = {f.name for f in dataclasses.fields(GPTConfig)}
        unknown = sorted(set(self.model) - fields)
        if unknown:
            raise ConfigError(
                f"unknown model field {unknown[0]!r}; valid fields: {', '.join(sorted(fields))}"
            )
        try:
            parse_tokenizer_spec(self.tokenizer)
        except ValueError as error:
            raise ConfigError(str(error)) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown training option {unknown[0]!r}; valid options: {', '.join(sorted(known))}"
            )
        return cls(**values)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a TOML file of TrainConfig fields; keyword overrides that are not None win."""
        try:
            values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from None
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls.from_dict(values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
