"""Fixtures for the training tests: a small corpus and a web server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import FakeServer, ServerHandler, story


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    """60 documents separated by <|endoftext|> lines."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n<|endoftext|>\n".join(story(i) for i in range(60)) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def server() -> Iterator[FakeServer]:
    handler = type("Handler", (ServerHandler,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    state = FakeServer(base_url=f"http://127.0.0.1:{httpd.server_address[1]}")
    handler.state = state
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
