"""docs/serving.md's commands, run as written against `slm-cli serve` in its own process.

The page's `uv run slm-cli serve` line starts the real command (on a free
port instead of 8000), each curl line and the Python example run against it,
and Ctrl-C (SIGINT) must then end it cleanly: exit status 0, no traceback.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from slm_cli.main import app
from typer.testing import CliRunner

PAGE = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def page_lines(prefix: str) -> list[str]:
    return re.findall(rf"^{re.escape(prefix)}.*$", PAGE.read_text(encoding="utf-8"), re.MULTILINE)


def python_example() -> str:
    return re.search(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_pages_commands_work_and_ctrl_c_stops_cleanly(chat_run, tmp_path):
    (tmp_path / "runs").mkdir()
    shutil.copytree(chat_run, tmp_path / "runs" / "chat")
    port, log = free_port(), tmp_path / "stderr.txt"
    serve, *quantized = page_lines("uv run slm-cli serve --run")
    assert all("--quantize" in line for line in quantized)  # tests/serve/test_serve_quantize.py
    command = [sys.executable, "-m", "slm_cli", *shlex.split(serve)[3:], "--port", str(port)]
    server = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),  # a file: uvicorn's log must never fill a pipe nobody reads
        text=True,
        # A shell's background job starts with SIGINT ignored; Ctrl-C must reach this one.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in server.stdout:  # "Serving ... at URL" comes once it listens
            if line.startswith("Serving "):
                break
        else:
            pytest.fail("the server ended before it listened")
        run_curl_lines(port)
        example = python_example().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        exec(compile(example, str(PAGE), "exec"), {})  # raises if any call fails
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)
    rest = log.read_text()
    assert server.returncode == 0, rest
    assert "Traceback" not in rest and "Application shutdown complete" in rest


def run_curl_lines(port: int) -> None:
    lines = page_lines("curl ")
    assert len(lines) == 4
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    for line in lines:
        args = shlex.split(line.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
        out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
        if '"stream": true' in line:
            events = [e for e in out.split("\n\n") if e]
            assert events[-1] == "data: [DONE]"
            assert all(e.startswith("data: ") for e in events)
        else:
            assert "error" not in json.loads(out), out


def test_another_host_without_a_key_warns_in_one_line(tmp_path):
    result = CliRunner().invoke(
        app, ["serve", "--host", "0.0.0.0", "--run", str(tmp_path / "none")]
    )
    output = result.output  # stdout and stderr
    assert result.exit_code == 1
    warning = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "--api-key" in warning[0]
    assert "Traceback" not in output and "no run directory" in output


def test_the_page_lists_every_option():
    from dataclasses import fields

    from slm_serve import ServeConfig

    table = PAGE.read_text(encoding="utf-8").split("## Options")[1]
    for field in fields(ServeConfig):
        assert f"`--{field.name.replace('_', '-')}`" in table


def test_a_busy_port_is_one_line_before_the_model_loads(chat_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--run", str(chat_run), "--port", str(port)])
    assert result.exit_code == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in result.output
    assert "--port" in result.output and "Traceback" not in result.output
