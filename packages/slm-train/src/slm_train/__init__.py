"""Data preparation, pre-training and fine-tuning (filled by its own issue)."""

from importlib.metadata import version as _version

__version__ = _version("slm-train")
