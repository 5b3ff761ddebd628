"""From nothing to a model that answers, in one call: `slm-cli train --chat`.

nanochat's speedrun in miniature, under one time budget (10 minutes by
default, sized for a 2-core CPU):

    1. tokenizer + pre-training   `train` on the built-in corpus, into `<out>-base`
    2. chat fine-tuning            `finetune_chat` on the built-in conversations
                                   (small talk, who the model is, checkable tasks), into `<out>`

Both stages are the ordinary ones, on the one engine, writing ordinary runs;
this module only chains them and shares the clock. Pre-training gets
`pretrain_share` of the budget and fine-tuning whatever is left, so time the
tokenizer or an evaluation took comes out of the chat stage, not on top of it.
How the budget is split, and what pre-training reads, were measured with
`bench/chat.py` (docs/chat.md has the table).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compare import sample_run
from .config import ChatConfig, ConfigError, TrainConfig
from .finetune.chat import ChatResult, finetune_chat
from .naming import setting
from .pretrain import TrainResult, plan_training, train
from .report import Reporter
from .run import Run

CHAT_BUDGET = 600.0  # seconds: the whole recipe, when no max_time is given
PRETRAIN_SHARE = 0.6  # of the budget; measured in bench/chat.py
CHAT_OUT_DIR = "runs/chat"
GREETING = "Who are you?"
# Seconds kept back from the chat stage's budget for what follows its training: the test
# loss, five test replies and the greeting took 4 s on a 2-core CPU, so the recipe ended
# 3 s past its 600 without this.
FINISH_RESERVE = 10.0
# The chat stage's peak learning rate: 3e-4 beat 1e-3 (62 % against 52 % identity, test
# loss 2.63 against 2.70) after 240 s on the same base; bench/chat.py --base ... --lrs.
CHAT_LR = 3e-4


@dataclass
class ChatRecipeResult:
    base: TrainResult
    chat: ChatResult | None  # None if pre-training was interrupted
    seconds: dict[str, float] = field(default_factory=dict)  # pretraining, chat fine-tuning
    greeting: tuple[str, str] | None = None  # a question and the chat run's greedy reply

    @property
    def interrupted(self) -> bool:
        return self.chat is None or self.chat.interrupted


def plan_chat(
    overrides: dict[str, Any], *, config_file: str | Path | None = None, resume: bool = False
) -> TrainConfig:
    """The pre-training settings a `train --chat` command line asks for (plan_training's
    rules, with this recipe's 10-minute budget for both stages when none is given)."""
    out = Path(overrides.get("out_dir") or CHAT_OUT_DIR)
    if resume:
        raise ConfigError(
            f"{setting('chat', True)} runs two stages, each an ordinary run; resume the one that "
            f"stopped: slm-cli train --resume --out {base_run_dir(out)}, or slm-cli finetune "
            f"chat --resume --run {base_run_dir(out)} --out {out}"
        )
    overrides = {"out_dir": CHAT_OUT_DIR, **{k: v for k, v in overrides.items() if v is not None}}
    return plan_training(
        overrides, config_file=config_file, default_budget={"max_time": CHAT_BUDGET}
    )


def base_run_dir(out_dir: str | Path) -> Path:
    """Where the pre-trained run goes: beside the chat run, named after it."""
    out = Path(out_dir)
    return out.with_name(out.name + "-base")


def train_chat(
    config: TrainConfig,
    *,
    force: bool = False,
    reporter: Reporter | None = None,
    chat_reporter: Reporter | None = None,
    pretrain_share: float = PRETRAIN_SHARE,
) -> ChatRecipeResult:
    """Pre-train, then chat-tune, within `config.max_time` seconds in all (default 10 minutes).

    `config` is the pre-training's (model, data, seed, device...). Its
    max_time is the whole recipe's; its other budgets (max_steps, max_tokens)
    bound each stage. The chat stage uses the same seed, device, precision and
    processes. `chat_reporter` shows the chat stage (default: `reporter`), since
    a fine-tuning's evaluations report other numbers than pre-training's.
    """
    if not 0 < pretrain_share < 1:
        raise ConfigError(f"pretrain_share must be between 0 and 1, got {pretrain_share}")
    total = config.max_time or CHAT_BUDGET
    out_dir = Path(config.out_dir or CHAT_OUT_DIR)
    started = time.perf_counter()
    base_config = config.replace(
        out_dir=str(base_run_dir(out_dir)), max_time=total * pretrain_share
    )
    base = train(base_config, force=force, reporter=reporter)
    seconds = {"pretraining": time.perf_counter() - started}
    if base.interrupted:
        return ChatRecipeResult(base, None, seconds)
    left = total - seconds["pretraining"] - FINISH_RESERVE
    if left <= 0:
        raise ConfigError(
            f"pre-training used the whole budget ({total:.0f} s); raise {setting('max_time')}"
        )
    stage = chat_config(config, base.run_dir, out_dir, left)
    chat = finetune_chat(stage, force=force, reporter=chat_reporter or reporter)
    seconds["chat fine-tuning"] = time.perf_counter() - started - seconds["pretraining"]
    greeting = None
    if not chat.interrupted:  # what `slm-cli chat` would say first, greedily
        reply = sample_run(Run(chat.run_dir), GREETING, 64, temperature=0, device="cpu")
        greeting = (GREETING, reply)
    return ChatRecipeResult(base, chat, seconds, greeting)


def chat_config(config: TrainConfig, base: Path, out_dir: Path, seconds: float) -> ChatConfig:
    """The chat stage's settings: the built-in conversations, as many epochs as time allows."""
    return ChatConfig(
        base_run=str(base),
        out_dir=str(out_dir),
        max_time=seconds,
        max_steps=config.max_steps,
        max_tokens=config.max_tokens,
        epochs=1000,  # a budget ends it
        learning_rate=CHAT_LR,
        seed=config.seed,
        device=config.device,
        devices=config.devices,
        precision=config.precision,
    )
