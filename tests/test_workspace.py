"""The workspace promises of the README: its test command is the one CI runs."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci_commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("uv run")
    ]
    assert ci_commands == ["uv run ruff check", "uv run pytest"]
    assert re.search(r"^uv run pytest\b", readme, flags=re.MULTILINE)


def test_every_package_has_its_own_version_and_readme():
    for package in ("slm-tokenizer", "slm-model", "slm-train", "slm-serve", "slm-cli"):
        folder = ROOT / "packages" / package
        assert (folder / "README.md").is_file()
        assert re.search(
            r'^version = "\d+\.\d+\.\d+"', (folder / "pyproject.toml").read_text(), re.M
        )


PACKAGES = {"slm_tokenizer": 0, "slm_model": 1, "slm_train": 2, "slm_serve": 3, "slm_cli": 4}


def module_imports(name: str, path: Path) -> set[str]:
    """Every module that `name` imports, also lazily inside functions (not for TYPE_CHECKING)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in ast.walk(node):
            if isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = package[: len(package) - child.level + 1] if child.level else []
                target = ".".join([*base, *([child.module] if child.module else [])])
                names.add(target)
                names.update(f"{target}.{alias.name}" for alias in child.names)
    return names


def workspace_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        source = ROOT / "packages" / package.replace("_", "-") / "src"
        for path in (source / package).rglob("*.py"):
            name = ".".join(path.relative_to(source).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def test_imports_point_one_way_and_have_no_cycles():
    modules = workspace_modules()
    graph = {}
    for name, path in modules.items():
        package = name.split(".")[0]
        targets = {t for t in module_imports(name, path) if t in modules and t != name}
        for target in targets:
            assert PACKAGES[target.split(".")[0]] <= PACKAGES[package], (name, target)
        assert not (package == "slm_model" and any(t.startswith("slm_tokenizer") for t in targets))
        graph[name] = targets
    visiting, done = set(), set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in visiting, f"import cycle: {' -> '.join([*path, node])}"
        if node in done:
            return
        visiting.add(node)
        for target in graph[node]:
            # A package's __init__ importing its own submodules is not a cycle.
            if not target.startswith(node + "."):
                visit(target, [*path, node])
        visiting.discard(node)
        done.add(node)

    for node in graph:
        visit(node, [])


def test_cli_help_and_version_do_not_import_torch():
    for args in (["--help"], ["--version"], ["train", "--help"]):
        completed = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "slm_cli", *args],
            capture_output=True,
            text=True,
            check=True,
        )
        imported = {line.split("|")[-1].strip() for line in completed.stderr.splitlines()}
        assert "torch" not in imported and "slm_model" not in imported, args


def test_gguf_check_without_llama_cpp_says_how_to_get_it_before_training(monkeypatch):
    """bench/gguf_check.py needs llama-cpp-python: without it, one line saying how to install
    it, before minutes of training its tiny runs (not a ModuleNotFoundError at the end)."""
    if importlib.util.find_spec("llama_cpp") is not None:
        pytest.skip("llama-cpp-python is installed here")
    spec = importlib.util.spec_from_file_location("gguf_check", ROOT / "bench" / "gguf_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking for llama_cpp")

    monkeypatch.setattr(module, "tiny_run", no_training)
    monkeypatch.setattr(sys, "argv", ["gguf_check.py"])
    with pytest.raises(SystemExit) as stopped:
        module.main()
    message = str(stopped.value.code)
    assert message.startswith("error: llama-cpp-python is not installed") and "\n" not in message
    assert "uv run --with llama-cpp-python python bench/gguf_check.py" in message


def readme_commands() -> list[str]:
    """The shell commands that the READMEs and docs/ pages show (`$ ` prompts stripped,
    continuations joined)."""
    commands = []
    pages = ["README.md", "packages/*/README.md", "docs/*.md"]
    for readme in sorted(path for pattern in pages for path in ROOT.glob(pattern)):
        text = readme.read_text(encoding="utf-8").replace("\\\n", " ")
        for line in text.splitlines():
            line = line.strip().removeprefix("$ ")
            if re.match(r"(uv run )?(slm-cli|torchrun|python -m)\b", line):
                commands.append(line.split(" #")[0])
    return commands


def test_readme_commands_use_only_runs_that_readme_commands_make():
    """A reader can type the READMEs' commands in order: every `runs/NAME` one of them reads
    is made by another with `--out runs/NAME` (timestamped names come from `slm-cli train`)."""
    commands = readme_commands()
    made = {m for c in commands for m in re.findall(r"--out (runs/[\w.-]+)", c)}
    used = {
        m
        for c in commands
        for m in re.findall(r"(?<!--out )\b(runs/[\w.-]+)", c)
        if not re.match(r"runs/\d{8}-", m)
    }
    assert used - made == set()


def test_what_readme_commands_write_is_ignored_by_git():
    """`git status` stays clean after following the READMEs in a clone."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    written = {m for c in readme_commands() for m in re.findall(r"--out (\S+)", c)}
    assert written, "the READMEs show no --out"
    probes = [f"{path.rstrip('/')}/x" if "." not in Path(path).name else path for path in written]
    checked = subprocess.run(
        ["git", "check-ignore", "--no-index", *probes], cwd=ROOT, capture_output=True, text=True
    )
    assert set(checked.stdout.split()) == set(probes)


def test_links_in_the_readmes_and_docs_point_to_files():
    """Moving detail from the README into docs/ must not leave a link pointing nowhere."""
    pages = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("packages/*/README.md")]
    broken = [
        f"{page.relative_to(ROOT)}: {link}"
        for page in pages
        for link in re.findall(r"\]\(([^)#\s]+)", page.read_text(encoding="utf-8"))
        if not link.startswith(("http://", "https://")) and not (page.parent / link).exists()
    ]
    assert broken == []
