"""RL on a person's own task: a JSONL of problems and a checker named by module path.

The task is the one test_train_rl.py learns in four steps (any reply holding
an "a" is right), written as a file and a checker, so the same tiny run must
raise the reward; the checker's misbehaviour and every wrong name get one line.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
from chat_runs import make_chat_run
from slm_train import ConfigError, RLConfig, Run, finetune_rl
from slm_train.chat_template import ChatTemplate
from slm_train.data.sources import CorpusError
from slm_train.finetune.rl import task_parts
from slm_train.finetune.rl_problems import file_parts

CHECKER = "def check(reply, answer):\n    return answer in reply\n"


def write_task(folder, count=40, checker=CHECKER, name="say_a.py"):
    """`count` problems whose answer is "a", in three phrasings, and the checker."""
    lines = []
    for i in range(count):
        if i % 3 == 2:  # a conversation with a system turn
            messages = [{"role": "system", "content": f"Case {i}."}]
            messages.append({"role": "user", "content": "Who are you?"})
            lines.append({"messages": messages, "answer": "a"})
        else:
            lines.append({"prompt": f"Who are you? {i}", "answer": "a"})
    problems = folder / "problems.jsonl"
    problems.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    (folder / name).write_text(checker)
    return problems


def config(tmp_path, **overrides) -> RLConfig:
    values = dict(
        task=str(tmp_path / "problems.jsonl"),
        checker=f"{tmp_path / 'say_a.py'}:check",
        base_run=str(tmp_path / "chat"),
        out_dir=str(tmp_path / "rl"),
        samples=8,
        max_reply_tokens=3,
        batch_size=2,
        grad_accum_steps=2,
        learning_rate=1e-1,
        max_steps=4,
        eval_interval=2,
        log_interval=1,
        precision="fp32",
        device="cpu",
    )
    return RLConfig(**(values | overrides))


def test_a_task_file_and_its_checker_raise_the_reward(tmp_path):
    make_chat_run(tmp_path / "chat")
    write_task(tmp_path)
    result = finetune_rl(config(tmp_path))
    assert result.before["pass_at_1"] < 0.5 and result.after["pass_at_1"] >= 0.75
    steps = [r for r in result.history if r["type"] == "step"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert steps[-1]["reward"] > steps[0]["reward"]  # the reward the training answers earned
    # The tokens counted are the answers' (up to 3 each, 2 x 2 prompts x 8 answers a step).
    assert 0 < steps[0]["tokens"] <= 2 * 2 * 8 * 3
    assert Run(result.run_dir).config["kind"] == "rl"


def test_a_held_out_fifth_by_prompt_split_in_halves(tmp_path):
    write_task(tmp_path, count=200)
    parts = file_parts(tmp_path / "problems.jsonl", f"{tmp_path / 'say_a.py'}:check")
    assert len(parts["train"]) + len(parts["val"]) + len(parts["test"]) == 200
    assert 20 <= len(parts["val"] + parts["test"]) <= 60  # about one in five
    assert abs(len(parts["val"]) - len(parts["test"])) <= 1
    train = {json.dumps(p.messages) for p in parts["train"]}
    assert not train & {json.dumps(p.messages) for p in parts["val"] + parts["test"]}
    assert parts["train"][0].check("a cat") == 1.0 and parts["train"][0].check("dog") == 0.0


def test_a_checker_named_as_a_module_from_this_folder(tmp_path, monkeypatch):
    write_task(tmp_path, name="rl_checker_module.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "rl_checker_module", raising=False)
    parts = file_parts("problems.jsonl", "rl_checker_module:check")
    assert parts["train"][0].check("banana") == 1.0


def test_a_template_runs_prompts_and_ends(tmp_path):
    """A hub model's own template renders the questions, and its eos_token ends a reply."""
    source = (
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}<|im_end|>{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    extra = {"kind": "chat", "prompt_format": "template", "chat_template": source}
    run = make_chat_run(tmp_path / "chat", extra=extra | {"eos_token": "<|im_end|>"})
    write_task(tmp_path)
    cfg = config(tmp_path)
    rendered = task_parts(run.tokenizer(), cfg, run.config, 64)["train"]
    problems = file_parts(cfg.task, cfg.checker)["train"]
    template = ChatTemplate.of(run.config)
    assert [p.ids for p in rendered] == [
        template.encode(run.tokenizer(), p.messages) for p in problems
    ]
    texts = [run.tokenizer().decode(p.ids) for p in rendered]
    assert any(t.startswith("[system] Case ") and t.endswith("[assistant] ") for t in texts)
    result = finetune_rl(config(tmp_path, max_steps=2))
    assert Run(result.run_dir).config["prompt_format"] == "template"
    assert Run(result.run_dir).config["chat_template"] == source


@pytest.mark.parametrize(
    ("checker", "spec", "message"),
    [
        (CHECKER, None, r"a task file needs the function that checks .*; give (--)?checker"),
        (CHECKER, "check", r"must name a function as module:function"),
        (CHECKER, "no_such_module_here:check", r"cannot import the checker .*No module named"),
        (CHECKER, "{dir}/missing.py:check", r"checker file .*missing.py does not exist"),
        (CHECKER, "{dir}/say_a.py:judge", r"has no function 'judge'"),
        ("import nothing_at_all\n", "{dir}/say_a.py:check", r"cannot import the checker"),
        ("def check(reply, answer):\n    return 1 / 0\n", "{dir}/say_a.py:check",
         r"the checker raised ZeroDivisionError: division by zero \(on the answer to .*:\d+\)"),
        ("def check(reply, answer):\n    return 'yes'\n", "{dir}/say_a.py:check",
         r"the checker returned 'yes' .* must return True, False or a reward between 0 and 1"),
    ],
)  # fmt: skip
def test_a_checker_that_cannot_work_gets_one_line(tmp_path, checker, spec, message):
    make_chat_run(tmp_path / "chat")
    write_task(tmp_path, checker=checker)
    spec = spec.format(dir=tmp_path) if spec else None
    with pytest.raises(ConfigError, match=message):
        finetune_rl(config(tmp_path, checker=spec, max_steps=1))


def test_bad_task_files_and_options_get_one_line(tmp_path):
    make_chat_run(tmp_path / "chat")
    (tmp_path / "say_a.py").write_text(CHECKER)
    bad = tmp_path / "problems.jsonl"
    for line, message in [
        ('{"prompt": "Hi"}', r"problems.jsonl:1: each problem needs 'prompt' .* and 'answer'"),
        ('{"prompt": "", "answer": 1}', r"'prompt' must be a non-empty text"),
        ('{"messages": [{"role": "assistant", "content": "x"}], "answer": 1}', r"user's turn"),
    ]:
        bad.write_text(line + "\n")
        with pytest.raises(CorpusError, match=message):
            finetune_rl(config(tmp_path))
    with pytest.raises(ConfigError, match=r"(--)?checker checks a task file's answers; .* drop"):
        config(tmp_path, task="counting").validate()


def test_lora_rl_keeps_the_format_and_merges_into_best(tmp_path):
    """With --lora-rank the base weights stay as they were until `best/` merges the adapters."""
    start = make_chat_run(tmp_path / "chat")
    write_task(tmp_path)
    result = finetune_rl(config(tmp_path, lora_rank=2, max_steps=2))
    before = start.load_model("best", "cpu").state_dict()
    after = Run(result.run_dir).load_model("best", "cpu").state_dict()
    assert after.keys() == before.keys()  # merged: no adapter weights left
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed and all(name.endswith(".weight") for name in changed)
    assert Run(result.run_dir).config["train"]["lora_rank"] == 2


def test_two_processes_sample_and_step_as_one_process_with_accumulation(tmp_path):
    """The answers are seeded by (seed, step, micro-batch), so with --devices 2 each process
    samples what one process with accumulation 2 samples for its half of the step."""
    make_chat_run(tmp_path / "chat")
    write_task(tmp_path)
    finetune_rl(config(tmp_path, out_dir=str(tmp_path / "one"), max_steps=2))
    finetune_rl(
        config(tmp_path, out_dir=str(tmp_path / "two"), max_steps=2, grad_accum_steps=1, devices=2)
    )
    one, two = (
        {r["step"]: r["loss"] for r in Run(tmp_path / name).metrics() if r["type"] == "step"}
        for name in ("one", "two")
    )
    assert sorted(one) == sorted(two) == [1, 2]
    assert two == pytest.approx(one, rel=1e-4, abs=1e-6)
