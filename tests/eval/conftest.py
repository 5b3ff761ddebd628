"""Fixtures for the lm-eval tests: a tiny chat run, its transformers export, and three
lm-eval tasks whose data are JSONL files written here (no download, no hub)."""

from __future__ import annotations

import pytest
from harness_tasks import write_tasks

pytest.importorskip("lm_eval")


@pytest.fixture(scope="module")
def lm_eval_setup(tmp_path_factory, monkeypatch_module):
    """{"pre-trained" | "chat": (run folder, its hf export)}, and the task folder."""
    from chat_runs import make_chat_run
    from slm_train import export_hf

    folder = tmp_path_factory.mktemp("lm-eval")
    runs = {}
    for kind, extra in (("pre-trained", {}), ("chat", None)):
        run = make_chat_run(folder / kind, block_size=64, extra=extra)
        runs[kind] = run.path, export_hf(run, folder / f"{kind}-hf")
    return runs, write_tasks(folder / "tasks", folder / "datasets-cache")


@pytest.fixture(scope="module")
def monkeypatch_module():
    """Offline, as everywhere in the tests: lm-eval's datasets and transformers never call out."""
    patch = pytest.MonkeyPatch()
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        patch.setenv(name, "1")
    yield patch
    patch.undo()
