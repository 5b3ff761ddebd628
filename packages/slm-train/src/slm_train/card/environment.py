"""Where a report was made: the machine, the library versions and the git commit.

A number from a run means little without the machine that made it (a CPU
laptop and an H100 differ a thousandfold in tokens per second) and the code
that made it, so the report card opens with them, as nanochat's does. They
describe the machine the report is written on, which is the one that trained
the run when `slm-cli report` follows `slm-cli train`.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("slm-tokenizer", "slm-model", "slm-train", "slm-cli", "slm-eval")


def machine() -> str:
    """ "Linux x86_64, 16 CPUs (AMD EPYC 7763), 62.8 GiB memory, NVIDIA H100 (79.1 GiB)"."""
    parts = [f"{platform.system()} {platform.machine()}", f"{os.cpu_count()} CPUs{_cpu_name()}"]
    memory = _memory_bytes()
    if memory:
        parts.append(f"{memory / 2**30:.1f} GiB memory")
    parts.append(_accelerator())
    return ", ".join(parts)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return f" ({line.split(':', 1)[1].strip()})"
    except OSError:
        pass
    return f" ({platform.processor()})" if platform.processor() else ""


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _accelerator() -> str:
    import torch

    if torch.cuda.is_available():
        names = []
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            names.append(f"{properties.name} ({properties.total_memory / 2**30:.1f} GiB)")
        return ", ".join(names)
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Apple GPU (MPS)"
    return "no GPU"


def software() -> str:
    """Python, torch (and its CUDA) and every slm package installed, with versions."""
    import torch

    cuda = f", CUDA {torch.version.cuda}" if torch.version.cuda else ""
    slm = ", ".join(f"{name} {_version(name)}" for name in PACKAGES if _version(name))
    return f"Python {platform.python_version()}, torch {torch.__version__}{cuda}; {slm}"


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


SOURCE = Path(__file__).resolve().parent  # slm-train's code: in a clone, inside its checkout


def git_commit(folder: str | os.PathLike = SOURCE) -> str:
    """The commit of the slm checkout this code runs from (and whether it has uncommitted
    changes); "not a git checkout" for an installed wheel."""
    try:
        commit = _git(folder, "rev-parse", "--short=12", "HEAD")
        dirty = _git(folder, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return f"{commit} (with uncommitted changes)" if dirty else commit


def _git(folder: str | os.PathLike, *arguments: str) -> str:
    result = subprocess.run(
        ["git", *arguments], cwd=folder, capture_output=True, text=True, timeout=10, check=True
    )
    return result.stdout.strip()
