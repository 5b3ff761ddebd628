"""slm-train: data preparation, pre-training (one process or DDP) and fine-tuning."""

from importlib.metadata import version as _version

from .checkpoint import Checkpoint, CheckpointError, read_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig
from .datasets import DataTooSmallError, RandomWindows, SlidingWindowDataset, create_dataloader
from .prepare import PreparedData, load_prepared, prepare
from .report import Reporter, RichReporter
from .run import Run, RunError, latest_run
from .sources import CorpusError, DataWarning, resolve
from .train import TrainingError, TrainResult, train

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "ConfigError",
    "CorpusError",
    "DataTooSmallError",
    "DataWarning",
    "PreparedData",
    "RandomWindows",
    "Reporter",
    "RichReporter",
    "Run",
    "RunError",
    "SlidingWindowDataset",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "create_dataloader",
    "latest_run",
    "load_prepared",
    "prepare",
    "read_checkpoint",
    "resolve",
    "save_checkpoint",
    "train",
]
__version__ = _version("slm-train")
