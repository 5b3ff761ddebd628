"""The server's settings: one dataclass, from which `slm-cli serve` makes its options.

This module imports nothing heavy, so the command line can build its options
without loading torch or FastAPI.
"""

from __future__ import annotations

from dataclasses import dataclass

from slm_train.config import ConfigError, option
from slm_train.naming import setting

# slm_model.QUANTIZE, written here so that building the options does not import torch.
QUANTIZE = ("none", "int8", "int4")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(kw_only=True)
class ServeConfig:
    """Which run to serve, where, and how much work the server takes on at once.

    `max_batch` rows are generated together; `max_queue` more requests may
    wait for a row, and any beyond that get 503 with Retry-After, so memory
    never grows with the number of clients.
    """

    run: str | None = option(None, "Run directory. Default: the most recent run under runs/.")
    checkpoint: str = option("best", "Which weights: best (lowest validation loss) or last.")
    device: str = option("auto", "auto, cpu, cuda or mps.")
    quantize: str = option(
        "none", "Weight-only quantization: none, int8 or int4 (torchao: uv sync --extra quantize)."
    )
    host: str = option("127.0.0.1", "Address to listen on (another than loopback needs a key).")
    port: int = option(8000, "Port to listen on.")
    api_key: str | None = option(None, "Require 'Authorization: Bearer KEY' on every request.")
    model_name: str | None = option(None, "The model id clients ask for. Default: the run's name.")
    max_batch: int = option(8, "Requests generated together, one row of the batch each.")
    max_queue: int = option(32, "Requests that may wait for a row; more are refused with 503.")
    max_body: int = option(1_000_000, "Largest request body, in bytes (413 above it).")

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_body"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{setting(name)} must be at least 1, got {getattr(self, name)}")
        if self.max_queue < 0:
            raise ConfigError(f"{setting('max_queue')} must be 0 or more, got {self.max_queue}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"{setting('port')} must be in 0..65535, got {self.port}")
        if self.quantize not in QUANTIZE:
            raise ConfigError(
                f"{setting('quantize')} must be one of {', '.join(QUANTIZE)}, got {self.quantize!r}"
            )
        if self.checkpoint not in ("best", "last"):
            raise ConfigError(
                f"{setting('checkpoint')} must be best or last, got {self.checkpoint!r}"
            )

    @property
    def exposed(self) -> bool:
        """True when the server listens beyond this machine without a key."""
        return self.host not in LOOPBACK and not self.api_key
