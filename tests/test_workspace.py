"""The workspace promises of the README: its test command is the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci_commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("uv run")
    ]
    assert ci_commands == ["uv run pytest"]
    assert re.search(r"^uv run pytest\b", readme, flags=re.MULTILINE)


def test_every_package_has_its_own_version_and_readme():
    for package in ("slm-tokenizer", "slm-model", "slm-train", "slm-cli"):
        folder = ROOT / "packages" / package
        assert (folder / "README.md").is_file()
        assert re.search(
            r'^version = "\d+\.\d+\.\d+"', (folder / "pyproject.toml").read_text(), re.M
        )
