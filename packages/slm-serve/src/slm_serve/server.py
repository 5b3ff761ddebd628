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
import os
import socket
import warnings
from collections.abc import Callable

import uvicorn

from .app import create_app
from .config import ServeConfig
from .model_host import Served


class ServeWarning(UserWarning):
    """A setting that works but is risky (listening beyond this machine without a key)."""


class PortInUse(ValueError):
    """The address cannot be listened on; the message says which and what to do."""


class Server(uvicorn.Server):
    """uvicorn's server, which also drains the batcher on the first Ctrl-C."""

    def __init__(self, config: uvicorn.Config, served: Served) -> None:
        super().__init__(config)
        self.served = served

    def handle_exit(self, sig, frame) -> None:
        self.served.batcher.drain()
        super().handle_exit(sig, frame)


def serve(config: ServeConfig, announce: Callable[[Served, str], None] | None = None) -> None:
    """Load the run, then serve it at config.host:config.port until Ctrl-C.

    `announce(served, url)` is called once the server is listening (at `url`).
    """
    if config.exposed:
        warnings.warn(
            f"listening on {config.host} without --api-key: anyone who can reach this machine "
            "can use the model; pass --api-key KEY (or keep the default --host 127.0.0.1)",
            ServeWarning,
            stacklevel=2,
        )
    listener = _listen(config.host, config.port)  # before loading: a busy port fails at once
    served = Served.load(config)
    settings = uvicorn.Config(
        create_app(served, config), log_level="info", timeout_graceful_shutdown=30
    )
    try:
        if announce is not None:
            host, port = listener.getsockname()[:2]
            announce(served, f"http://{f'[{host}]' if ':' in host else host}:{port}/v1")
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it handled
            Server(settings, served).run(sockets=[listener])
    finally:
        served.close()
        listener.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise PortInUse(
            f"cannot listen on {host}:{port} ({reason}); choose another --port, or stop the "
            "program that uses it"
        ) from None
