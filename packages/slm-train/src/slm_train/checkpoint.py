"""Checkpoints: a directory per checkpoint, written completely or not at all.

    <run>/last/   model.safetensors  weights, with the model config in its metadata
                  optimizer.pt       optimizer and gradient-scaler state (tensors only)
                  state.json         step, tokens seen, best validation loss, elapsed time
                  manifest.json      size and sha256 of every file above
    <run>/best/   the same without optimizer.pt: the weights with the lowest validation loss

A checkpoint is built in a temporary sibling directory and swapped in with two
renames, so a crash or Ctrl-C at any moment leaves the previous checkpoint
usable. The manifest lets a reader detect a truncated or corrupted file
before it trusts any of it. Weights are safetensors, and optimizer state is
read with `torch.load(weights_only=True)`: loading a checkpoint never runs code
from the file.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, safe_open, save_model
from slm_model import GPTConfig, GPTModel
from slm_tokenizer.files import plain_file_mode
from torch import nn

from .files import sha256_file
from .lora import lora_scale, merge_lora_weights
from .naming import setting

FORMAT = "slm-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or does not fit; the message says what to do."""


def save_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    state: dict[str, Any],
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    directory = Path(directory)
    temporary = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "config": json.dumps(model.config.to_dict()),
    }
    scale = lora_scale(model)
    if scale is not None:  # unmerged LoRA adapters (a fine-tuning's last/), for exact resume
        metadata["lora_scale"] = repr(scale)
    save_model(model, str(temporary / "model.safetensors"), metadata=metadata)
    # safetensors writes owner-only files; give the weights the mode of every other file.
    os.chmod(temporary / "model.safetensors", plain_file_mode())
    if optimizer_state is not None:
        torch.save(optimizer_state, temporary / "optimizer.pt")
    (temporary / "state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    manifest = {
        p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(temporary.iterdir())
    }
    (temporary / "manifest.json").write_text(
        json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
    )
    _fsync_directory(temporary)

    previous = directory.with_name(f".{directory.name}.old")
    shutil.rmtree(previous, ignore_errors=True)
    if directory.exists():
        directory.rename(previous)
    temporary.rename(directory)
    shutil.rmtree(previous, ignore_errors=True)
    return directory


@dataclass
class Checkpoint:
    directory: Path
    config: GPTConfig
    state: dict[str, Any]
    lora_scale: float | None = None

    def load_weights(self, model: nn.Module) -> None:
        """Load into `model`; unmerged LoRA adapters are merged if `model` has none."""
        if model.config != self.config:
            raise CheckpointError(
                f"{self.directory} holds a model with {self._describe(self.config)}, not "
                f"{self._describe(model.config)}; use the same model settings as the run"
            )
        path, device = str(self.directory / "model.safetensors"), next(model.parameters()).device
        try:
            if self.lora_scale is None or lora_scale(model) is not None:
                load_model(model, path, device=str(device))
            else:
                _load_merged(
                    model, merge_lora_weights(load_file(path, str(device)), self.lora_scale)
                )
        except (SafetensorError, RuntimeError) as error:
            raise CheckpointError(
                f"{self.directory}/model.safetensors cannot be loaded ({error})"
            ) from None

    def build_model(self, device: str | torch.device = "cpu") -> GPTModel:
        with torch.device(device):
            model = GPTModel(self.config)
        self.load_weights(model)
        return model

    @property
    def resumable(self) -> bool:
        """Whether the optimizer state is here too (`last/`), for an exact resume."""
        return (self.directory / "optimizer.pt").is_file()

    def optimizer_state(self) -> dict[str, Any]:
        path = self.directory / "optimizer.pt"
        if not path.is_file():
            raise CheckpointError(
                f"{self.directory} has no optimizer state; resume from a 'last' checkpoint"
            )
        return torch.load(path, map_location="cpu", weights_only=True)

    @staticmethod
    def _describe(config: GPTConfig) -> str:
        return ", ".join(f"{k}={v}" for k, v in config.to_dict().items())


def read_checkpoint(directory: str | os.PathLike) -> Checkpoint:
    """Open and verify a checkpoint directory (falling back to the copy a crash may have left)."""
    directory = Path(directory)
    if not directory.is_dir():
        previous = directory.with_name(f".{directory.name}.old")
        if previous.is_dir():
            directory = previous
        else:
            raise CheckpointError(
                f"no checkpoint at {directory}; train first, or check the run directory"
            )
    fix = (
        f"delete the folder {directory} ({setting('resume', True)} then continues from the other "
        f"checkpoint, and generate uses it), or start the run again with {setting('force', True)}"
    )
    _verify_manifest(directory, fix)
    try:
        with safe_open(str(directory / "model.safetensors"), framework="pt") as file:
            metadata = file.metadata() or {}
        config = GPTConfig.from_dict(json.loads(metadata["config"]))
        state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    except (SafetensorError, KeyError, ValueError, OSError) as error:
        raise CheckpointError(f"checkpoint {directory} cannot be read ({error}); {fix}") from None
    if metadata.get("format") != FORMAT or metadata.get("version") != str(VERSION):
        raise CheckpointError(f"{directory} is not an slm checkpoint of version {VERSION}")
    scale = metadata.get("lora_scale")
    return Checkpoint(directory, config, state, float(scale) if scale else None)


def _verify_manifest(directory: Path, fix: str) -> None:
    """Every file the manifest lists is there, whole, with its recorded sha256."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        entries = [(name, int(e["size"]), str(e["sha256"])) for name, e in manifest.items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise CheckpointError(
            f"checkpoint {directory} has no readable manifest.json; {fix}"
        ) from None
    for name, size, digest in entries:
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint {directory} is missing {name}; {fix}")
        if path.stat().st_size != size:
            raise CheckpointError(
                f"checkpoint file {path} is truncated ({path.stat().st_size:,} of "
                f"{size:,} bytes); {fix}"
            )
        if sha256_file(path) != digest:
            raise CheckpointError(
                f"checkpoint file {path} is corrupt (its sha256 does not match); {fix}"
            )


def _load_merged(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """load_state_dict, accepting a missing name only where it shares its tensor (tied weights)."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    loaded = {p.data_ptr() for n, p in model.state_dict().items() if n in weights}
    shared = {n for n in missing if model.state_dict()[n].data_ptr() in loaded}
    if unexpected or set(missing) - shared:
        raise RuntimeError(
            f"unexpected {unexpected[:3]}, missing {sorted(set(missing) - shared)[:3]}"
        )


def save_training(
    directory: Path, model: nn.Module, state: dict[str, Any], optimizer, scaler
) -> Path:
    """`last/`: the weights with everything needed to continue exactly where training is."""
    state = {**state, "time": datetime.now().isoformat(timespec="seconds")}
    extra = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()}
    return save_checkpoint(directory, model, state, extra)


def restore_training(checkpoint: Checkpoint, model: nn.Module, optimizer, scaler) -> dict:
    """Load what `save_training` saved into `model`, `optimizer` and `scaler`; returns the state.

    From a checkpoint without optimizer state (`best/`), only the weights and
    the state load: the optimizer starts afresh.
    """
    checkpoint.load_weights(model)
    if checkpoint.resumable:
        saved = checkpoint.optimizer_state()
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
    return checkpoint.state


def recover(run_dir: str | os.PathLike) -> None:
    """Clean up after a writer that died inside `save_checkpoint` (a crash, `kill -9`).

    Its half-written `.<name>.tmp-<pid>/` folders and `.<file>.*.tmp` files are
    deleted. A `.<name>.old/` is the previous checkpoint: if the new one was not
    yet renamed into place it is put back, otherwise it is deleted. Call this
    only while no other process writes the run (under its lock: lock.RunLock).
    """
    run_dir = Path(run_dir)
    for leftover in [*run_dir.glob(".*.tmp-*"), *run_dir.glob(".*.tmp")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    for old in run_dir.glob(".*.old"):
        current = run_dir / old.name[1:].removesuffix(".old")
        if current.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(current)


def _fsync_directory(directory: Path) -> None:
    """Flush the files' contents to disk before the rename makes them the checkpoint."""
    for path in directory.iterdir():
        with open(path, "rb") as file:
            os.fsync(file.fileno())
