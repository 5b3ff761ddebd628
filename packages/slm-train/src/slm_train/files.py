"""Small file helpers shared by data preparation, checkpoints and runs.

The atomic writers live in `slm_tokenizer.files` (one copy for every package)
and are re-exported here under the names slm-train has always used.
"""

from __future__ import annotations

import hashlib
import json
import os

from slm_tokenizer.files import write_bytes_atomically, write_text_atomically

__all__ = [
    "sha256_file",
    "write_bytes_atomically",
    "write_jsonl_atomically",
    "write_text_atomically",
]


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_jsonl_atomically(path: str | os.PathLike, records: list) -> None:
    """One JSON object per line (metrics, test responses), written atomically."""
    write_text_atomically(path, "".join(json.dumps(record) + "\n" for record in records))
