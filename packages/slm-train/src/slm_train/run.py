"""A run directory: everything needed to resume, evaluate or sample a trained model.

    runs/<name>/config.json     model, training and tokenizer settings
                tokenizer.json  the tokenizer the model was trained with
                last/ best/     checkpoints (see checkpoint.py)
                metrics.jsonl   one JSON record per log line and evaluation
                loss.png        training and validation loss curves

A run is self-contained: copy the folder elsewhere and `slm-cli generate
--run` works there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from slm_model import GPTConfig, GPTModel, quantize
from slm_tokenizer import BPETokenizer

from .checkpoint import Checkpoint, CheckpointError, read_checkpoint
from .files import sha256_file, write_text_atomically
from .metrics import read_jsonl
from .naming import setting

FORMAT = "slm-run"
VERSION = 1
DEFAULT_ROOT = Path("runs")
WRITER_FILES = ("writer.lock", "writer.json")  # lock.RunLock's


class RunError(RuntimeError):
    """A run directory is missing, foreign or inconsistent; the message says what to do."""


class Run:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self.config: dict[str, Any] = json.loads(
                (self.path / "config.json").read_text(encoding="utf-8")
            )
        except FileNotFoundError:
            if not self.path.exists():
                raise RunError(
                    f"no run directory at {self.path}; check the path or train a model first"
                ) from None
            raise RunError(f"{self.path} is not an slm run (no config.json)") from None
        except ValueError:
            raise RunError(f"{self.path}/config.json is damaged; the run cannot be used") from None
        if self.config.get("format") != FORMAT:
            raise RunError(f"{self.path}/config.json is not an slm run configuration")
        if "checksum" in self.config and self.config["checksum"] != _checksum(self.config):
            raise RunError(
                f"{self.path}/config.json was changed or damaged (its checksum does not match); "
                "restore it, or start the run again"
            )

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        model_config: GPTConfig,
        train_config: dict[str, Any],
        tokenizer_file: Path,
        tokenizer_info: dict[str, Any],
        data_info: dict[str, Any],
        force: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> Run:
        """Start a new run directory; refuse to overwrite another run unless `force`."""
        path = Path(path)
        contents = (
            [p for p in path.iterdir() if p.name not in WRITER_FILES] if path.exists() else []
        )
        if contents and not force:
            raise RunError(
                f"{path} already holds a run; pass {setting('resume', True)} to continue it, "
                f"{setting('force', True)} to overwrite it, or choose another {setting('out_dir')}"
            )
        for item in contents:  # --force; the writer's lock stays (lock.py)
            shutil.rmtree(item) if item.is_dir() else item.unlink()
        path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tokenizer_file, path / "tokenizer.json")
        config = {
            "format": FORMAT,
            "version": VERSION,
            "model": model_config.to_dict(),
            "train": train_config,
            "tokenizer": {**tokenizer_info, "sha256": sha256_file(path / "tokenizer.json")},
            "data": data_info,
            **(extra or {}),
        }
        config["checksum"] = _checksum(config)
        write_text_atomically(path / "config.json", json.dumps(config, indent=2) + "\n")
        return cls(path)

    # ------------------------------------------------------------------ parts
    @property
    def model_config(self) -> GPTConfig:
        return GPTConfig.from_dict(self.config["model"])

    def tokenizer(self) -> BPETokenizer:
        """The run's tokenizer, checked against the hash recorded when the run began."""
        path = self.path / "tokenizer.json"
        if not path.is_file():
            raise RunError(f"{self.path} has no tokenizer.json; the run is incomplete")
        if sha256_file(path) != self.config["tokenizer"]["sha256"]:
            raise RunError(
                f"{path} is not the tokenizer this model was trained with (its hash differs); "
                "restore the original file"
            )
        tokenizer = BPETokenizer.load(path)
        if tokenizer.vocab_size > self.model_config.vocab_size:
            raise RunError(
                f"the tokenizer makes ids up to {tokenizer.vocab_size - 1}, but the model only has "
                f"{self.model_config.vocab_size} embeddings; they do not belong together"
            )
        return tokenizer

    def checkpoint(self, which: str = "best") -> Checkpoint:
        """The `best` or `last` checkpoint (`best` falls back to `last` if there is none yet)."""
        if which not in ("best", "last"):
            raise ValueError(f"which must be 'best' or 'last', got {which!r}")
        directory = self.path / which
        if which == "best" and not directory.exists() and not (self.path / ".best.old").exists():
            directory = self.path / "last"
        checkpoint = read_checkpoint(directory)
        if checkpoint.config != self.model_config:
            raise CheckpointError(
                f"{directory} does not hold the model described in {self.path}/config.json"
            )
        return checkpoint

    def resume_checkpoint(self) -> Checkpoint:
        """Where training continues: `last/` (exactly), or else `best/` (with a fresh optimizer)."""
        if (self.path / "last").exists() or (self.path / ".last.old").exists():
            return self.checkpoint("last")
        if (self.path / "best").exists():
            return self.checkpoint("best")
        raise RunError(
            f"{self.path} has no checkpoint to resume from; start it again with "
            f"{setting('force', True)}"
        )

    def load_model(
        self, which: str = "best", device: str | torch.device = "cpu", quantized: str | None = None
    ) -> GPTModel:
        """The `which` checkpoint's model on `device`, in eval mode; `quantized` int8 or int4
        gives it in bf16 with its Linear weights quantized (slm_model.quantize, for inference)."""
        if self.config.get("kind") == "classifier":
            raise RunError(
                f"{self.path} is a classifier, not a text generator; use: slm-cli classify"
            )
        model = self.checkpoint(which).build_model(device)
        return quantize(model.eval(), quantized)

    def metrics(self) -> list[dict[str, Any]]:
        path = self.path / "metrics.jsonl"
        return read_jsonl(path) if path.is_file() else []

    def summary(self) -> RunSummary:
        """What `slm-cli info` shows: the configuration, the sizes and how training went."""
        with torch.device("meta"):  # shapes only: no memory, no weights read
            model = GPTModel(self.model_config)
        settings, data = self.config["train"], self.config["data"]
        if "train_tokens" in data:
            counts = f"{data['train_tokens']:,} train / {data['val_tokens']:,} val tokens"
        else:
            counts = (
                f"{data['train']:,} train / {data['val']:,} val / {data['test']:,} test examples"
            )
        schedule = (
            f"{settings['epochs']} epochs"
            if "epochs" in settings
            else f"batch {settings['batch_size']} x {settings['grad_accum_steps']}"
        )
        metrics = self.metrics()
        evals = [m for m in metrics if m.get("type") == "eval" and "val_loss" in m]
        test = next((m for m in metrics if m.get("type") == "test"), {})
        return RunSummary(
            path=self.path,
            model=self.model_config.to_dict(),
            parameters=model.num_parameters(),
            parameters_without_embeddings=model.num_parameters(True),
            tokenizer=f"{self.config['tokenizer']['spec']} "
            f"({self.config['tokenizer']['vocab_size']:,} tokens)",
            kind=self.config.get("kind", "pre-trained"),
            labels=self.config.get("labels", []),
            data=f"{data['source']}: {counts}",
            base=data.get("base"),
            prompt_format=self.config.get("prompt_format"),
            training=f"{schedule}, lr {settings['learning_rate']}, {settings['precision']}"
            + (", compiled" if settings.get("compile") in ("on", True) else ""),
            speed=_speed([m for m in metrics if m.get("type") == "step"]),
            last_eval=evals[-1] if evals else None,
            best_eval=min(evals, key=lambda m: m["val_loss"]) if evals else None,
            test={k: v for k, v in test.items() if isinstance(v, float)},
            checkpoints={w: (self.path / w).is_dir() for w in ("best", "last")},
        )

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"


@dataclass
class RunSummary:
    path: Path
    model: dict[str, Any]
    parameters: int
    parameters_without_embeddings: int
    tokenizer: str
    kind: str
    labels: list[str]
    data: str
    base: str | None
    prompt_format: str | None
    training: str
    speed: str | None  # median tokens/s, FLOP/s and MFU of the step records
    last_eval: dict[str, Any] | None  # the last evaluation record of metrics.jsonl
    best_eval: dict[str, Any] | None  # the one with the lowest validation loss
    test: dict[str, float] = field(default_factory=dict)  # test-set scores of a fine-tuning
    checkpoints: dict[str, bool] = field(default_factory=dict)  # best/last present?


def _speed(steps: list[dict[str, Any]]) -> str | None:
    """'4,618 tokens/s, 92.1 GFLOP/s, MFU 22.9 %': medians over the step records
    (MFU where the run knew its device's peak: peak.py)."""
    if not steps or "tokens_per_s" not in steps[-1]:
        return None

    def median(key: str) -> float | None:
        values = sorted(m[key] for m in steps if isinstance(m.get(key), (int, float)))
        return values[len(values) // 2] if values else None

    text = f"{median('tokens_per_s'):,.0f} tokens/s"
    if median("flops_per_s"):
        text += f", {median('flops_per_s') / 1e9:,.1f} GFLOP/s"
    if median("mfu"):
        text += f", MFU {median('mfu'):.1%}"
    return text


def _checksum(config: dict[str, Any]) -> str:
    """sha256 of the settings (all but this field): a damaged config.json cannot pass as a run."""
    settings = {key: value for key, value in config.items() if key != "checksum"}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def latest_run(root: str | os.PathLike = DEFAULT_ROOT) -> Run:
    """The most recently started run under `root` (by its config.json's modification time)."""
    root = Path(root)
    candidates = (
        sorted(root.glob("*/config.json"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    )
    if not candidates:
        raise RunError(f"no runs under {root}/ yet; train one with: slm-cli train")
    return Run(candidates[-1].parent)
