"""Fine-tuning a pre-trained GPT (the book's chapters 6 and 7).

Classification: the language-model head (one logit per vocabulary token) is
replaced by a small head with one logit per class, read at the last real
token of the text: in a causal model that is the only position that has seen
the whole text. By default only the last transformer block, the final norm and
the new head train (`train="last-block"`); `all`, `head`, or LoRA adapters
(`lora_rank`) are the alternatives.

Instruction following: the model keeps its language-model head and learns to
continue Alpaca-style prompts with the expected response, then
`<|endoftext|>`. Batches are padded with `<|endoftext|>`; the padding is
masked out of the loss (target -100) except the first end-of-text, which
teaches the model to stop. `mask_prompt` also masks the prompt, so the loss
covers the response only.

Both start from any run (`base_run`) or from GPT-2 weights in a
`model.safetensors` (`gpt2_weights`), and write an ordinary run directory:
`slm-cli generate` and `chat` work on an instruction-tuned run and apply its
prompt format; `slm-cli classify` uses a classifier run.
"""

from __future__ import annotations

import math
import re
import tempfile
import time
import warnings
from collections import Counter
from copy import deepcopy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from slm_model import GPTModel, generate
from slm_tokenizer import BPETokenizer, gpt2
from torch import nn

from .checkpoint import read_checkpoint, save_checkpoint
from .config import ConfigError
from .files import write_jsonl_atomically
from .finetune_data import balance, label_names, load_instructions, load_labelled, split
from .lora import apply_lora, merge_lora
from .plot import plot_epochs
from .prompts import ALPACA, format_instruction
from .report import Reporter
from .run import Run, RunError
from .sources import CorpusError, DataWarning
from .train import autocast, evaluate_loss, resolve_device, resolve_precision

IGNORE_INDEX = -100
TRAINABLE = ("last-block", "all", "head")


# ------------------------------------------------------------------ the base
def load_base(
    base_run: str | Path | None, gpt2_weights: str | Path | None, device: torch.device
) -> tuple[GPTModel, BPETokenizer, Path, dict[str, Any]]:
    """The pre-trained model, its tokenizer, the tokenizer's file, and a description."""
    if (base_run is None) == (gpt2_weights is None):
        raise ConfigError("start from exactly one of a run (--run) or GPT-2 weights (--gpt2)")
    if base_run is not None:
        run = Run(base_run)
        model = run.load_model("best", device)
        return model, run.tokenizer(), run.path / "tokenizer.json", {"base": str(run.path)}
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        weights = load_file(str(gpt2_weights))
    except (SafetensorError, FileNotFoundError, OSError) as error:
        raise ConfigError(f"cannot read GPT-2 weights from {gpt2_weights} ({error})") from None
    model = GPTModel.from_gpt2_state_dict(weights).to(device)
    tokenizer = gpt2()
    tokenizer_file = Path(tempfile.mkdtemp(prefix="slm-gpt2-")) / "tokenizer.json"
    tokenizer.save(tokenizer_file)
    return model, tokenizer, tokenizer_file, {"base": f"gpt2:{gpt2_weights}"}


def _new_run(config, model, tokenizer, tokenizer_file, base_info, splits, force, extra) -> Run:
    """The fine-tuned run's directory, recording the base, the data and the split sizes."""
    train_set, val_set, test_set = splits
    data_info = {
        **base_info,
        "source": config.data,
        "train": len(train_set),
        "val": len(val_set),
        "test": len(test_set),
    }
    tokenizer_info = {
        "spec": "from base",
        "vocab_size": tokenizer.vocab_size,
        "eot_id": tokenizer.eot_id,
    }
    return Run.create(
        config.out_dir,
        model_config=model.config,
        train_config=asdict(config),
        tokenizer_file=tokenizer_file,
        tokenizer_info=tokenizer_info,
        data_info=data_info,
        force=force,
        extra=extra,
    )


def _epoch_order(count: int, epoch: int, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(count, generator=generator).tolist()


def _optimizer(model: nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError("nothing to train: every parameter is frozen")
    return torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=weight_decay)


# ------------------------------------------------------------ classification
class GPTClassifier(nn.Module):
    """A GPT whose output is one logit per class, read at each text's last real token."""

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
    if mode not in TRAINABLE:
        raise ConfigError(f"unknown --train {mode!r}; choose one of: {', '.join(TRAINABLE)}")
    if lora_rank:
        apply_lora(classifier.gpt, lora_rank, lora_alpha)
    else:
        for parameter in classifier.gpt.parameters():
            parameter.requires_grad_(mode == "all")
        if mode == "last-block":
            for module in (classifier.gpt.blocks[-1], classifier.gpt.final_norm):
                for parameter in module.parameters():
                    parameter.requires_grad_(True)
    for parameter in classifier.head.parameters():
        parameter.requires_grad_(True)


def encode_texts(
    tokenizer: BPETokenizer, texts: list[str], max_length: int
) -> tuple[list[list[int]], int]:
    """Token ids per text, cut to max_length; returns them and how many were cut."""
    encoded, cut = [], 0
    for text in texts:
        ids = tokenizer.encode(text, disallowed_special=())
        if len(ids) > max_length:
            ids, cut = ids[:max_length], cut + 1
        encoded.append(ids or [tokenizer.eot_id])
    return encoded, cut


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in sequences])
    idx = torch.full((len(sequences), int(lengths.max())), pad_id, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        idx[row, : len(sequence)] = torch.tensor(sequence)
    return idx, lengths


@dataclass
class FinetuneConfig:
    """What both kinds of fine-tuning share: the data, the base model, the optimiser."""

    data: str
    base_run: str | None = None  # start from this run...
    gpt2_weights: str | None = None  # ...or from GPT-2 weights in a model.safetensors
    out_dir: str = "runs/finetuned"
    epochs: int = 3
    batch_size: int = 8
    learning_rate: float = 1e-4
    weight_decay: float = 0.1
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    max_length: int | None = None  # tokens; default and cap: the model's context
    lora_rank: int | None = None
    lora_alpha: float | None = None
    seed: int = 123
    device: str = "auto"
    precision: str = "fp32"


@dataclass
class ClassifyConfig(FinetuneConfig):
    out_dir: str = "runs/classifier"
    epochs: int = 5
    test_fraction: float = 0.2
    val_data: str | None = None  # separate files instead of splitting `data`
    test_data: str | None = None
    train: str = "last-block"  # or "all", "head"; ignored with lora_rank
    balance: bool = False


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


def _classification_splits(config: ClassifyConfig) -> tuple[list, list, list, list[str]]:
    examples = load_labelled(config.data)
    if config.balance:
        examples = balance(examples, config.seed)
    if config.val_data or config.test_data:
        if not (config.val_data and config.test_data):
            raise ConfigError("give both --val-data and --test-data, or neither (to split --data)")
        train_set, val_set, test_set = (
            examples,
            load_labelled(config.val_data),
            load_labelled(config.test_data),
        )
    else:
        train_set, val_set, test_set = split(
            examples, (config.val_fraction, config.test_fraction), config.seed
        )
    names = label_names(train_set)
    for name, part in (("validation", val_set), ("test", test_set)):
        unknown = sorted({label for _, label in part} - set(names))
        if unknown:
            raise CorpusError(
                f"the {name} data has labels the training data lacks: {', '.join(unknown)}"
            )
    return train_set, val_set, test_set, names


@torch.no_grad()
def _classify_batches(classifier, tokenizer, texts, max_length, batch_size, device, precision):
    """Class probabilities for texts, in batches."""
    encoded, _ = encode_texts(tokenizer, texts, max_length)
    classifier.eval()
    out = []
    for start in range(0, len(encoded), batch_size):
        idx, lengths = pad_batch(encoded[start : start + batch_size], tokenizer.eot_id)
        with autocast(device, precision):
            logits = classifier(idx.to(device), lengths.to(device))
        out.append(torch.softmax(logits.float(), dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0)


def finetune_classifier(
    config: ClassifyConfig, *, force: bool = False, reporter: Reporter | None = None
) -> ClassifyResult:
    reporter = reporter or Reporter()
    if config.epochs < 1 or config.batch_size < 1:
        raise ConfigError("epochs and batch_size must be positive")
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    train_set, val_set, test_set, names = _classification_splits(config)
    gpt, tokenizer, tokenizer_file, base_info = load_base(
        config.base_run, config.gpt2_weights, device
    )
    max_length = min(config.max_length or gpt.config.block_size, gpt.config.block_size)
    torch.manual_seed(config.seed)
    classifier = GPTClassifier(gpt, len(names)).to(device)
    set_trainable(classifier, config.train, config.lora_rank, config.lora_alpha)
    splits = (train_set, val_set, test_set)
    run = _new_run(
        config,
        gpt,
        tokenizer,
        tokenizer_file,
        base_info,
        splits,
        force,
        {"kind": "classifier", "labels": names, "max_length": max_length},
    )
    label_id = {name: i for i, name in enumerate(names)}
    encoded, cut = encode_texts(tokenizer, [t for t, _ in train_set], max_length)
    if cut:
        warnings.warn(
            f"{cut} training texts were longer than {max_length} tokens and were cut",
            DataWarning,
            stacklevel=2,
        )
    targets = torch.tensor([label_id[label] for _, label in train_set])
    optimizer = _optimizer(classifier, config.learning_rate, config.weight_decay)
    trainable = sum(p.numel() for p in classifier.parameters() if p.requires_grad)
    total = sum(p.numel() for p in classifier.parameters())
    what = f"LoRA rank {config.lora_rank}" if config.lora_rank else config.train
    reporter.start(
        {
            "task": f"classification into {len(names)} classes: {', '.join(names)}",
            "examples": f"{len(train_set)} train / {len(val_set)} val / {len(test_set)} test",
            "trainable": f"{trainable:,} of {total:,} parameters ({what})",
            "run": str(run.path),
        }
    )

    history: list[dict[str, Any]] = []
    best_val, epoch_seconds = -1.0, []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        classifier.train()
        total_loss, correct, seen = 0.0, 0, 0
        order = _epoch_order(len(encoded), epoch, config.seed)
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            idx, lengths = pad_batch([encoded[r] for r in rows], tokenizer.eot_id)
            labels = targets[rows].to(device)
            with autocast(device, precision):
                logits = classifier(idx.to(device), lengths.to(device))
            loss = F.cross_entropy(logits.float(), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total_loss += loss.item() * len(rows)
            correct += int((logits.argmax(-1) == labels).sum())
            seen += len(rows)
        epoch_seconds.append(time.perf_counter() - started)
        record = {
            "type": "epoch",
            "epoch": epoch,
            "train_loss": total_loss / seen,
            "train_accuracy": correct / seen,
            "seconds": epoch_seconds[-1],
        }
        if val_set:
            probabilities = _classify_batches(
                classifier,
                tokenizer,
                [t for t, _ in val_set],
                max_length,
                config.batch_size,
                device,
                precision,
            )
            val_targets = torch.tensor([label_id[label] for _, label in val_set])
            record["val_loss"] = float(
                F.nll_loss(probabilities.clamp_min(1e-12).log(), val_targets)
            )
            record["val_accuracy"] = float((probabilities.argmax(-1) == val_targets).float().mean())
        history.append(record)
        reporter.message(_describe_epoch(record))
        score = record.get("val_accuracy", record["train_accuracy"])
        if score > best_val:
            best_val = score
            _save_merged(run.path / "best", classifier, record)
    _save_merged(run.path / "last", classifier, history[-1])

    # Test with the best weights.
    best = load_classifier(run.path, device=device)[0]
    test_targets = torch.tensor([label_id[label] for _, label in test_set])
    probabilities = _classify_batches(
        best, tokenizer, [t for t, _ in test_set], max_length, config.batch_size, device, precision
    )
    predicted = probabilities.argmax(-1) if len(test_set) else torch.zeros(0, dtype=torch.long)
    confusion = torch.zeros(len(names), len(names), dtype=torch.long)
    for truth, guess in zip(test_targets.tolist(), predicted.tolist(), strict=True):
        confusion[truth, guess] += 1
    precision_per_class = [
        float(confusion[c, c] / confusion[:, c].sum()) if confusion[:, c].sum() else 0.0
        for c in range(len(names))
    ]
    recall_per_class = [
        float(confusion[c, c] / confusion[c, :].sum()) if confusion[c, :].sum() else 0.0
        for c in range(len(names))
    ]
    accuracy = float(confusion.diag().sum() / max(1, confusion.sum()))
    test_record = {
        "type": "test",
        "accuracy": accuracy,
        "confusion": confusion.tolist(),
        "precision": precision_per_class,
        "recall": recall_per_class,
    }
    write_jsonl_atomically(run.path / "metrics.jsonl", [*history, test_record])
    plot_epochs(history, run.path / "accuracy.png", metrics=("loss", "accuracy"))
    reporter.finish({})
    return ClassifyResult(
        run.path,
        names,
        history,
        accuracy,
        confusion.tolist(),
        precision_per_class,
        recall_per_class,
        sum(epoch_seconds) / len(epoch_seconds),
    )


def _describe_epoch(record: dict[str, Any]) -> str:
    parts = [f"epoch {record['epoch']}"]
    for key, value in record.items():
        if key not in ("type", "epoch"):
            parts.append(
                f"{key.replace('_', ' ')} {value:.4g}" if key != "seconds" else f"{value:.1f} s"
            )
    return ", ".join(parts)


def _save_merged(directory: Path, model: nn.Module, record: dict[str, Any]) -> None:
    """Save plain weights: LoRA adapters (if any) are merged into a copy first."""
    save_checkpoint(
        directory, merge_lora(deepcopy(model)), {"epoch": record["epoch"], "metrics": record}
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
    probabilities = _classify_batches(
        classifier, tokenizer, texts, max_length, 16, torch.device(device), "fp32"
    )
    return [dict(zip(names, row.tolist(), strict=True)) for row in probabilities]


# --------------------------------------------------------------- instructions
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


@dataclass
class InstructConfig(FinetuneConfig):
    out_dir: str = "runs/instruct"
    mask_prompt: bool = False
    max_new_tokens: int = 128  # longest test response


@dataclass
class InstructResult:
    run_dir: Path
    history: list[dict[str, Any]]
    responses_file: Path
    exact_match: float
    token_f1: float
    seconds_per_epoch: float
    samples: list[dict[str, str]] = field(default_factory=list)


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
    out = generate(model, prompt, max_new_tokens, temperature=0, eos_id=tokenizer.eot_id)[
        0, len(prompt) :
    ]
    ids = [t for t in out.tolist() if t != tokenizer.eot_id]
    return tokenizer.decode(ids).strip()


def finetune_instructions(
    config: InstructConfig, *, force: bool = False, reporter: Reporter | None = None
) -> InstructResult:
    reporter = reporter or Reporter()
    if config.epochs < 1 or config.batch_size < 1:
        raise ConfigError("epochs and batch_size must be positive")
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    records = load_instructions(config.data)
    train_set, val_set, test_set = split(
        records, (config.val_fraction, config.test_fraction), config.seed
    )
    model, tokenizer, tokenizer_file, base_info = load_base(
        config.base_run, config.gpt2_weights, device
    )
    if tokenizer.eot_id is None:
        raise ConfigError("the base tokenizer has no <|endoftext|> token to end responses with")
    max_length = min(config.max_length or model.config.block_size, model.config.block_size)
    if config.lora_rank:
        apply_lora(model, config.lora_rank, config.lora_alpha)
    splits = (train_set, val_set, test_set)
    run = _new_run(
        config,
        model,
        tokenizer,
        tokenizer_file,
        base_info,
        splits,
        force,
        {"kind": "instruct", "prompt_format": ALPACA},
    )
    encoded = _fitting(tokenizer, train_set, max_length, "training")
    val_encoded = _fitting(tokenizer, val_set, max_length, "validation")
    if not encoded:
        raise CorpusError(f"no training example leaves room for a response in {max_length} tokens")
    optimizer = _optimizer(model, config.learning_rate, config.weight_decay)

    def batches(items, order):
        for start in range(0, len(order), config.batch_size):
            yield collate_instructions(
                [items[i] for i in order[start : start + config.batch_size]],
                tokenizer.eot_id,
                max_length,
                config.mask_prompt,
            )

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    reporter.start(
        {
            "task": "instruction following (Alpaca prompt format)",
            "examples": f"{len(train_set)} train / {len(val_set)} val / {len(test_set)} test",
            "trainable": f"{trainable:,} parameters",
            "run": str(run.path),
        }
    )
    history: list[dict[str, Any]] = []
    best_val, epoch_seconds = math.inf, []
    model.train()
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        losses = []
        for inputs, targets in batches(encoded, _epoch_order(len(encoded), epoch, config.seed)):
            with autocast(device, precision):
                _, loss = model(inputs.to(device), targets.to(device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        epoch_seconds.append(time.perf_counter() - started)
        record = {
            "type": "epoch",
            "epoch": epoch,
            "train_loss": sum(losses) / len(losses),
            "seconds": epoch_seconds[-1],
        }
        if val_encoded:
            record["val_loss"] = evaluate_loss(
                model, batches(val_encoded, list(range(len(val_encoded)))), device, precision
            )
        history.append(record)
        reporter.message(_describe_epoch(record))
        if val_set:
            reporter.message(f"  sample: {respond(model, tokenizer, val_set[0], 40)!r}")
        score = record.get("val_loss", record["train_loss"])
        if score < best_val:
            best_val = score
            _save_merged(run.path / "best", model, record)
    _save_merged(run.path / "last", model, history[-1])

    best = Run(run.path).load_model("best", device)
    responses = []
    for record in test_set:
        response = respond(best, tokenizer, record, config.max_new_tokens)
        responses.append({**record, "expected": record["output"], "response": response})
    responses_file = run.path / "test_responses.jsonl"
    write_jsonl_atomically(responses_file, responses)
    exact = sum(r["response"].strip() == r["expected"].strip() for r in responses) / max(
        1, len(responses)
    )
    f1 = sum(token_f1(r["response"], r["expected"]) for r in responses) / max(1, len(responses))
    write_jsonl_atomically(
        run.path / "metrics.jsonl",
        [*history, {"type": "test", "exact_match": exact, "token_f1": f1}],
    )
    plot_epochs(history, run.path / "loss.png", metrics=("loss",))
    reporter.finish({})
    return InstructResult(
        run.path,
        history,
        responses_file,
        exact,
        f1,
        sum(epoch_seconds) / len(epoch_seconds),
        responses[:5],
    )


def _fitting(tokenizer, records, max_length: int, name: str) -> list[tuple[list[int], int]]:
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
