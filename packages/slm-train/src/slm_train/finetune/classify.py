"""Classification fine-tuning (the book's chapter 6).

The language-model head (one logit per vocabulary token) is replaced by a
small head with one logit per class, read at the end of the text: in a causal
model only the last position has seen the whole text. By default
(`read_at="eot"`) an `<|endoftext|>` is appended to every text and the class
is read there, as GPT-1 did with its "extract" token (and as the book does in
effect: it reads the last position of texts padded with that token). The
position that must gather the evidence then holds the same token in every
example, so the last block learns one query for "find the evidence" instead of
one for each word that can end a text. On a small model this is what makes a
keyword task learnable in 5 epochs (on a task like bench/classify.py's, at lr
1e-3: a median of 68 % at the text's own last token, `read_at="last"`, and 82 %
at the appended one). By default only the last transformer block, the final
norm and the new head train (`train="last-block"`); `all`, `head`, or LoRA
adapters (`lora_rank`) are the alternatives. `ClassifyTask` is what the engine needs: batches of
(ids, lengths, labels), cross-entropy on the class logits, and validation
loss and accuracy. The best epoch is the one with the highest accuracy.
"""

from __future__ import annotations

import warnings
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from slm_model import GPTModel
from slm_tokenizer import BPETokenizer
from torch import nn

from ..checkpoint import read_checkpoint
from ..config import ClassifyConfig
from ..data.sources import CorpusError, DataWarning
from ..engine import Batch, Task
from ..launch import on_devices
from ..lora import apply_lora, merge_lora
from ..naming import setting
from ..plot import plot_epochs
from ..report import Reporter
from ..run import Run, RunError
from ..runtime import autocast, resolve_precision
from .base import (
    EpochOrder,
    append_metrics,
    describe_splits,
    fit_then_test,
    load_base,
    loop_config,
    open_finetune_run,
    run_finetuning,
    trainable_summary,
)
from .data import balance, label_names, load_labelled, split


class GPTClassifier(nn.Module):
    """A GPT whose output is one logit per class, read at each sequence's last real token."""

    def __init__(self, gpt: GPTModel, num_classes: int) -> None:
        super().__init__()
        self.gpt = gpt
        self.head = nn.Linear(gpt.config.n_embd, num_classes)

    @property
    def config(self):
        return self.gpt.config

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        hidden = self.gpt.hidden_states(idx)
        last = hidden[torch.arange(idx.shape[0], device=idx.device), lengths - 1]
        return self.head(last)


def set_trainable(
    classifier: GPTClassifier,
    mode: str,
    lora_rank: int | None = None,
    lora_alpha: float | None = None,
) -> None:
    """Choose what trains: LoRA adapters + head, or the last block, everything, or the head."""
    if lora_rank:
        apply_lora(classifier.gpt, lora_rank, lora_alpha)
    else:
        for parameter in classifier.gpt.parameters():
            parameter.requires_grad_(mode == "all")
        if mode == "last-block":
            for module in (classifier.gpt.blocks[-1], classifier.gpt.final_norm):
                module.requires_grad_(True)
    classifier.head.requires_grad_(True)


def encode_texts(
    tokenizer: BPETokenizer, texts: list[str], max_length: int, read_at: str = "last"
) -> tuple[list[list[int]], int]:
    """Token ids per text, cut to max_length; returns them and how many were cut.

    With read_at="eot", each text ends with an `<|endoftext|>` (within max_length).
    """
    end = [tokenizer.eot_id] if read_at == "eot" else []
    encoded, cut = [], 0
    for text in texts:
        ids = tokenizer.encode(text, disallowed_special=())
        if len(ids) + len(end) > max_length:
            ids, cut = ids[: max_length - len(end)], cut + 1
        encoded.append(ids + end or [tokenizer.eot_id])
    return encoded, cut


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in sequences])
    idx = torch.full((len(sequences), int(lengths.max())), pad_id, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        idx[row, : len(sequence)] = torch.tensor(sequence)
    return idx, lengths


class ClassifyTask(Task):
    """Batches of (ids, lengths, labels); cross-entropy on the class logits."""

    def __init__(self, classifier, tokenizer, splits, names, max_length, config, micro) -> None:
        self.tokenizer, self.max_length, self.batch_size = tokenizer, max_length, config.batch_size
        self.read_at = config.read_at
        self.label_id = {name: i for i, name in enumerate(names)}
        train_set, self.val_set, _ = splits
        texts = [t for t, _ in train_set]
        self.encoded, cut = encode_texts(tokenizer, texts, max_length, self.read_at)
        if cut:
            warnings.warn(
                f"{cut} training texts were longer than {max_length} tokens and were cut",
                DataWarning,
                stacklevel=3,
            )
        self.targets = torch.tensor([self.label_id[label] for _, label in train_set])
        self.order = EpochOrder(len(self.encoded), config.batch_size, micro, config.seed)
        self.train_sample = train_set[:256]  # a fixed sample for the training accuracy

    def batch(self, step: int, index: int) -> Batch:
        rows = self.order.rows(step, index)
        idx, lengths = pad_batch([self.encoded[r] for r in rows], self.tokenizer.eot_id)
        return idx, lengths, self.targets[rows]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        idx, lengths, labels = batch
        return F.cross_entropy(model(idx, lengths).float(), labels)

    def evaluate(self, model: nn.Module, step: int) -> tuple[dict[str, float], str | None]:
        metrics = {"epoch": round(step / self.order.steps_per_epoch, 3)}
        for name, examples in (("train", self.train_sample), ("val", self.val_set)):
            if examples:
                metrics |= self.scores(model, examples, name)
        return metrics, None

    def scores(self, model, examples, split: str) -> dict[str, float]:
        texts = [t for t, _ in examples]
        probabilities = class_probabilities(
            model, self.tokenizer, texts, self.max_length, self.batch_size, self.read_at
        )
        targets = torch.tensor([self.label_id[label] for _, label in examples])
        loss = F.nll_loss(probabilities.clamp_min(1e-12).log(), targets)
        accuracy = (probabilities.argmax(-1) == targets).float().mean()
        return {f"{split}_loss": float(loss), f"{split}_accuracy": float(accuracy)}

    def score(self, metrics: dict[str, float]) -> float:
        return -metrics.get("val_accuracy", metrics["train_accuracy"])

    def export(self, model: nn.Module) -> nn.Module:
        return merge_lora(deepcopy(model))


@torch.no_grad()
def class_probabilities(
    classifier, tokenizer, texts, max_length, batch_size, read_at="last", precision="fp32"
):
    """Class probabilities for texts, in batches (eval mode; restores the mode after)."""
    encoded, _ = encode_texts(tokenizer, texts, max_length, read_at)
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    out = []
    for start in range(0, len(encoded), batch_size):
        idx, lengths = pad_batch(encoded[start : start + batch_size], tokenizer.eot_id)
        with autocast(device, precision):
            logits = classifier(idx.to(device), lengths.to(device))
        out.append(torch.softmax(logits.float(), dim=-1).cpu())
    classifier.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, len(classifier.head.weight))


@dataclass
class ClassifyResult:
    run_dir: Path
    labels: list[str]
    history: list[dict[str, Any]]
    test_accuracy: float
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    precision: list[float]
    recall: list[float]
    seconds_per_epoch: float
    interrupted: bool = False


def _splits(config: ClassifyConfig) -> tuple[tuple[list, list, list], list[str]]:
    examples = load_labelled(config.data)
    if config.balance:
        examples = balance(examples, config.seed)
    if config.val_data:
        splits = (examples, load_labelled(config.val_data), load_labelled(config.test_data))
    else:
        splits = split(examples, (config.val_fraction, config.test_fraction), config.seed)
    names = label_names(splits[0])
    for name, part in (("validation", splits[1]), ("test", splits[2])):
        unknown = sorted({label for _, label in part} - set(names))
        if unknown:
            raise CorpusError(
                f"the {name} data has labels the training data lacks: {', '.join(unknown)}"
            )
    return splits, names


@on_devices
def finetune_classifier(
    config: ClassifyConfig,
    *,
    force: bool = False,
    resume: bool = False,
    reporter: Reporter | None = None,
) -> ClassifyResult:
    """Fine-tune a classifier; Ctrl-C saves `last/`, and `resume` continues from it."""
    return run_finetuning(_finetune, config, force=force, resume=resume, reporter=reporter)


def _finetune(config, dist, force, resume, reporter) -> ClassifyResult:
    device = dist.resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    splits, names = _splits(config)
    gpt, tokenizer, base = load_base(config, device)
    max_length = min(config.max_length or gpt.config.block_size, gpt.config.block_size)
    torch.manual_seed(config.seed)
    classifier = GPTClassifier(gpt, len(names)).to(device)
    set_trainable(classifier, config.train, config.lora_rank, config.lora_alpha)
    micro = config.grad_accum_steps * dist.world_size
    task = ClassifyTask(classifier, tokenizer, splits, names, max_length, config, micro)
    config = loop_config(config, task.order)
    extra = {"kind": "classifier", "labels": names, "max_length": max_length}
    extra["read_at"] = config.read_at
    run = open_finetune_run(
        config, gpt, tokenizer, base, splits, extra, resume=resume, force=force, dist=dist
    )
    read_at = run.config.get("read_at", "last")  # runs made before read_at read "last"
    if read_at != config.read_at:
        raise RunError(
            f"{run.path} reads its class with {setting('read_at', read_at)}; resume with that"
        )
    what = f"LoRA rank {config.lora_rank}" if config.lora_rank else config.train
    reporter.start(
        {
            "task": f"classification into {len(names)} classes: {', '.join(names)}",
            "examples": describe_splits(splits),
            "trainable": trainable_summary(classifier, what),
            "run": str(run.path),
        }
    )
    return fit_then_test(
        classifier,
        task,
        config,
        run,
        lambda result: _test(run, task, splits[2], names, config, result.history, device),
        lambda result: ClassifyResult(
            run.path, names, result.history, 0.0, [], [], [], 0.0, result.interrupted
        ),
        resume=resume,
        device=device,
        precision=precision,
        dist=dist,
        reporter=reporter,
    )


def _test(run, task, test_set, names, config, history, device) -> ClassifyResult:
    """Score the best weights on the test set: accuracy, confusion, precision and recall."""
    best = load_classifier(run.path, device=device)[0]
    texts = [t for t, _ in test_set]
    probabilities = class_probabilities(
        best, task.tokenizer, texts, task.max_length, config.batch_size, task.read_at
    )
    confusion = torch.zeros(len(names), len(names), dtype=torch.long)
    for (_, label), guess in zip(test_set, probabilities.argmax(-1).tolist(), strict=True):
        confusion[task.label_id[label], guess] += 1
    correct = confusion.diag().float()
    precision = (correct / confusion.sum(0).clamp_min(1)).tolist()
    recall = (correct / confusion.sum(1).clamp_min(1)).tolist()
    accuracy = float(correct.sum() / max(1, int(confusion.sum())))
    test = {"type": "test", "accuracy": accuracy, "confusion": confusion.tolist()}
    test |= {"precision": precision, "recall": recall}
    append_metrics(run, test)
    evals = [r for r in history if r["type"] == "eval"]
    plot_epochs(evals, run.path / "accuracy.png", metrics=("loss", "accuracy"))
    seconds = evals[-1]["elapsed"] / max(1, evals[-1]["epoch"]) if evals else 0.0
    return ClassifyResult(
        run.path, names, history, accuracy, confusion.tolist(), precision, recall, seconds
    )


def load_classifier(
    run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"
) -> tuple[GPTClassifier, BPETokenizer, list[str], int]:
    """A classifier run's model, tokenizer, label names and maximum length."""
    run = Run(run_dir)
    if run.config.get("kind") != "classifier":
        raise RunError(
            f"{run.path} is not a classifier run; fine-tune one with: slm-cli finetune classify"
        )
    checkpoint = read_checkpoint(run.path / which)
    with torch.device(device):
        classifier = GPTClassifier(GPTModel(checkpoint.config), len(run.config["labels"]))
    checkpoint.load_weights(classifier)
    return classifier.eval(), run.tokenizer(), run.config["labels"], run.config["max_length"]


def classify(
    run_dir: str | Path, texts: list[str], device: str | torch.device = "cpu"
) -> list[dict[str, float]]:
    """Class probabilities for each text, as {label: probability}."""
    classifier, tokenizer, names, max_length = load_classifier(run_dir, device=device)
    read_at = Run(run_dir).config.get("read_at", "last")  # runs made before read_at: "last"
    probabilities = class_probabilities(classifier, tokenizer, texts, max_length, 16, read_at)
    return [dict(zip(names, row.tolist(), strict=True)) for row in probabilities]
