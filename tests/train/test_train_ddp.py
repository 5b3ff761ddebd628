"""Two processes under torchrun (gloo on CPU) train exactly like one process with accumulation."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from helpers import quick_config
from slm_train import read_checkpoint, train

SCRIPT = """
import json, os, sys
from pathlib import Path
from slm_train import TrainConfig, train
config = TrainConfig.from_dict(json.loads(sys.argv[1]))
result = train(config)
# The native threads still running once train() has returned (Linux names them in /proc).
tasks = Path("/proc/self/task")
threads = [(t / "comm").read_text().strip() for t in tasks.iterdir()] if tasks.is_dir() else []
# One file per process: lines printed by two processes at once can interleave.
report = Path(sys.argv[2]) / f"result-{os.environ['RANK']}.json"
report.write_text(json.dumps({"step": result.step, "tokens": result.tokens, "threads": threads}))
"""


def test_two_processes_equal_one_process_with_accumulation(tmp_path, corpus_file):
    common = dict(max_steps=6, eval_interval=3, batch_size=4)
    single = train(
        quick_config(
            tmp_path, corpus_file, out_dir=str(tmp_path / "one"), grad_accum_steps=4, **common
        )
    )

    config = quick_config(
        tmp_path, corpus_file, out_dir=str(tmp_path / "two"), grad_accum_steps=2, **common
    )
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        json.dumps(config.to_dict()),
        str(tmp_path),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = [json.loads((tmp_path / f"result-{rank}.json").read_text()) for rank in (0, 1)]
    assert all(r["step"] == 6 and r["tokens"] == single.tokens for r in results)
    # The process group was really torn down: no gloo thread lives on into the process's
    # exit, where a peer's exit could abort it ("terminate called without an active exception").
    assert not [t for r in results for t in r["threads"] if "gloo" in t], results

    # Rank 0 alone wrote the run: one line per step in metrics.jsonl.
    steps = [
        json.loads(x)["step"]
        for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
        if json.loads(x)["type"] == "step"
    ]
    assert steps == [1, 2, 3, 4, 5, 6]

    one = read_checkpoint(tmp_path / "one" / "last").build_model()
    two = read_checkpoint(tmp_path / "two" / "last").build_model()
    for (name, p), q in zip(one.state_dict().items(), two.state_dict().values(), strict=True):
        torch.testing.assert_close(q, p, atol=2e-5, rtol=1e-4, msg=name)
