"""Preference tuning with DPO, on the shared engine (the book's bonus to chapter 7).

Where it sits: after `finetune chat` or `finetune instruct`. Imitation taught
the model to answer; DPO teaches it which of two answers people prefer,
from pairs (preferences.py), with the loss of dpo_loss.py.

The reference model is the starting run itself, frozen. Its log-probability
of every reply is computed once, before training, without gradients and
without dropout (`pair_logprobs`), and travels in each batch as two numbers
per pair. So no second model is kept in memory, and no step pays a
second forward pass; with LoRA that is the same as disabling the adapters,
since the reference is read before they exist. Resume reads the reference
the same way, from the starting run, so it is exact.

Batches hold B chosen rows, then B rejected rows, then the reference's
(B, 2) log-probs. Every micro-batch holds B pairs (`EpochOrder` wraps), so
the mean over pairs is the step's mean whatever the accumulation and the
number of processes. Evaluations report the loss, reward accuracy and
margin (dpo_loss.py) and `prefers_chosen`: the share of pairs whose chosen
reply the model finds more likely than the rejected one, which, unlike the
reward accuracy, means something before training as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..chat_template import ChatTemplate
from ..config import ConfigError, DPOConfig
from ..engine import Batch, FitResult, Task
from ..launch import on_devices
from ..lora import apply_lora, merge_lora
from ..naming import setting
from ..prompts import ALPACA, CONVERSATIONAL, prompt_settings
from ..report import Reporter
from ..run import Run
from ..runtime import autocast, resolve_precision
from .base import (
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
from .chat import collate_conversations
from .data import split
from .dpo_loss import IGNORE_INDEX, chosen_nll, dpo_loss, reward_metrics, sequence_logprobs
from .preferences import FittedPairs, Pair, PairEncoder, fit_pairs, load_pairs


def collate_pairs(pairs: Sequence[Pair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets: the chosen replies' rows, then the rejected replies' rows."""
    return collate_conversations([c for c, _ in pairs] + [r for _, r in pairs], pad_id)


def pair_logprobs(
    model: nn.Module, pairs: Sequence[Pair], pad_id: int, batch_size: int
) -> torch.Tensor:
    """(pairs, 2): each reply's summed log-probability, chosen then rejected; no gradient."""
    device, rows = next(model.parameters()).device, []
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            inputs, targets = collate_pairs(pairs[start : start + batch_size], pad_id)
            logps = sequence_logprobs(model(inputs.to(device)), targets.to(device))
            rows.append(torch.stack(logps.chunk(2), dim=1).float().cpu())
    return torch.cat(rows) if rows else torch.zeros(0, 2)


def pair_metrics(logps: torch.Tensor, reference: torch.Tensor, beta: float) -> dict[str, float]:
    """Loss, reward accuracy and margin, and how often the chosen reply is the likelier."""
    losses, chosen, rejected = dpo_loss(*logps.unbind(1), *reference.unbind(1), beta)
    prefers = (logps[:, 0] > logps[:, 1]).float().mean().item()
    return {
        "loss": losses.mean().item(),
        **reward_metrics(chosen, rejected),
        "prefers_chosen": prefers,
    }


class DPOTask(Task):
    """DPO's loss on preference pairs, against the starting model's cached log-probs."""

    def __init__(
        self, model: nn.Module, parts: list[FittedPairs], config: DPOConfig, micro: int, pad_id: int
    ) -> None:
        """`model`: the starting model, read once as the reference (in eval mode)."""
        self.config, self.pad_id = config, pad_id
        self.parts = dict(zip(("train", "val", "test"), (p.pairs for p in parts), strict=True))
        self.dropped = sum(p.dropped for p in parts)
        model.eval()
        self.reference = {
            name: pair_logprobs(model, pairs, pad_id, config.batch_size)
            for name, pairs in self.parts.items()
        }
        model.train()
        self.order = EpochOrder(len(self.parts["train"]), config.batch_size, micro, config.seed)

    @property
    def eval_steps(self) -> float:
        """An evaluation's cost in training steps (as NextTokenTask estimates it)."""
        pairs = min(len(self.parts["train"]), 256) + len(self.parts["val"])
        return pairs / (3 * self.config.batch_size * self.config.grad_accum_steps) + 1

    def batch(self, step: int, index: int) -> Batch:
        rows = self.order.rows(step, index)
        inputs, targets = collate_pairs([self.parts["train"][r] for r in rows], self.pad_id)
        return inputs, targets, self.reference["train"][rows]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        inputs, targets, reference = batch
        chosen, rejected = sequence_logprobs(model(inputs), targets).chunk(2)
        losses, _, _ = dpo_loss(chosen, rejected, *reference.unbind(1), self.config.beta)
        if not self.config.sft_weight:
            return losses.mean()
        chosen_tokens = (targets.chunk(2)[0] != IGNORE_INDEX).sum()
        return losses.mean() + self.config.sft_weight * chosen_nll(chosen, chosen_tokens)

    def measure(self, model: nn.Module, part: str, limit: int | None = None) -> dict[str, float]:
        pairs = self.parts[part][:limit]
        logps = pair_logprobs(model, pairs, self.pad_id, self.config.batch_size)
        return pair_metrics(logps, self.reference[part][:limit], self.config.beta)

    def before(self, part: str) -> dict[str, float]:
        """The starting model's metrics on a part: the reference compared with itself."""
        return pair_metrics(self.reference[part], self.reference[part], self.config.beta)

    def evaluate(self, model: nn.Module, step: int) -> tuple[dict[str, float], str | None]:
        metrics = {"epoch": round(step / self.order.steps_per_epoch, 3)}
        for part, limit in (("train", 256), ("val", None)):
            if self.parts[part]:
                measured = self.measure(model, part, limit)
                metrics |= {f"{part}_{name}": value for name, value in measured.items()}
        return metrics, None

    def score(self, metrics: dict[str, float]) -> float:
        return metrics.get("val_loss", metrics["train_loss"])

    def export(self, model: nn.Module) -> nn.Module:
        return merge_lora(deepcopy(model))


@dataclass
class DPOResult:
    run_dir: Path
    history: list[dict[str, Any]]
    before: dict[str, float] | None  # on the test pairs: the starting model
    after: dict[str, float] | None  # and the best weights
    dropped: int  # pairs with a reply that does not fit the window
    interrupted: bool = False


@on_devices
def finetune_dpo(
    config: DPOConfig,
    *,
    force: bool = False,
    resume: bool = False,
    reporter: Reporter | None = None,
) -> DPOResult:
    """Tune a chat or instruct run on preference pairs with DPO; Ctrl-C saves `last/`."""
    return run_finetuning(_finetune, config, force=force, resume=resume, reporter=reporter)


def starting_format(run: Run) -> tuple[str, ChatTemplate | None]:
    """The prompt format of the run DPO starts from (which the pairs are rendered in)."""
    prompt_format = run.config.get("prompt_format")
    if prompt_format not in (ALPACA, *CONVERSATIONAL):
        raise ConfigError(
            f"{run.path} has no prompt format to render the pairs in; DPO starts from a run "
            "made by finetune chat or finetune instruct (or an imported chat model)"
        )
    return prompt_format, ChatTemplate.of(run.config)


def require_pairs(train: FittedPairs, window: int, context: int) -> None:
    """A clear error when every training pair is longer than the window."""
    if train.pairs:
        return
    fix = (
        f"raise {setting('max_length')} (up to the model's context, {context})"
        if window < context
        else "shorten the prompts or the replies"
    )
    raise ConfigError(
        f"no training pair fits in {window} tokens ({train.dropped} are all longer); {fix}"
    )


def _finetune(config, dist, force, resume, reporter) -> DPOResult:
    device = dist.resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    start = Run(config.base_run)
    prompt_format, template = starting_format(start)
    records = load_pairs(config.data, conversations=prompt_format != ALPACA)
    splits = split(records, (config.val_fraction, config.test_fraction), config.seed)
    model, tokenizer, base = load_base(config, device)
    disable_dropout(model)  # log-probabilities compared without noise
    encoder = PairEncoder(tokenizer, prompt_format, template)
    window = min(config.max_length or model.config.block_size, model.config.block_size)
    parts = [fit_pairs(encoder, part, window) for part in splits]
    require_pairs(parts[0], window, model.config.block_size)
    pad_id = tokenizer.eot_id if tokenizer.eot_id is not None else 0  # never a target
    micro = config.grad_accum_steps * dist.world_size
    with autocast(device, precision):
        task = DPOTask(model, parts, config, micro, pad_id)  # reads the reference
    config = loop_config(config, task.order)
    if config.lora_rank:
        torch.manual_seed(config.seed)  # the adapters start from --seed, as a classifier's do
        apply_lora(model, config.lora_rank, config.lora_alpha)
    extra = {"kind": "dpo", **prompt_settings(start.config)}
    run = open_finetune_run(
        config,
        model,
        tokenizer,
        base,
        splits,
        extra,
        resume=resume,
        force=force,
        dist=dist,
        data_info={"dropped": task.dropped},
    )
    what = f"LoRA rank {config.lora_rank}" if config.lora_rank else "all"
    reporter.start(
        {
            "task": f"DPO on preference pairs (beta {config.beta:g}, {prompt_format} format)",
            "pairs": describe_splits(splits) + f" ({task.dropped} too long, dropped)",
            "trainable": trainable_summary(model, what),
            "run": str(run.path),
        }
    )
    return fit_then_test(
        model,
        task,
        config,
        run,
        lambda result: _test(run, task, result, device),
        lambda result: DPOResult(
            run.path, result.history, None, None, task.dropped, result.interrupted
        ),
        resume=resume,
        device=device,
        precision=precision,
        dist=dist,
        reporter=reporter,
    )


def _test(run: Run, task: DPOTask, result: FitResult, device) -> DPOResult:
    """The starting and the best weights' metrics on the held-out test pairs."""
    if not task.parts["test"]:
        return DPOResult(run.path, result.history, None, None, task.dropped)
    after = task.measure(run.load_model("best", device), "test")
    before = task.before("test")
    append_metrics(run, {"type": "test"} | {f"test_{k}": v for k, v in after.items()})
    return DPOResult(run.path, result.history, before, after, task.dropped)
