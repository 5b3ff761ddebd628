"""Running the app under uvicorn until Ctrl-C, and ending in-flight streams properly then.

uvicorn's graceful shutdown stops accepting connections and waits for the open
ones to finish; a stream could run on for its whole max_tokens. So the first
Ctrl-C also drains the batcher: new requests get 503, and every running
generation ends at the next step with finish_reason "length", so each stream
sends its last chunk and `data: [DONE]` and closes. A second Ctrl-C forces
the exit (uvicorn's behaviour).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import uvicorn

from .app import create_app
from .config import ServeConfig
from .model_host import Served


class ServeWarning(UserWarning):
    """A setting that works but is risky (listening beyond this machine without a key)."""


class Server(uvicorn.Server):
    """uvicorn's server, which also drains the batcher on the first Ctrl-C."""

    def __init__(self, config: uvicorn.Config, served: Served) -> None:
        super().__init__(config)
        self.served = served

    def handle_exit(self, sig, frame) -> None:
        self.served.batcher.drain()
        super().handle_exit(sig, frame)


def serve(config: ServeConfig, announce: Callable[[Served], None] | None = None) -> None:
    """Load the run, then serve it at config.host:config.port until Ctrl-C."""
    if config.exposed:
        warnings.warn(
            f"listening on {config.host} without --api-key: anyone who can reach this machine "
            "can use the model; pass --api-key KEY (or keep the default --host 127.0.0.1)",
            ServeWarning,
            stacklevel=2,
        )
    served = Served.load(config)
    app = create_app(served, config)
    settings = uvicorn.Config(
        app, host=config.host, port=config.port, log_level="info", timeout_graceful_shutdown=30
    )
    try:
        if announce is not None:
            announce(served)
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it handled
            Server(settings, served).run()
    finally:
        served.close()
