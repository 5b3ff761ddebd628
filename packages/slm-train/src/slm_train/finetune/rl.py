"""Reinforcement learning on checkable tasks, on the shared engine (nanochat's RL stage).

Where it sits: after `finetune chat`. Imitation taught the model what an
answer looks like; RL rewards it for answers a program checks as right (the
built-in tasks of chat/checkable.py, or a person's problems and checker:
rl_problems.py), with the advantage and loss of policy_gradient.py (nanochat's
simplified GRPO: no critic, no KL; that module says why).

The sampling happens inside the step: `batch` names the prompts and the step,
and `loss` samples k answers per prompt from the current weights with the one
generation engine (`slm_model.generate`, KV cache, stopping where the run's
format ends a reply), checks them, and returns the policy-gradient loss on the
answer tokens; the step records carry the mean reward of those answers. The
sampler is seeded by (seed, step, micro-batch), so a resumed run draws the
same answers as an uninterrupted one.

Problems come from the tasks' training split; validation and testing use
disjoint halves of their held-out problems, answered k times at the same
temperature with a fixed seed: pass@1 is the share of right answers (reward
1), pass@k the share of problems with at least one. The best weights have the
highest pass@1.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from slm_model import generate
from slm_tokenizer import BPETokenizer
from torch import nn

from ..chat.checkable import TASKS
from ..chat_template import ChatTemplate
from ..config import ConfigError, RLConfig
from ..engine import Batch, FitResult, Task
from ..launch import on_devices
from ..lora import apply_lora, merge_lora
from ..naming import setting
from ..prompts import CONVERSATIONAL, encode_messages, prompt_settings, reply_ends
from ..report import Reporter
from ..run import Run
from ..runtime import resolve_precision
from .base import (
    IGNORE_INDEX,
    EpochOrder,
    append_metrics,
    describe_splits,
    disable_dropout,
    fit_then_test,
    load_base,
    loop_config,
    open_finetune_run,
    run_finetuning,
    trainable_summary,
)
from .dpo_loss import sequence_logprobs
from .policy_gradient import advantages, pass_at, policy_gradient_loss
from .rl_problems import Problem, builtin_parts, file_parts


@dataclass(frozen=True)
class Prompt:
    ids: list[int]  # the question, rendered up to the open assistant turn
    check: Callable[[str], float]  # a reply -> its reward, 0 to 1


def task_names(name: str) -> list[str]:
    """The built-in tasks `--task` names: one of TASKS, or all of them."""
    if name == "all":
        return list(TASKS)
    if name not in TASKS:
        raise ConfigError(
            f"unknown {setting('task')} {name!r}; choose one of: {', '.join(TASKS)}, all, "
            "or give a .jsonl file of problems with --checker"
        )
    return [name]


class Sampler:
    """k answers to a prompt from the current weights, and their rewards."""

    def __init__(self, tokenizer: BPETokenizer, config: RLConfig, run_config: dict) -> None:
        self.tokenizer, self.config = tokenizer, config
        self.ends = reply_ends(tokenizer, run_config["prompt_format"], ChatTemplate.of(run_config))

    def answers(self, model: nn.Module, prompt: Prompt, generator: torch.Generator) -> list:
        """Each answer's ids, up to and with the token that ended it, where one did."""
        model = getattr(model, "module", model)  # DDP: sample with the plain model
        device = next(model.parameters()).device
        room = min(self.config.max_reply_tokens, model.config.block_size - len(prompt.ids))
        ids = torch.tensor([prompt.ids] * self.config.samples, device=device)
        with torch.no_grad():
            out = generate(
                model, ids, room, self.config.temperature, eos_id=self.ends[0], generator=generator
            )
        return [self.cut(row) for row in out[:, len(prompt.ids) :].tolist()]

    def cut(self, row: list[int]) -> list[int]:
        end = next((i for i, token in enumerate(row) if token in self.ends), None)
        return row if end is None else row[: end + 1]

    def rewards(self, prompt: Prompt, answers: list) -> list[float]:
        return [
            prompt.check(self.tokenizer.decode([i for i in a if i not in self.ends]))
            for a in answers
        ]


def generator_for(device: torch.device, *seeds: int) -> torch.Generator:
    """A sampler seeded by where it is used (the step and micro-batch): exact resume.

    The seed is a checksum of the numbers, the same in every process and Python."""
    return torch.Generator(device=device).manual_seed(zlib.crc32(repr(seeds).encode()))


def collate_answers(rows: list[tuple[list[int], list[int]]], pad_id: int):
    """Inputs and targets for prompt + answer rows; targets -100 except on the answer."""
    longest = max(len(p) + len(a) for p, a in rows) - 1
    inputs = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long)
    for row, (prompt, answer) in enumerate(rows):
        ids = prompt + answer
        inputs[row, : len(ids) - 1] = torch.tensor(ids[:-1])
        targets[row, len(prompt) - 1 : len(ids) - 1] = torch.tensor(answer)
    return inputs, targets


class RLTask(Task):
    """Sample, check, and step towards the answers that beat their siblings."""

    def __init__(self, parts: dict[str, list[Prompt]], sampler: Sampler, micro: int, pad_id: int):
        self.parts, self.sampler, self.pad_id = parts, sampler, pad_id
        self.config = config = sampler.config
        self.order = EpochOrder(len(parts["train"]), config.batch_size, micro, config.seed)
        self.seen = dict.fromkeys(("reward", "answers", "tokens"), 0)  # since the last record

    @property
    def eval_steps(self) -> float:
        """An evaluation's cost in training steps: its prompts over a step's prompts."""
        return len(self.parts["val"]) / (self.config.batch_size * self.config.grad_accum_steps) + 1

    def batch(self, step: int, index: int) -> Batch:
        """The prompts' rows and where the step is (the answers are sampled in `loss`)."""
        return torch.tensor(self.order.rows(step, index)), torch.tensor([step, index])

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        rows, (step, index) = batch[0].tolist(), batch[1].tolist()
        device = batch[0].device
        generator = generator_for(device, self.config.seed, step, index)
        pairs, rewards = [], []
        for row in rows:
            prompt = self.parts["train"][row]
            answers = self.sampler.answers(model, prompt, generator)
            rewards.append(self.sampler.rewards(prompt, answers))
            pairs += [(prompt.ids, answer) for answer in answers]
        inputs, targets = collate_answers(pairs, self.pad_id)
        self.seen["reward"] += sum(map(sum, rewards))
        self.seen["answers"] += len(pairs)
        self.seen["tokens"] += int((targets != IGNORE_INDEX).sum())
        logps = sequence_logprobs(model(inputs.to(device)), targets.to(device))
        advantage = advantages(torch.tensor(rewards, dtype=torch.float, device=device))
        return policy_gradient_loss(logps, advantage.flatten())

    def count_tokens(self, batches: list[Batch]) -> int:
        """The answer tokens sampled and trained on (a batch holds only prompt numbers)."""
        tokens, self.seen["tokens"] = self.seen["tokens"], 0
        return tokens

    def step_metrics(self) -> dict[str, float]:
        """The mean reward of the answers sampled since the last step record."""
        reward, answers = self.seen["reward"], self.seen["answers"]
        self.seen["reward"] = self.seen["answers"] = 0
        return {"reward": reward / answers} if answers else {}

    def measure(self, model: nn.Module, part: str) -> dict[str, float]:
        """pass@1 and pass@k on a part, sampled with a fixed seed (comparable over time)."""
        device = next(model.parameters()).device
        generator = generator_for(device, self.config.seed, -1)
        correct = [
            self.sampler.rewards(prompt, self.sampler.answers(model, prompt, generator))
            for prompt in self.parts[part]
        ]
        return pass_at(torch.tensor(correct) >= 1) if correct else {}

    def evaluate(self, model: nn.Module, step: int) -> tuple[dict[str, float], str | None]:
        metrics: dict[str, float] = {"epoch": round(step / self.order.steps_per_epoch, 3)}
        metrics |= {f"val_{k}": v for k, v in self.measure(model, "val").items()}
        return metrics, None

    def score(self, metrics: dict[str, float]) -> float:
        return -metrics.get("val_pass_at_1", 0.0)  # lower is better: the highest pass@1

    def export(self, model: nn.Module) -> nn.Module:
        return merge_lora(deepcopy(model))


@dataclass
class RLResult:
    run_dir: Path
    history: list[dict[str, Any]]
    before: dict[str, float] | None  # pass@1, pass@k on the test problems: the starting model
    after: dict[str, float] | None  # and the best weights
    interrupted: bool = False


@on_devices
def finetune_rl(
    config: RLConfig,
    *,
    force: bool = False,
    resume: bool = False,
    reporter: Reporter | None = None,
) -> RLResult:
    """Reinforce a chat run's right answers on checkable tasks; Ctrl-C saves `last/`."""
    return run_finetuning(_finetune, config, force=force, resume=resume, reporter=reporter)


def require_chat_run(run: Run) -> None:
    if run.config.get("prompt_format") not in CONVERSATIONAL:
        raise ConfigError(
            f"{run.path} is not a chat run; RL asks questions in a conversation, so start "
            "from a run made by finetune chat (or an imported chat model)"
        )


def task_parts(tokenizer, config: RLConfig, run_config: dict, block_size: int) -> dict:
    """Training, validation and test prompts, rendered in the run's format; only prompts
    that leave room for an answer in the context."""
    if config.task_file:
        problems = file_parts(config.task, config.checker)
    else:
        names = task_names(config.task)
        problems = builtin_parts(names, config.problems, config.eval_problems, config.seed)
    template = ChatTemplate.of(run_config)
    fmt = run_config["prompt_format"]

    def render(problem: Problem) -> Prompt:
        return Prompt(encode_messages(tokenizer, fmt, problem.messages, template), problem.check)

    parts = {name: [render(p) for p in part] for name, part in problems.items()}
    parts = {name: [p for p in part if len(p.ids) < block_size] for name, part in parts.items()}
    if not parts["train"]:
        raise ConfigError(f"no training problem fits in the model's context ({block_size} tokens)")
    return parts


def task_title(config: RLConfig) -> str:
    if config.task_file:
        return f"{config.task}, checked by {config.checker}"
    return ", ".join(task_names(config.task))


def _finetune(config, dist, force, resume, reporter) -> RLResult:
    device = dist.resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    start = Run(config.base_run)
    require_chat_run(start)
    model, tokenizer, base = load_base(config, device)
    disable_dropout(model)  # log-probabilities compared without noise
    parts = task_parts(tokenizer, config, start.config, model.config.block_size)
    pad_id = tokenizer.eot_id if tokenizer.eot_id is not None else 0  # never a target
    sampler = Sampler(tokenizer, config, start.config)
    task = RLTask(parts, sampler, config.grad_accum_steps * dist.world_size, pad_id)
    before = task.measure(model, "test") if dist.is_main else None  # the starting model
    config = loop_config(config, task.order)
    if config.lora_rank:
        torch.manual_seed(config.seed)
        apply_lora(model, config.lora_rank, config.lora_alpha)
    extra = {"kind": "rl", **prompt_settings(start.config)}
    splits = (parts["train"], parts["val"], parts["test"])
    run = open_finetune_run(
        config, model, tokenizer, base, splits, extra, resume=resume, force=force, dist=dist
    )
    reporter.start(
        {
            "task": f"RL on {task_title(config)} ({config.samples} answers per prompt)",
            "problems": describe_splits(splits),
            "trainable": trainable_summary(
                model, f"LoRA rank {config.lora_rank}" if config.lora_rank else "all"
            ),
            "run": str(run.path),
        }
    )
    return fit_then_test(
        model,
        task,
        config,
        run,
        lambda result: _test(run, task, result, before, device),
        lambda result: RLResult(run.path, result.history, None, None, result.interrupted),
        resume=resume,
        device=device,
        precision=precision,
        dist=dist,
        reporter=reporter,
    )


def _test(run: Run, task: RLTask, result: FitResult, before, device) -> RLResult:
    """pass@1 and pass@k of the starting and the best weights on the test problems."""
    if not task.parts["test"]:
        return RLResult(run.path, result.history, None, None)
    after = task.measure(run.load_model("best", device), "test")
    append_metrics(run, {"type": "test"} | {f"test_{k}": v for k, v in after.items()})
    return RLResult(run.path, result.history, before, after)
