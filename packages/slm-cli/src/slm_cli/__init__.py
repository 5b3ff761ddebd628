"""slm-cli: the `slm-cli` command (train, generate, chat, eval, prepare, tokenizer, info)."""

from importlib.metadata import version as _version

__version__ = _version("slm-cli")
