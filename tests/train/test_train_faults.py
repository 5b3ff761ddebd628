"""Runs survive misuse: a second writer, a killed writer, damaged checkpoints (advice followed)."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time

import pytest
import torch
from helpers import checkpoint_writer, lock_holder, quick_config
from slm_model import GPTModel, get_gpt_config
from slm_train import (
    CheckpointError,
    CorpusError,
    InstructConfig,
    Run,
    RunError,
    finetune_instructions,
    read_checkpoint,
    train,
)
from slm_train.checkpoint import recover, save_training
from slm_train.lock import RunLock, RunLockedError


def forkserver():
    """Processes forked from one server that imported torch once: milliseconds each, not seconds.

    torch._dynamo is what the first optimizer imports (seconds), so it is preloaded too.
    """
    context = multiprocessing.get_context("forkserver")
    preload = ["torch", "torch._dynamo", "slm_model", "slm_train.lock", "helpers"]
    context.set_forkserver_preload(preload)
    return context


def hold_lock(folder):
    """A process that holds the run's lock; returns once it says it does (an event, not a sleep)."""
    context = forkserver()
    events = context.SimpleQueue()
    process = context.Process(target=lock_holder, args=(folder, events), daemon=True)
    process.start()
    assert events.get() == "locked"
    return process


def stop(process) -> None:
    os.kill(process.pid, signal.SIGKILL)  # kill -9: the OS drops its locks
    process.join()


def test_a_second_writer_is_refused_and_a_dead_one_blocks_nobody(tmp_path, corpus_file):
    config = quick_config(tmp_path, corpus_file, max_steps=4, eval_interval=2)
    holder = hold_lock(tmp_path / "run")
    try:
        with pytest.raises(RunLockedError, match=rf"being written by process {holder.pid} on"):
            train(config)
    finally:
        stop(holder)
    assert train(config).step == 4
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.name.startswith("writer")) == [
        "writer.lock"
    ]  # writer.json names the holder only while one holds it


def test_resume_while_another_process_trains_is_refused(tmp_path, corpus_file):
    config = quick_config(tmp_path, corpus_file, max_steps=4, eval_interval=2)
    train(config)
    holder = hold_lock(tmp_path / "run")
    try:
        with pytest.raises(RunError, match="being written by process"):
            train(config.replace(max_steps=8), resume=True)
    finally:
        stop(holder)
    assert train(config.replace(max_steps=8), resume=True).step == 8


def test_corrupt_optimizer_state_advice_works_when_followed(tmp_path, corpus_file):
    config = quick_config(tmp_path, corpus_file, max_steps=6, eval_interval=3)
    train(config)
    optimizer = tmp_path / "run" / "last" / "optimizer.pt"
    data = bytearray(optimizer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    optimizer.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"delete the folder (\S+)") as error:
        train(config.replace(max_steps=9), resume=True)
    folder = error.value.args[0].split("delete the folder ")[1].split(" ")[0]
    assert folder == str(tmp_path / "run" / "last")
    import shutil

    shutil.rmtree(folder)  # exactly what the message says
    messages = []

    class Collect:
        def __getattr__(self, name):
            return messages.append if name == "message" else lambda *a: None

    resumed = train(config.replace(max_steps=9), resume=True, reporter=Collect())
    assert resumed.step == 9
    assert any("fresh optimizer" in m for m in messages), messages


def test_corrupt_best_advice_works_when_followed(tmp_path, corpus_file):
    config = quick_config(tmp_path, corpus_file, max_steps=4, eval_interval=2)
    result = train(config)
    weights = tmp_path / "run" / "best" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7])
    with pytest.raises(CheckpointError, match="delete the folder"):
        Run(result.run_dir).load_model("best")
    import shutil

    shutil.rmtree(tmp_path / "run" / "best")
    fallback = Run(result.run_dir).load_model("best")  # as generate does: best/ is gone
    last = read_checkpoint(tmp_path / "run" / "last").build_model()
    assert fallback.state_dict().keys() == last.state_dict().keys()
    for name, tensor in last.state_dict().items():
        assert torch.equal(fallback.state_dict()[name], tensor), name


def test_a_changed_config_json_is_refused_until_restored(tmp_path, corpus_file):
    config = quick_config(tmp_path, corpus_file, max_steps=2, eval_interval=2, warmup_steps=1)
    run_dir = train(config).run_dir
    path = run_dir / "config.json"
    original = path.read_text()
    changed = json.loads(original)
    layers = changed["model"]["n_layer"]
    changed["model"]["n_layer"] = layers + 1  # still valid JSON, and a model the weights do not fit
    path.write_text(json.dumps(changed, indent=2) + "\n")
    message = r"config\.json was changed or damaged \(its checksum does not match\); restore it"
    with pytest.raises(RunError, match=message):
        Run(run_dir)
    with pytest.raises(RunError, match=message):
        train(config.replace(max_steps=4), resume=True)
    path.write_text(original)  # what the message says
    assert Run(run_dir).load_model().config.n_layer == layers


def test_kill_9_during_checkpoint_writes_leaves_a_valid_checkpoint(tmp_path):
    """Fault injection: a writer saving checkpoints in a loop, killed at 30 random moments.

    The writers come from the forkserver, so a trial costs milliseconds.
    """
    run = tmp_path / "run"
    context = forkserver()
    rng = random.Random(0)
    step = 0
    for trial in range(30):
        events = context.SimpleQueue()
        writer = context.Process(target=checkpoint_writer, args=(run, step, events), daemon=True)
        writer.start()
        assert events.get() == "ready"
        if trial % 2 or trial == 0:  # these wait for a completed write first (an event)
            assert events.get() == "saved"
        time.sleep(rng.uniform(0, 0.05))  # then a random moment inside the next writes
        stop(writer)
        with RunLock(run):  # what the next run does first: take the lock, clean up
            pass
        leftovers = [p.name for p in run.iterdir() if p.name.startswith(".")]
        assert leftovers == [], leftovers
        checkpoint = read_checkpoint(run / "last")  # complete and verified by its manifest
        assert checkpoint.state["step"] >= step
        step = checkpoint.state["step"]
        weights = checkpoint.build_model().tok_emb.weight
        assert torch.equal(weights, torch.full_like(weights, float(step)))  # not a mix of two
    assert step > 0  # the odd trials saw writes complete


def test_a_failed_finetune_leaves_no_run_behind(tmp_path, corpus_file):
    base = train(quick_config(tmp_path, corpus_file, max_steps=2, model={"block_size": 32}))
    data = tmp_path / "long.jsonl"
    data.write_text(('{"instruction": "' + "word " * 200 + '", "output": "x"}\n') * 20)
    config = InstructConfig(
        data=str(data), base_run=str(base.run_dir), out_dir=str(tmp_path / "inst")
    )
    with pytest.warns(UserWarning), pytest.raises(CorpusError, match="leaves room"):
        finetune_instructions(config)
    assert not (tmp_path / "inst").exists()  # so the next try needs no --force


def test_checkpoint_files_get_the_plain_file_mode(tmp_path, corpus_file):
    result = train(quick_config(tmp_path, corpus_file, max_steps=2, eval_interval=2))
    mask = os.umask(0)
    os.umask(mask)
    for path in (result.run_dir / "last").iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path


def test_recover_puts_back_the_previous_checkpoint(tmp_path):
    """Killed between the two renames: only .last.old/ exists; recover makes it last/ again."""
    model = GPTModel(get_gpt_config("tiny", block_size=16))
    optimizer = torch.optim.AdamW(model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    save_training(tmp_path / "last", model, {"step": 5}, optimizer, scaler)
    (tmp_path / "last").rename(tmp_path / ".last.old")
    (tmp_path / ".last.tmp-99999").mkdir()
    (tmp_path / ".last.tmp-99999" / "model.safetensors").write_bytes(b"half")
    recover(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert read_checkpoint(tmp_path / "last").state["step"] == 5
