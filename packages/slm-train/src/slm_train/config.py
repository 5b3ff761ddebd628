"""Configurations: one dataclass per kind of training, loadable from TOML, checked on creation.

    DataConfig        data preparation: corpus, tokenizer, split, cleaning (slm-cli prepare)
    LoopConfig        what the engine needs: batch, optimiser, schedule, budget, hardware
    ├── TrainConfig   pre-training: LoopConfig + DataConfig + the model
    └── FinetuneConfig           + base model, labelled data, epochs, LoRA
        ├── ClassifyConfig
        ├── InstructConfig
        ├── ChatConfig
        ├── DPOConfig
        └── RLConfig

Every field carries a one-line `help` in its metadata, and the command line
builds its options from these fields, so nothing here is unreachable from
`slm-cli`. This module imports nothing heavy (no torch), so `slm-cli --help`
stays fast; the model presets are only looked up when a config is checked.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data.cleaning import Cleaning
from .naming import setting

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE = ("auto", "on", "off")
OPTIMIZERS = ("adamw", "muon")
ADAMW_GROUPS = ("slm", "nanochat")
MUON_ONLY = ("polar_express", "normuon", "cautious_weight_decay", "muon_momentum_warmup")
SCHEDULES = ("cosine", "wsd")
TRAINABLE = ("last-block", "all", "head")
READ_AT = ("eot", "last")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it and the fix."""


class ConfigWarning(UserWarning):
    """A configuration value works, but probably not as intended."""


def option(default: Any = None, help: str = "", factory: Any = None, shown: str = "") -> Any:
    """A dataclass field with its command-line help text (and, in `shown`, how the
    command line should describe its default when the bare value would mislead)."""
    metadata = {"help": help, "shown": shown}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# What `slm-cli train` does when no budget is given (pretrain.plan_training):
# whichever of these comes first. Any budget given replaces the pair.
DEFAULT_MAX_STEPS = 2000
DEFAULT_MAX_TIME = 8 * 60.0
_DEFAULT_BUDGET = "2000 steps or 8m, whichever comes first; any budget you give replaces both"


def read_toml(path: str | Path) -> dict[str, Any]:
    """The fields a TOML file sets, as written (no defaults filled in)."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


class _Checked:
    """Every configuration is checked on creation. Each class checks its own fields in
    `validate` and then calls `super().validate()`, so a configuration made of several
    (TrainConfig is a DataConfig and a LoopConfig) checks all of them."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        pass


@dataclass(kw_only=True)
class DataConfig(_Checked):
    """Data preparation: which corpus, its tokenizer, the validation split and the cleaning.

    `slm-cli prepare` takes exactly these options, and TrainConfig inherits
    them, since training prepares its data first. The cleaning fields are
    `Cleaning`'s (data/cleaning.py, where their defaults live); `cleaning`
    hands them to `prepare`.
    """

    data: str = option(
        "builtin:bbe",
        "builtin:bbe, tinystories, hf:NAME[:CONFIG][@SPLIT], or files: a file, folder or glob "
        "of text, Markdown, code, JSONL, PDF, HTML, EPUB, Parquet or Arrow (commas join several).",
    )
    tokenizer: str = option(
        "bpe:4096", "bpe:VOCAB_SIZE (trained on the data), gpt2, or a tokenizer .json file."
    )
    val_fraction: float = option(0.1, "Share of documents kept for validation.")
    data_dir: str | None = option(None, "Token files folder (default: data/SOURCE-TOKENIZER).")
    workers: int | None = option(None, "Processes that tokenize the data (default: one per CPU).")
    text_field: str = option("text", "The field holding the text in JSONL, Parquet, Arrow, hf:.")
    max_documents: int | None = option(
        None, "Read at most this many documents (of each split of an hf: dataset that has them)."
    )
    normalize: bool = option(
        Cleaning.normalize, "Unicode NFC, line breaks as \\n, control characters removed."
    )
    min_chars: int = option(
        Cleaning.min_chars, "Drop documents shorter than this many characters (0: keep all)."
    )
    min_text_fraction: float = option(
        Cleaning.min_text_fraction,
        "Drop documents with less text than this share (binary junk, base64; 0: keep all).",
    )
    dedup: bool = option(Cleaning.dedup, "Drop exact duplicate documents (the first is kept).")
    near_dedup: float | None = option(
        Cleaning.near_dedup,
        "Drop near-duplicates at this MinHash similarity, e.g. 0.8 (needs datasketch).",
    )

    def validate(self) -> None:
        if not 0 < self.val_fraction < 0.5:
            raise ConfigError(f"val_fraction must be between 0 and 0.5, got {self.val_fraction!r}")
        if self.workers is not None:
            _require_positive_int("workers", self.workers, " or unset")
        if self.max_documents is not None:
            _require_positive_int("max_documents", self.max_documents, " or unset")
        try:
            parse_tokenizer_spec(self.tokenizer)
            _ = self.cleaning  # Cleaning checks its own settings
        except ValueError as error:
            raise ConfigError(str(error)) from None
        super().validate()

    @property
    def cleaning(self) -> Cleaning:
        """The cleaning settings, for `prepare(..., cleaning=...)`."""
        names = [f.name for f in dataclasses.fields(Cleaning)]
        return Cleaning(**{name: getattr(self, name) for name in names})


@dataclass(kw_only=True)
class LoopConfig(_Checked):
    """What the training engine needs, whatever is being trained.

    Budgets: training stops at whichever of max_steps, max_tokens (tokens
    processed, all processes together) and max_time (seconds) comes first; the
    learning-rate schedule follows the fraction of that budget already spent.

    `devices` (processes to train on, launch.py) is a field here and not an
    option of the command line alone, because it is part of the recipe: each
    step takes batch_size x grad_accum_steps x devices sequences, so the run's
    config.json must record it and a resumed run continues on as many. Being
    here also gives every training command its `--devices`, and every
    training function (`train(TrainConfig(devices=2))` in a notebook), at once.
    """

    batch_size: int = option(16, "Sequences per micro-batch.")
    grad_accum_steps: int = option(1, "Micro-batches per optimizer step.")
    learning_rate: float = option(1e-3, "Peak learning rate.")
    min_lr: float | None = option(None, "Learning rate at the end of the decay (default lr/10).")
    warmup_steps: int = option(100, "Steps of linear learning-rate warm-up.")
    weight_decay: float = option(0.1, "AdamW weight decay (weight matrices only).")
    beta1: float = option(0.9, "AdamW beta1.")
    beta2: float = option(0.95, "AdamW beta2.")
    grad_clip: float = option(1.0, "Clip the gradient norm to this (0 = off).")
    optimizer: str = option("adamw", "adamw, or muon: Muon for the blocks' matrices, AdamW else.")
    muon_lr: float = option(0.02, "Muon's peak learning rate (with --optimizer muon).")
    polar_express: bool = option(False, "Muon: orthogonalise with Polar Express (nanochat's).")
    normuon: bool = option(False, "Muon: even out each neuron's step afterwards (NorMuon).")
    cautious_weight_decay: bool = option(
        False, "Muon: decay only where step and weight agree in sign, on a cosine down to 0."
    )
    muon_momentum_warmup: float = option(
        0.0, "Muon: share of the budget over which momentum rises 0.85 -> 0.97 (0: fixed 0.95)."
    )
    adamw_groups: str = option(
        "slm", "slm: one AdamW rate; nanochat: its rates and betas for embeddings, head, scalars."
    )
    schedule: str = option("cosine", "cosine, or wsd: warm-up, stable, then a linear decay.")
    decay_fraction: float = option(0.3, "wsd: the share of the budget spent decaying.")
    max_steps: int | None = option(None, "Stop after this many optimizer steps.")
    max_tokens: int | None = option(None, "Stop after this many training tokens.")
    max_time: float | None = option(None, "Stop after this long (seconds; 90s, 8m, 1h30m).")
    eval_interval: int | None = option(200, "Steps between evaluations.")
    log_interval: int = option(10, "Steps between log lines in metrics.jsonl.")
    precision: str = option("auto", "auto, fp32, bf16 or fp16 (auto: bf16 where native).")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps.")
    devices: int = option(1, "Processes to train on with DDP: one per GPU, or CPU processes.")
    compile: str = option(
        "auto", "torch.compile the model: on, off, or auto (on when the budget repays it)."
    )
    seed: int = option(1337, "Random seed: batches, initialisation and dropout.")
    out_dir: str | None = option(None, "Run directory.")

    # ------------------------------------------------------------- checking
    def validate(self) -> None:
        self._check_counts()
        self._check_budget()
        self._check_optimizer()
        self._check_hardware()
        super().validate()

    def _check_counts(self) -> None:
        for name in ("batch_size", "grad_accum_steps", "log_interval", "devices"):
            _require_positive_int(name, getattr(self, name))
        for name in ("max_steps", "max_tokens", "eval_interval"):
            if getattr(self, name) is not None:
                _require_positive_int(name, getattr(self, name), " or unset")

    def _check_budget(self) -> None:
        if self.max_time is not None and not self.max_time > 0:
            raise ConfigError(
                f"max_time must be a positive number of seconds, got {self.max_time!r}"
            )
        if self.max_steps is None and self.max_tokens is None and self.max_time is None:
            raise ConfigError("set at least one budget: max_steps, max_tokens or max_time")

    def warn_if_odd(self) -> None:
        """Settings that work but are probably not meant; the engine calls this once per run."""
        if self.max_steps is not None and self.warmup_steps > self.max_steps:
            warnings.warn(
                f"warmup_steps ({self.warmup_steps}) is longer than max_steps "
                f"({self.max_steps}): the learning rate never reaches its peak; "
                f"lower {setting('warmup_steps')}",
                ConfigWarning,
                stacklevel=3,
            )

    def _check_optimizer(self) -> None:
        if not self.learning_rate > 0 or not 0 <= self.final_lr <= self.learning_rate:
            raise ConfigError(
                f"need learning_rate > 0 and 0 <= min_lr <= learning_rate, got "
                f"{self.learning_rate!r} and {self.min_lr!r}"
            )
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("warmup_steps, weight_decay and grad_clip must not be negative")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"betas must be in [0, 1), got {self.beta1!r}, {self.beta2!r}")
        self._check_recipe()

    def _check_recipe(self) -> None:
        choices_of = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "adamw_groups": ADAMW_GROUPS}
        for name, choices in choices_of.items():
            if getattr(self, name) not in choices:
                raise ConfigError(
                    f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(choices)}"
                )
        if not self.muon_lr > 0:
            raise ConfigError(f"muon_lr must be positive, got {self.muon_lr!r}")
        if not 0 <= self.muon_momentum_warmup <= 1:
            raise ConfigError(
                f"muon_momentum_warmup is a share of the budget, from 0 to 1; "
                f"got {self.muon_momentum_warmup!r}"
            )
        used = [name for name in MUON_ONLY if getattr(self, name)]
        if used and self.optimizer != "muon":
            raise ConfigError(
                f"{setting(used[0], True)} refines Muon; add {setting('optimizer', 'muon')}"
            )
        if not 0 < self.decay_fraction <= 1:
            raise ConfigError(f"decay_fraction must be in (0, 1], got {self.decay_fraction!r}")

    def _check_hardware(self) -> None:
        if isinstance(self.compile, bool):  # run configs before `auto` said true or false
            self.compile = "on" if self.compile else "off"
        if self.compile not in COMPILE:
            raise ConfigError(
                f"unknown compile setting {self.compile!r}; choose one of {', '.join(COMPILE)}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        if self.device not in ("auto", "cpu", "mps") and not self.device.startswith("cuda"):
            raise ConfigError(f"unknown device {self.device!r}; use auto, cpu, cuda, cuda:N or mps")

    @property
    def final_lr(self) -> float:
        """The learning rate the cosine ends at: min_lr, or a tenth of the peak (nanoGPT's)."""
        return self.learning_rate / 10 if self.min_lr is None else self.min_lr

    # ---------------------------------------------------------- conversion
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown training option {unknown[0]!r}; valid options: {', '.join(sorted(known))}"
            )
        return cls(**values)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any):
        """Read a TOML file of fields; keyword overrides that are not None win."""
        values = read_toml(path)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls.from_dict(values)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)


@dataclass(kw_only=True)
class TrainConfig(DataConfig, LoopConfig):
    """Pre-training: the data (DataConfig's fields), the model, and the loop (LoopConfig's).

    The defaults are the recipe that won `bench/recipe.py`'s race on a 2-core
    CPU (README, "The modern recipe"): `qwen3-small` (Llama's architecture
    with QK-norm), Muon for the blocks' matrices with AdamW for the rest, a
    short warm-up and the WSD schedule; 19 % fewer validation bits per byte
    than GPT-2 `small` with AdamW and the cosine in the same 4 minutes.
    """

    preset: str = option("qwen3-small", "Model preset: qwen3-small, llama-small, small (GPT-2)...")
    model: dict[str, Any] = option(help="Override a model field: KEY=VALUE.", factory=dict)
    max_steps: int | None = option(
        DEFAULT_MAX_STEPS, "Stop after this many optimizer steps.", shown=_DEFAULT_BUDGET
    )
    max_time: float | None = option(
        None, "Stop after this long (seconds; 90s, 8m, 1h30m).", shown=_DEFAULT_BUDGET
    )
    learning_rate: float = option(4e-3, "Peak learning rate (AdamW's; Muon's is --muon-lr).")
    warmup_steps: int = option(20, "Steps of linear learning-rate warm-up.")
    optimizer: str = option("muon", "muon: Muon for the blocks' matrices, AdamW else; or adamw.")
    muon_lr: float = option(0.01, "Muon's peak learning rate (with --optimizer muon).")
    schedule: str = option("wsd", "wsd: warm-up, stable, then a linear decay; or cosine.")
    eval_batches: int = option(20, "Batches per evaluation (the last one's).")
    interim_eval_batches: int | None = option(
        5, "Batches per evaluation before the last (unset: eval_batches every time)."
    )
    sample_tokens: int = option(64, "Tokens sampled at each evaluation (0 = none).")

    def validate(self) -> None:
        super().validate()
        _require_positive_int("eval_batches", self.eval_batches)
        if self.interim_eval_batches is not None:
            _require_positive_int("interim_eval_batches", self.interim_eval_batches, " or unset")
        if self.eval_interval is None:
            raise ConfigError("eval_interval must be set for pre-training")
        if not isinstance(self.model, dict):
            raise ConfigError(
                "model must be a table of GPTConfig fields, e.g. model = {n_layer = 4}"
            )
        _check_model(self.preset, self.model)


@dataclass(kw_only=True)
class FinetuneConfig(LoopConfig):
    """What both kinds of fine-tuning share: the data, the base model, epochs and LoRA."""

    data: str = option("", "Fine-tuning data file.")
    base_run: str | None = option(None, "The pre-trained run to start from.")
    gpt2_weights: str | None = option(None, "Or GPT-2 weights: a model.safetensors.")
    out_dir: str | None = option("runs/finetuned", "Where to write the fine-tuned run.")
    epochs: int = option(3, "Passes over the training data (unless max_steps is smaller).")
    batch_size: int = option(8, "Examples per micro-batch.")
    learning_rate: float = option(1e-4, "Peak learning rate.")
    warmup_steps: int = option(0, "Steps of linear learning-rate warm-up.")
    beta2: float = option(0.999, "AdamW beta2.")
    eval_interval: int | None = option(None, "Steps between evaluations (default: each epoch).")
    val_fraction: float = option(0.1, "Share held out for validation.")
    test_fraction: float = option(0.1, "Share held out for testing.")
    max_length: int | None = option(None, "Cut examples to this many tokens (default: context).")
    lora_rank: int | None = option(None, "Train LoRA adapters of this rank instead.")
    lora_alpha: float | None = option(None, "LoRA scale numerator (default: the rank).")
    seed: int = option(123, "Random seed: split, order, head initialisation and dropout.")

    def _check_budget(self) -> None:
        _require_positive_int("epochs", self.epochs)
        if self.max_time is not None and not self.max_time > 0:
            raise ConfigError(f"max_time must be a positive number of seconds, got {self.max_time}")

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise ConfigError(f"give the fine-tuning data file with {setting('data')}")
        if (self.base_run is None) == (self.gpt2_weights is None):
            raise ConfigError(
                f"start from exactly one of a run ({setting('base_run')}) or GPT-2 weights "
                f"({setting('gpt2_weights')})"
            )
        if self.lora_rank is not None:
            _require_positive_int("lora_rank", self.lora_rank)
        if self.max_length is not None:
            _require_positive_int("max_length", self.max_length)


@dataclass(kw_only=True)
class ClassifyConfig(FinetuneConfig):
    out_dir: str | None = option("runs/classifier", "Where to write the fine-tuned run.")
    epochs: int = option(5, "Passes over the training data (unless max_steps is smaller).")
    learning_rate: float = option(1e-3, "Peak learning rate (GPT-2 124M: the book's 5e-5).")
    test_fraction: float = option(0.2, "Share held out for testing.")
    val_data: str | None = option(None, "Separate validation file (with --test-data).")
    test_data: str | None = option(None, "Separate test file (with --val-data).")
    train: str = option("last-block", "What trains: last-block, all or head (not with LoRA).")
    read_at: str = option(
        "eot", "Read the class at an appended <|endoftext|> (eot) or the text's last token."
    )
    balance: bool = option(False, "Downsample every class to the smallest.")

    def validate(self) -> None:
        super().validate()
        if self.train not in TRAINABLE:
            raise ConfigError(
                f"unknown {setting('train')} {self.train!r}; choose one of: {', '.join(TRAINABLE)}"
            )
        if self.read_at not in READ_AT:
            raise ConfigError(
                f"unknown {setting('read_at')} {self.read_at!r}; choose one of: "
                f"{', '.join(READ_AT)}"
            )
        if bool(self.val_data) != bool(self.test_data):
            raise ConfigError(
                f"give both {setting('val_data')} and {setting('test_data')}, or neither (to "
                f"split {setting('data')})"
            )


@dataclass(kw_only=True)
class InstructConfig(FinetuneConfig):
    out_dir: str | None = option("runs/instruct", "Where to write the fine-tuned run.")
    mask_prompt: bool = option(False, "Train on the responses only.")
    max_new_tokens: int = option(128, "Longest test response, in tokens.")


@dataclass(kw_only=True)
class ChatConfig(FinetuneConfig):
    """Multi-turn chat fine-tuning in ChatML (finetune/chat.py)."""

    data: str = option(
        "builtin",
        "Conversations: builtin, or a .jsonl/.json file (OpenAI messages, ShareGPT, Alpaca).",
    )
    out_dir: str | None = option("runs/chat", "Where to write the fine-tuned run.")
    max_new_tokens: int = option(64, "Longest sample reply, in tokens.")

    def validate(self) -> None:
        super().validate()
        _require_positive_int("max_new_tokens", self.max_new_tokens)


@dataclass(kw_only=True)
class DPOConfig(FinetuneConfig):
    """Preference tuning with DPO from a chat or instruct run (finetune/dpo.py)."""

    data: str = option(
        "", "Preference pairs: a .jsonl of {prompt or messages, chosen, rejected} records."
    )
    out_dir: str | None = option("runs/dpo", "Where to write the fine-tuned run.")
    beta: float = option(0.1, "How far the model may move from where it started (DPO's beta).")
    sft_weight: float = option(
        0.0,
        "Weight of plain fine-tuning on the chosen replies added to DPO (RPO): keeps them "
        "likely, not only likelier than the rejected ones. 0: DPO alone.",
    )
    learning_rate: float = option(5e-5, "Peak learning rate.")

    def validate(self) -> None:
        super().validate()
        if self.gpt2_weights is not None:
            raise ConfigError(
                f"DPO starts from a chat or instruct run, whose format the pairs are "
                f"written in; give one with {setting('base_run')}"
            )
        if not self.beta > 0:
            raise ConfigError(f"beta must be a positive number, got {self.beta!r}")
        if not self.sft_weight >= 0:
            raise ConfigError(f"sft_weight must be 0 or more, got {self.sft_weight!r}")


@dataclass(kw_only=True)
class RLConfig(FinetuneConfig):
    """Reinforcement learning on checkable tasks from a chat run (finetune/rl.py)."""

    task: str = option(
        "all",
        "Checkable task: arithmetic, counting, spelling, reversing, all, or a .jsonl file "
        "of problems ({prompt or messages, answer}) checked by --checker.",
    )
    checker: str | None = option(
        None,
        "For a task file: the function that checks a reply (module:function or file.py:function).",
    )
    out_dir: str | None = option("runs/rl", "Where to write the fine-tuned run.")
    problems: int = option(256, "Training problems per task (an epoch is one pass over them).")
    eval_problems: int = option(32, "Held-out problems per task for validation and for testing.")
    samples: int = option(4, "Answers sampled per prompt (k, for the advantage and pass@k).")
    max_reply_tokens: int = option(32, "Longest sampled answer, in tokens.")
    temperature: float = option(1.0, "Sampling temperature of the answers.")
    batch_size: int = option(4, "Prompts per micro-batch (each answered `samples` times).")
    epochs: int = option(1, "Passes over the training problems (unless max_steps is smaller).")
    learning_rate: float = option(1e-5, "Peak learning rate.")

    @property
    def task_file(self) -> bool:
        """Whether `task` names a file of problems (read with a checker), not a built-in task."""
        return Path(self.task).suffix in (".jsonl", ".json", ".csv")

    def validate(self) -> None:
        LoopConfig.validate(self)  # no data file: the problems are drawn, not read
        if self.base_run is None or self.gpt2_weights is not None:
            raise ConfigError(f"RL starts from a chat run; give one with {setting('base_run')}")
        for name in ("problems", "eval_problems", "samples", "max_reply_tokens"):
            _require_positive_int(name, getattr(self, name))
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be a positive number, got {self.temperature!r}")
        if self.checker is not None and not self.task_file:
            raise ConfigError(
                f"{setting('checker')} checks a task file's answers; the built-in task "
                f"{self.task!r} has its own check, so drop {setting('checker')}"
            )


# ------------------------------------------------------------------ helpers
def _require_positive_int(name: str, value: Any, alternative: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer{alternative}, got {value!r}")


def _check_model(preset: str, model: dict[str, Any]) -> None:
    """Fail before any slow work (data preparation) on model settings that cannot work."""
    from slm_model import PRESETS, GPTConfig

    if preset not in PRESETS:
        raise ConfigError(f"unknown model preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(GPTConfig)}
    unknown = sorted(set(model) - fields)
    if unknown:
        raise ConfigError(
            f"unknown model field {unknown[0]!r}; valid fields: {', '.join(sorted(fields))}"
        )


def parse_tokenizer_spec(spec: str) -> tuple[str, int | None]:
    """`gpt2`, `bpe:VOCAB_SIZE` or a tokenizer file -> (kind, vocab size).

    A file is slm's own (`slm-cli tokenizer train`) or a Hugging Face
    tokenizer.json that slm can read, named by its path (or `file:PATH`), so a
    tokenizer trained once serves many runs. Only its existence is checked
    here; `prepare` reads it.
    """
    if spec == "gpt2":
        return "gpt2", None
    kind, _, size = spec.partition(":")
    if kind == "bpe" and size.isdigit() and int(size) >= 257:
        return "bpe", int(size)
    path = tokenizer_file(spec)
    if path is None:
        raise ValueError(
            f"unknown tokenizer {spec!r}; use gpt2, bpe:VOCAB_SIZE with a vocabulary of at "
            "least 257 (e.g. bpe:4096), or the path of a tokenizer .json file"
        )
    if path.is_dir():
        raise ValueError(
            f"{path} is a folder, not a tokenizer file; give the file in it, e.g. "
            f"{path / 'tokenizer.json'}"
        )
    if not path.is_file():
        raise ValueError(
            f"tokenizer file {path} does not exist; save one with "
            f"`slm-cli tokenizer train --out {path}`, or use gpt2 or bpe:VOCAB_SIZE"
        )
    return "file", None


def tokenizer_file(spec: str) -> Path | None:
    """The file a tokenizer spec names, or None if it names none (gpt2, bpe:N, a typo).

    A spec names a file when it says `file:PATH`, when something is there, or
    when it looks like a path (a .json name, or a folder in it).
    """
    if spec.startswith("file:"):
        return Path(spec[5:])
    if spec == "gpt2" or spec.startswith("bpe:"):
        return None
    path = Path(spec)
    if path.exists() or path.suffix == ".json" or len(path.parts) > 1:
        return path
    return None
