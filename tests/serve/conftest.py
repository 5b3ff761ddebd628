"""A real uvicorn server on a free loopback port, in a thread, for the real `openai` client.

The socket is bound and listening before the server thread starts, so a
client can connect at once (the kernel holds the connection until uvicorn
accepts it): no waiting for readiness, and no sleeps.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest
import uvicorn
from chat_runs import make_chat_run
from slm_serve import ServeConfig, Served, create_app
from slm_serve.server import Server


class Running:
    def __init__(self, served: Served, server: Server, thread: threading.Thread, port: int):
        self.served, self.server, self.thread, self.port = served, server, thread, port
        self.url = f"http://127.0.0.1:{port}"

    def client(self, key: str = "none", **options) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, **options)


@contextmanager
def running(run_dir: Path, **settings) -> Iterator[Running]:
    config = ServeConfig(run=str(run_dir), device="cpu", **settings)
    served = Served.load(config)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    server = Server(uvicorn.Config(create_app(served, config), log_level="warning"), served)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield Running(served, server, thread, listener.getsockname()[1])
    finally:
        if not server.should_exit:  # (a second Ctrl-C would force the exit)
            server.handle_exit(signal.SIGINT, None)  # what Ctrl-C does
        thread.join(timeout=30)
        served.close()
        listener.close()


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory) -> Path:
    return make_chat_run(tmp_path_factory.mktemp("serve") / "chat", block_size=128).path


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A pre-trained (text-continuing) run: no prompt format."""
    return make_chat_run(tmp_path_factory.mktemp("serve") / "base", block_size=128, extra={}).path


@pytest.fixture(scope="module")
def chat_server(chat_run) -> Iterator[Running]:
    with running(chat_run) as server:
        yield server


@pytest.fixture(scope="module")
def base_server(base_run) -> Iterator[Running]:
    with running(base_run) as server:
        yield server
