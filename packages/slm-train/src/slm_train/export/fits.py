"""Whether a transformers checkpoint fits in memory, known before a byte of it is loaded.

A safetensors file starts with a JSON header that lists every tensor's dtype,
shape and byte range, so the size of a model is known from a few kilobytes
(and, from the hub, after downloading only what import needs). `import_hf`
asks this module first, so that importing a model too large for the machine
stops with one line naming both sizes instead of being killed half-way.

The peak of an import is the checkpoint's tensors (read from the mmapped file
in their own dtype), copies of the fused ones (queries, keys and values; gate
and up) in that dtype, and slm's float32 model they are loaded into, which the
run's checkpoint is then written from. `peak_bytes` adds those up, and 10 %
more is asked for, for everything else the process holds.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

MARGIN = 1.1


@dataclass(frozen=True)
class WeightsSize:
    bytes: int  # as stored
    elements: int  # numbers in all tensors
    dtypes: frozenset[str]  # safetensors' names: "BF16", "F32", ...

    @classmethod
    def at_least(cls, stored: int) -> WeightsSize:
        """The smallest model `stored` bytes of weights can be (all float32), for a check
        before downloading, when only the files' sizes are known: it never refuses wrongly."""
        return cls(stored, stored // 4, frozenset())

    @property
    def peak_bytes(self) -> int:
        """What importing holds at once: the tensors, their fused copies, a float32 model."""
        return 2 * self.bytes + 4 * self.elements


def weights_size(files: list[Path]) -> WeightsSize:
    """The sizes of the tensors in these safetensors files, read from their headers only."""
    total = elements = 0
    dtypes: set[str] = set()
    for path in files:
        for name, entry in _header(path).items():
            if name == "__metadata__":
                continue
            start, end = entry["data_offsets"]
            total += end - start
            elements += math.prod(entry["shape"])
            dtypes.add(entry["dtype"])
    return WeightsSize(total, elements, frozenset(dtypes))


def _header(path: Path) -> dict:
    try:
        with open(path, "rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            return json.loads(file.read(length))
    except (OSError, struct.error, ValueError) as error:
        raise ValueError(f"{path} is not a readable safetensors file ({error})") from None


def available_memory() -> int | None:
    """Bytes the system can give this process now (MemAvailable), or None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def check_fits(name: str, size: WeightsSize, available: int | None = None) -> None:
    """Refuse, in one line with both sizes, a model whose import would not fit in memory."""
    available = available_memory() if available is None else available
    needed = int(size.peak_bytes * MARGIN)
    if available is not None and needed > available:
        what = f"{size.elements / 1e6:,.1f}M parameters" if size.dtypes else "weights"
        raise ValueError(
            f"{name} does not fit in memory: its {what} ({_gb(size.bytes)} as stored) need "
            f"about {_gb(needed)} to import, and "
            f"{_gb(available)} is available; close other programs or use a machine with more "
            "memory"
        )


def _gb(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.1f} MB"
