"""Instruction fine-tuning (the book's chapter 7).

The model keeps its language-model head and learns to continue Alpaca-style
prompts with the expected response, then `<|endoftext|>`. Batches are padded
with `<|endoftext|>`; the padding is masked out of the loss (target -100)
except the first end-of-text, which teaches the model to stop. `mask_prompt`
also masks the prompt, so the loss covers the response only. `InstructTask`
is what the engine needs; the finished run answers its test set greedily, and
`slm-cli generate` and `chat` apply its prompt format.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from slm_model import GPTModel, generate
from slm_tokenizer import BPETokenizer
from torch import nn

from ..config import ConfigError, InstructConfig
from ..data.sources import CorpusError, DataWarning
from ..engine import Batch
from ..files import write_jsonl_atomically
from ..launch import on_devices
from ..lora import apply_lora
from ..prompts import ALPACA, format_instruction
from ..report import Reporter
from ..run import Run
from ..runtime import resolve_precision
from .base import (
    IGNORE_INDEX,
    EpochOrder,
    NextTokenTask,
    append_metrics,
    describe_splits,
    fit_then_test,
    load_base,
    loop_config,
    open_finetune_run,
    run_finetuning,
    trainable_summary,
)
from .data import load_instructions, split


def encode_instruction(tokenizer: BPETokenizer, record: dict[str, str]) -> tuple[list[int], int]:
    """Prompt + response + <|endoftext|> as ids, and the prompt's length in tokens."""
    prompt = tokenizer.encode(
        format_instruction(record["instruction"], record.get("input")), disallowed_special=()
    )
    response = tokenizer.encode(record["output"], disallowed_special=())
    return [*prompt, *response, tokenizer.eot_id], len(prompt)


def collate_instructions(
    batch: list[tuple[list[int], int]],
    pad_id: int,
    max_length: int | None = None,
    mask_prompt: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for a batch of (ids, prompt length), padded to the longest.

    targets[j] is the token after inputs[j]. Positions after each sequence's
    final <|endoftext|> are padding: their targets are -100 (ignored by the
    loss). With `mask_prompt`, targets inside the prompt are -100 too.
    """
    longest = max(len(ids) for ids, _ in batch) - 1
    if max_length is not None:
        longest = min(longest, max_length)
    inputs = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), longest), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, prompt_length) in enumerate(batch):
        ids = ids[: longest + 1]
        inputs[row, : len(ids) - 1] = torch.tensor(ids[:-1])
        targets[row, : len(ids) - 1] = torch.tensor(ids[1:])
        if mask_prompt:
            targets[row, : max(0, prompt_length - 1)] = IGNORE_INDEX
    return inputs, targets


def fitting(tokenizer, records, max_length: int, name: str) -> list[tuple[list[int], int]]:
    """Encode records; truncate long ones, and drop those whose prompt alone fills the context."""
    encoded = [encode_instruction(tokenizer, r) for r in records]
    kept = [(ids, prompt) for ids, prompt in encoded if prompt < max_length]
    truncated = sum(len(ids) - 1 > max_length for ids, _ in kept)
    if len(kept) < len(encoded):
        warnings.warn(
            f"dropped {len(encoded) - len(kept)} {name} examples whose prompt alone is "
            f"{max_length} tokens or more",
            DataWarning,
            stacklevel=3,
        )
    if truncated:
        warnings.warn(
            f"{truncated} {name} examples are longer than {max_length} tokens and were truncated",
            DataWarning,
            stacklevel=3,
        )
    return kept


class InstructTask(NextTokenTask):
    """Next-token loss on prompt + response (the prompt masked if asked); validation loss."""

    def __init__(self, tokenizer, splits, max_length, config: InstructConfig, micro) -> None:
        self.tokenizer, self.config, self.max_length = tokenizer, config, max_length
        train_set, self.val_set, _ = splits
        self.encoded = fitting(tokenizer, train_set, max_length, "training")
        self.val_encoded = fitting(tokenizer, self.val_set, max_length, "validation")
        if not self.encoded:
            raise CorpusError(
                f"no training example leaves room for a response in {max_length} tokens"
            )
        self.order = EpochOrder(len(self.encoded), config.batch_size, micro, config.seed)

    def collate(self, items: list[tuple[list[int], int]]) -> Batch:
        eot, mask = self.tokenizer.eot_id, self.config.mask_prompt
        return collate_instructions(items, eot, self.max_length, mask)

    def evaluate(self, model: nn.Module, step: int) -> tuple[dict[str, float], str | None]:
        sample = respond(model, self.tokenizer, self.val_set[0], 40) if self.val_set else None
        return self.losses(model, step), sample


def token_f1(prediction: str, reference: str) -> float:
    """Overlap of lower-cased words (SQuAD's F1): partial credit for nearly right answers."""
    predicted, expected = _words(prediction), _words(reference)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if not predicted or not expected:
        return float(predicted == expected)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def respond(
    model: GPTModel, tokenizer: BPETokenizer, record: dict[str, str], max_new_tokens: int
) -> str:
    """The model's greedy response to one instruction record."""
    prompt = tokenizer.encode(
        format_instruction(record["instruction"], record.get("input")), disallowed_special=()
    )
    prompt = prompt[-(model.config.block_size - 1) :]
    out = generate(model, prompt, max_new_tokens, temperature=0, eos_id=tokenizer.eot_id)
    ids = [t for t in out[0, len(prompt) :].tolist() if t != tokenizer.eot_id]
    return tokenizer.decode(ids).strip()


@dataclass
class InstructResult:
    run_dir: Path
    history: list[dict[str, Any]]
    responses_file: Path | None
    exact_match: float
    token_f1: float
    seconds_per_epoch: float
    samples: list[dict[str, str]] = field(default_factory=list)
    interrupted: bool = False


@on_devices
def finetune_instructions(
    config: InstructConfig,
    *,
    force: bool = False,
    resume: bool = False,
    reporter: Reporter | None = None,
) -> InstructResult:
    """Instruction-tune a model; Ctrl-C saves `last/`, and `resume` continues from it."""
    return run_finetuning(_finetune, config, force=force, resume=resume, reporter=reporter)


def _finetune(config, dist, force, resume, reporter) -> InstructResult:
    device = dist.resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    records = load_instructions(config.data)
    splits = split(records, (config.val_fraction, config.test_fraction), config.seed)
    model, tokenizer, base = load_base(config, device)
    if tokenizer.eot_id is None:
        raise ConfigError("the base tokenizer has no <|endoftext|> token to end responses with")
    max_length = min(config.max_length or model.config.block_size, model.config.block_size)
    micro = config.grad_accum_steps * dist.world_size
    task = InstructTask(tokenizer, splits, max_length, config, micro)  # checks the data first
    config = loop_config(config, task.order)
    if config.lora_rank:
        torch.manual_seed(config.seed)  # the adapters start from --seed, as a classifier's do
        apply_lora(model, config.lora_rank, config.lora_alpha)
    extra = {"kind": "instruct", "prompt_format": ALPACA}
    run = open_finetune_run(
        config, model, tokenizer, base, splits, extra, resume=resume, force=force, dist=dist
    )
    what = f"LoRA rank {config.lora_rank}" if config.lora_rank else "all"
    reporter.start(
        {
            "task": "instruction following (Alpaca prompt format)",
            "examples": describe_splits(splits),
            "trainable": trainable_summary(model, what),
            "run": str(run.path),
        }
    )
    return fit_then_test(
        model,
        task,
        config,
        run,
        lambda result: _test(run, tokenizer, splits[2], config, result.history, device),
        lambda result: InstructResult(
            run.path, result.history, None, 0.0, 0.0, 0.0, interrupted=result.interrupted
        ),
        resume=resume,
        device=device,
        precision=precision,
        dist=dist,
        reporter=reporter,
    )


def _test(run: Run, tokenizer, test_set, config, history, device) -> InstructResult:
    """Answer the test set greedily with the best weights; score exact match and token F1."""
    best = run.load_model("best", device)
    responses = []
    for record in test_set:
        response = respond(best, tokenizer, record, config.max_new_tokens)
        responses.append({**record, "expected": record["output"], "response": response})
    responses_file = run.path / "test_responses.jsonl"
    write_jsonl_atomically(responses_file, responses)
    count = max(1, len(responses))
    exact = sum(r["response"].strip() == r["expected"].strip() for r in responses) / count
    f1 = sum(token_f1(r["response"], r["expected"]) for r in responses) / count
    append_metrics(run, {"type": "test", "exact_match": exact, "token_f1": f1})
    evals = [r for r in history if r["type"] == "eval"]
    seconds = evals[-1]["elapsed"] / max(1, evals[-1]["epoch"]) if evals else 0.0
    return InstructResult(run.path, history, responses_file, exact, f1, seconds, responses[:5])
