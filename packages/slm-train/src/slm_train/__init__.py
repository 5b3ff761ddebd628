"""slm-train: data preparation, pre-training (one process or DDP) and fine-tuning.

Where to start reading: `engine.py` is the training loop that every kind of
training runs on; `pretrain.py` and `finetune/` supply what is their own.

Names are imported on first use (PEP 562), so `import slm_train` and the
configuration classes do not load PyTorch: `slm-cli --help` stays instant.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chat.conversations import load_conversations
    from .chat_template import ChatTemplate
    from .checkpoint import Checkpoint, CheckpointError, read_checkpoint, save_checkpoint
    from .compare import Comparison, RunStats, compare_runs, plot_comparison
    from .config import (
        ChatConfig,
        ClassifyConfig,
        ConfigError,
        ConfigWarning,
        DataConfig,
        DPOConfig,
        FinetuneConfig,
        InstructConfig,
        LoopConfig,
        RLConfig,
        TrainConfig,
        parse_tokenizer_spec,
    )
    from .data.cleaning import Cleaning
    from .data.datasets import (
        DataTooSmallError,
        RandomWindows,
        SlidingWindowDataset,
        create_dataloader,
        sequential_windows,
    )
    from .data.prepare import (
        PreparedData,
        default_data_dir,
        load_prepared,
        prepare,
        prepare_config,
    )
    from .data.sources import CorpusError, DataWarning, resolve
    from .engine import FitResult, Task, Trainer, TrainingError, TrainState, accumulate_gradients
    from .evals import save_evaluation
    from .evaluate import EvalResult, evaluate_loss, evaluate_run
    from .export import export_gguf, export_hf, import_hf
    from .finetune import (
        ChatResult,
        ClassifyResult,
        DPOResult,
        GPTClassifier,
        InstructResult,
        RLResult,
        classify,
        finetune_chat,
        finetune_classifier,
        finetune_dpo,
        finetune_instructions,
        finetune_rl,
        load_classifier,
    )
    from .inspection import Candidate, Inspection, inspect_text, plot_attention, plot_next_tokens
    from .launch import launch, on_devices
    from .lora import LoRALinear, apply_lora, merge_lora
    from .naming import SHORT_FLAGS, command_line_names, setting
    from .optim import learning_rate, make_optimizer
    from .pretrain import DEFAULT_MAX_TIME, TrainResult, plan_training, train
    from .prompts import (
        encode_messages,
        encode_prompt,
        format_instruction,
        format_prompt,
        reply_ends,
    )
    from .report import Reporter
    from .run import Run, RunError, RunSummary, latest_run
    from .runtime import Distributed, autocast, resolve_device, resolve_precision

_MODULES = {
    "Comparison": "compare",
    "RunStats": "compare",
    "compare_runs": "compare",
    "plot_comparison": "compare",
    "Checkpoint": "checkpoint",
    "CheckpointError": "checkpoint",
    "read_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "load_conversations": "chat.conversations",
    "ChatConfig": "config",
    "ClassifyConfig": "config",
    "ConfigError": "config",
    "ConfigWarning": "config",
    "DPOConfig": "config",
    "DataConfig": "config",
    "FinetuneConfig": "config",
    "RLConfig": "config",
    "InstructConfig": "config",
    "LoopConfig": "config",
    "TrainConfig": "config",
    "parse_tokenizer_spec": "config",
    "Cleaning": "data.cleaning",
    "DataTooSmallError": "data.datasets",
    "RandomWindows": "data.datasets",
    "SlidingWindowDataset": "data.datasets",
    "create_dataloader": "data.datasets",
    "sequential_windows": "data.datasets",
    "PreparedData": "data.prepare",
    "default_data_dir": "data.prepare",
    "load_prepared": "data.prepare",
    "prepare": "data.prepare",
    "prepare_config": "data.prepare",
    "CorpusError": "data.sources",
    "DataWarning": "data.sources",
    "resolve": "data.sources",
    "FitResult": "engine",
    "Task": "engine",
    "TrainState": "engine",
    "Trainer": "engine",
    "TrainingError": "engine",
    "accumulate_gradients": "engine",
    "save_evaluation": "evals",
    "EvalResult": "evaluate",
    "export_gguf": "export",
    "export_hf": "export",
    "import_hf": "export",
    "evaluate_loss": "evaluate",
    "evaluate_run": "evaluate",
    "ChatResult": "finetune",
    "ClassifyResult": "finetune",
    "DPOResult": "finetune",
    "GPTClassifier": "finetune",
    "InstructResult": "finetune",
    "classify": "finetune",
    "finetune_chat": "finetune",
    "finetune_classifier": "finetune",
    "finetune_dpo": "finetune",
    "finetune_rl": "finetune",
    "RLResult": "finetune",
    "finetune_instructions": "finetune",
    "load_classifier": "finetune",
    "Candidate": "inspection",
    "Inspection": "inspection",
    "inspect_text": "inspection",
    "plot_attention": "inspection",
    "plot_next_tokens": "inspection",
    "launch": "launch",
    "on_devices": "launch",
    "LoRALinear": "lora",
    "apply_lora": "lora",
    "merge_lora": "lora",
    "SHORT_FLAGS": "naming",
    "command_line_names": "naming",
    "setting": "naming",
    "learning_rate": "optim",
    "make_optimizer": "optim",
    "TrainResult": "pretrain",
    "DEFAULT_MAX_TIME": "pretrain",
    "plan_training": "pretrain",
    "train": "pretrain",
    "encode_prompt": "prompts",
    "encode_messages": "prompts",
    "ChatTemplate": "chat_template",
    "format_instruction": "prompts",
    "format_prompt": "prompts",
    "reply_ends": "prompts",
    "Reporter": "report",
    "Run": "run",
    "RunError": "run",
    "RunSummary": "run",
    "latest_run": "run",
    "Distributed": "runtime",
    "autocast": "runtime",
    "resolve_device": "runtime",
    "resolve_precision": "runtime",
}
__all__ = [
    "DEFAULT_MAX_TIME",
    "SHORT_FLAGS",
    "Candidate",
    "ChatConfig",
    "ChatResult",
    "ChatTemplate",
    "Checkpoint",
    "CheckpointError",
    "ClassifyConfig",
    "ClassifyResult",
    "Cleaning",
    "Comparison",
    "ConfigError",
    "ConfigWarning",
    "CorpusError",
    "DPOConfig",
    "DPOResult",
    "DataConfig",
    "DataTooSmallError",
    "DataWarning",
    "Distributed",
    "EvalResult",
    "FinetuneConfig",
    "FitResult",
    "GPTClassifier",
    "Inspection",
    "InstructConfig",
    "InstructResult",
    "LoRALinear",
    "LoopConfig",
    "PreparedData",
    "RLConfig",
    "RLResult",
    "RandomWindows",
    "Reporter",
    "Run",
    "RunError",
    "RunStats",
    "RunSummary",
    "SlidingWindowDataset",
    "Task",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Trainer",
    "TrainingError",
    "accumulate_gradients",
    "apply_lora",
    "autocast",
    "classify",
    "command_line_names",
    "compare_runs",
    "create_dataloader",
    "default_data_dir",
    "encode_messages",
    "encode_prompt",
    "evaluate_loss",
    "evaluate_run",
    "export_gguf",
    "export_hf",
    "finetune_chat",
    "finetune_classifier",
    "finetune_dpo",
    "finetune_instructions",
    "finetune_rl",
    "format_instruction",
    "format_prompt",
    "import_hf",
    "inspect_text",
    "latest_run",
    "launch",
    "learning_rate",
    "load_classifier",
    "load_conversations",
    "load_prepared",
    "make_optimizer",
    "merge_lora",
    "on_devices",
    "parse_tokenizer_spec",
    "plan_training",
    "plot_attention",
    "plot_comparison",
    "plot_next_tokens",
    "prepare",
    "prepare_config",
    "read_checkpoint",
    "reply_ends",
    "resolve",
    "resolve_device",
    "resolve_precision",
    "save_checkpoint",
    "save_evaluation",
    "sequential_windows",
    "setting",
    "train",
]
__version__ = _version("slm-train")


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module 'slm_train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
