"""Shared fixtures: small corpora the tests write themselves, and a quiet training config."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from slm_train import TrainConfig
from synthetic import story


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    """60 documents separated by <|endoftext|> lines."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n<|endoftext|>\n".join(story(i) for i in range(60)) + "\n", encoding="utf-8")
    return path


def quick_config(tmp_path: Path, data: Path | str, **overrides) -> TrainConfig:
    """A tiny model and a short budget: seconds on a CPU."""
    values = dict(
        data=str(data),
        tokenizer="bpe:300",
        data_dir=str(tmp_path / "data"),
        out_dir=str(tmp_path / "run"),
        preset="tiny",
        model={"block_size": 32},
        batch_size=8,
        max_steps=30,
        warmup_steps=5,
        eval_interval=10,
        eval_batches=2,
        log_interval=1,
        sample_tokens=8,
        learning_rate=3e-3,
        precision="fp32",
    )
    values.update(overrides)
    return TrainConfig(**values)


# ------------------------------------------------ a web server on loopback
@dataclass
class FakeServer:
    """What the handler serves and how it misbehaves, plus a log of what it saw."""

    base_url: str
    files: dict[str, bytes] = field(default_factory=dict)
    ignore_ranges: bool = False
    break_after: int | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url + path


class _Handler(BaseHTTPRequestHandler):
    state: FakeServer  # set on a per-fixture subclass

    def do_GET(self) -> None:
        state = self.state
        range_header = self.headers.get("Range")
        state.requests.append((self.path, range_header))
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return

        start = 0
        if range_header is not None and not state.ignore_ranges:
            start = int(range_header.removeprefix("bytes=").removesuffix("-"))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if state.break_after is not None:
            # Promise the whole body, deliver only part of it, then hang up.
            self.wfile.write(payload[: state.break_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FakeServer]:
    handler = type("Handler", (_Handler,), {})
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
