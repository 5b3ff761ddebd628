"""Tests for slm_train.data.download against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest
from slm_train.data.download import DownloadError, download

PAYLOAD = os.urandom(300_000)


def test_full_download_writes_exact_bytes(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    destination = tmp_path / "sub" / "dir" / "data.bin"

    result = download(server.url("/data.bin"), destination, progress=False)

    assert result == destination
    assert destination.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "dir" / "data.bin.part").exists()
    assert server.requests == [("/data.bin", None)]


def test_progress_bar_runs(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    destination = tmp_path / "data.bin"

    download(server.url("/data.bin"), destination, progress=True, chunk_size=32_768)

    assert destination.read_bytes() == PAYLOAD


def test_interrupted_download_keeps_part_and_resumes(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.break_after = 123_456
    destination = tmp_path / "data.bin"
    part = tmp_path / "data.bin.part"

    with pytest.raises(DownloadError) as excinfo:
        download(server.url("/data.bin"), destination, progress=False, chunk_size=10_000)

    message = str(excinfo.value)
    assert "run the same command again" in message
    assert "\n" not in message
    assert not destination.exists()
    assert part.read_bytes() == PAYLOAD[:123_456]

    server.break_after = None
    download(server.url("/data.bin"), destination, progress=False)

    assert server.requests[-1] == ("/data.bin", "bytes=123456-")
    assert destination.read_bytes() == PAYLOAD
    assert not part.exists()


def test_resume_against_server_that_ignores_range(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.ignore_ranges = True
    destination = tmp_path / "data.bin"
    part = tmp_path / "data.bin.part"
    part.write_bytes(b"stale bytes that must not end up in the file")

    download(server.url("/data.bin"), destination, progress=False)

    assert server.requests[-1][1] is not None  # we asked to resume...
    assert destination.read_bytes() == PAYLOAD  # ...and coped with a full 200 answer
    assert not part.exists()


def test_part_already_complete_is_accepted_on_416(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    destination = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)

    download(server.url("/data.bin"), destination, progress=False)

    assert server.requests == [("/data.bin", f"bytes={len(PAYLOAD)}-")]
    assert destination.read_bytes() == PAYLOAD


def test_part_longer_than_file_restarts_on_416(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    destination = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD + b"extra")

    download(server.url("/data.bin"), destination, progress=False)

    assert server.requests[-1] == ("/data.bin", None)
    assert destination.read_bytes() == PAYLOAD


def test_cached_destination_skips_the_network(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    destination = tmp_path / "data.bin"
    digest = hashlib.sha256(PAYLOAD).hexdigest()

    download(server.url("/data.bin"), destination, sha256=digest, progress=False)
    assert len(server.requests) == 1

    assert download(server.url("/data.bin"), destination, progress=False) == destination
    assert download(server.url("/data.bin"), destination, sha256=digest, progress=False)
    assert len(server.requests) == 1


def test_sha256_mismatch_raises_and_leaves_nothing(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    destination = tmp_path / "data.bin"

    with pytest.raises(DownloadError, match="corrupted") as excinfo:
        download(server.url("/data.bin"), destination, sha256="0" * 64, progress=False)

    assert "\n" not in str(excinfo.value)
    assert not destination.exists()
    assert not (tmp_path / "data.bin.part").exists()


def test_404_says_not_found(server, tmp_path):
    with pytest.raises(DownloadError, match="not found") as excinfo:
        download(server.url("/missing.bin"), tmp_path / "missing.bin", progress=False)

    assert "\n" not in str(excinfo.value)
    assert not (tmp_path / "missing.bin").exists()


def test_unreachable_port_raises_one_line_error(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(DownloadError) as excinfo:
        download(f"http://127.0.0.1:{port}/data.bin", tmp_path / "data.bin", progress=False)

    message = str(excinfo.value)
    assert "\n" not in message
    assert f"127.0.0.1:{port}" in message
    assert not (tmp_path / "data.bin").exists()
