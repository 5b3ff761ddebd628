"""slm-serve: an OpenAI-compatible HTTP server for slm runs.

    ServeConfig   the settings (config.py), from which `slm-cli serve` makes its options
    Served        a loaded run and the one worker thread that owns its model (model_host.py)
    create_app    the FastAPI application: /v1/models, /v1/chat/completions, /v1/completions
    serve         load, build the app, run uvicorn until Ctrl-C (server.py)

Only the configuration is imported eagerly; the rest (torch, FastAPI) loads on
first use, so `slm-cli --help` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .config import ServeConfig

_LAZY = {"Served": "model_host", "create_app": "app", "serve": "server"}

__all__ = ["ServeConfig", "Served", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
