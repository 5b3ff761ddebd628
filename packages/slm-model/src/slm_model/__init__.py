"""Attention, a GPT model and sampling in PyTorch (filled by its own issue)."""

from importlib.metadata import version as _version

__version__ = _version("slm-model")
