"""Chat fine-tuning: multi-turn conversations in ChatML, on the shared engine (nanochat's SFT).

Each conversation is rendered by `slm_tokenizer.chat.render_conversation`,
the one renderer that the chat REPL, the server and exported templates also
follow, into ids and a loss mask that is 1 on the assistant's words and the
`<|im_end|>` that ends them. The loss is the next-token cross-entropy on
those positions only, so the model learns to answer and to stop, not to
write the user's turns.

Where the data comes from: a file of conversations (`chat/conversations.py`),
or `builtin`, slm's own mixture (`chat/mixture.py`, with the base run's true
facts); `conversation_splits` is the one place that chooses. Sample and test
replies come from `chat.scoring.answer`, the scorecard's own greedy replies
through `slm_model.generate`.

A base whose tokenizer lacks the markers (GPT-2's weights, runs trained before
they were reserved) gets them here: `with_chat_tokens` appends them after the
last id, `slm_model.grow_vocabulary` gives the model their rows, and the chat
run saves the grown tokenizer. With LoRA, the adapters on the blocks train,
and so do the markers' embedding and output rows (`lora.train_rows`): no
adapter reaches them, and a frozen `<|im_end|>` row would leave the model
unable to learn to stop.

A conversation longer than the context window is cut by whole turns from the
end, to the longest start of it that ends with an assistant reply and fits;
one whose first reply does not fit is dropped (`fit_to_window`). The run's
start report and config.json (`data.trimmed`, `data.dropped`) count both, over
all three splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from slm_model import GPTModel, grow_vocabulary
from slm_tokenizer import BPETokenizer
from slm_tokenizer.chat import CHAT_TOKENS, IM_END, render_conversation, with_chat_tokens
from torch import nn

from ..chat.conversations import Conversation, load_conversations
from ..chat.identity import model_facts
from ..chat.mixture import Example, builtin_conversations
from ..chat.scoring import answer
from ..config import ChatConfig, ConfigError
from ..data.sources import CorpusError
from ..engine import Batch, FitResult
from ..launch import on_devices
from ..lora import apply_lora, train_rows
from ..naming import setting
from ..prompts import CHATML
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
from .data import split

Encoded = tuple[list[int], list[int]]  # ids and loss mask, as render_conversation gives them


def collate_conversations(batch: list[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for rendered conversations, padded to the longest.

    targets[j] is the id after inputs[j] where the mask is 1 on that id, and
    -100 (ignored by the loss) where it is 0 and in the padding.
    """
    longest = max(len(ids) for ids, _ in batch) - 1
    inputs = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), longest), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, mask) in enumerate(batch):
        learned = torch.tensor(mask[1:], dtype=torch.bool)
        inputs[row, : len(ids) - 1] = torch.tensor(ids[:-1])
        targets[row, : len(ids) - 1] = torch.tensor(ids[1:]).masked_fill(~learned, IGNORE_INDEX)
    return inputs, targets


@dataclass
class Fitted:
    """Conversations rendered to fit the window, and how many did not fit whole."""

    encoded: list[Encoded]
    trimmed: int = 0
    dropped: int = 0


def fit_to_window(
    tokenizer: BPETokenizer, conversations: list[Conversation], window: int
) -> Fitted:
    """Render each conversation; cut whole turns from the end of those longer than `window`.

    A window of n positions takes n + 1 ids (inputs and the targets one
    later). A conversation that does not fit keeps its longest start that
    ends with an assistant reply and fits; with none, it is dropped. Whole
    turns only: a reply cut mid-way would teach the model to stop without
    its `<|im_end|>`, or to answer a question it never saw.
    """
    fitted = Fitted([])
    for conversation in conversations:
        # Turns are rendered one by one, as render_conversation does, so a start of the
        # conversation renders as the start of its ids.
        turns = [render_conversation(tokenizer, [message]) for message in conversation]
        keep = len(turns)
        while keep and sum(len(ids) for ids, _ in turns[:keep]) > window + 1:
            keep -= 1
            while keep and conversation[keep - 1]["role"] != "assistant":
                keep -= 1
        if keep == 0:
            fitted.dropped += 1
            continue
        fitted.trimmed += keep < len(turns)
        ids = [i for turn_ids, _ in turns[:keep] for i in turn_ids]
        mask = [m for _, turn_mask in turns[:keep] for m in turn_mask]
        fitted.encoded.append((ids, mask))
    return fitted


def as_example(conversation: Conversation, source: str = "data") -> Example:
    """A held-out conversation up to its last assistant reply, which a test answers in place."""
    last = max(i for i, message in enumerate(conversation) if message["role"] == "assistant")
    return Example(conversation[: last + 1], source)


class ChatTask(NextTokenTask):
    """Next-token loss on the assistant's turns; validation loss and one sample reply."""

    def __init__(self, tokenizer, splits, max_length: int, config: ChatConfig, micro: int) -> None:
        """`splits`: train and validation conversations, and the test `Example`s."""
        self.tokenizer, self.config = tokenizer, config
        self.pad_id = tokenizer.special_tokens[IM_END]  # any id: padding is never a target
        train_set, val_set, self.test_set = splits
        parts = (train_set, val_set, [example.messages for example in self.test_set])
        self.fitted = [fit_to_window(tokenizer, part, max_length) for part in parts]
        self.encoded, self.val_encoded, self.test_encoded = (f.encoded for f in self.fitted)
        self.sample = as_example((val_set or train_set)[0]) if train_set else None
        if not self.encoded:
            raise CorpusError(
                f"no training conversation has an assistant reply that fits in {max_length} "
                f"tokens; shorten the conversations, or raise {setting('max_length')} "
                "(up to the model's context)"
            )
        self.order = EpochOrder(len(self.encoded), config.batch_size, micro, config.seed)

    @property
    def trimmed(self) -> int:
        return sum(f.trimmed for f in self.fitted)

    @property
    def dropped(self) -> int:
        return sum(f.dropped for f in self.fitted)

    def collate(self, items: list[Encoded]) -> Batch:
        return collate_conversations(items, self.pad_id)

    def evaluate(self, model: nn.Module, step: int) -> tuple[dict[str, float], str | None]:
        sample = answer(model, self.tokenizer, [self.sample], self.config.max_new_tokens)[0]
        return self.losses(model, step), sample.text


@dataclass
class ChatResult:
    run_dir: Path
    history: list[dict[str, Any]]
    test_loss: float | None  # masked, on the held-out conversations, with the best weights
    trimmed: int  # conversations cut by whole turns to fit the context
    dropped: int  # conversations with no reply that fits
    samples: list[dict[str, str]] = field(default_factory=list)  # question, expected, reply
    interrupted: bool = False


@on_devices
def finetune_chat(
    config: ChatConfig,
    *,
    force: bool = False,
    resume: bool = False,
    reporter: Reporter | None = None,
) -> ChatResult:
    """Chat-tune a model on conversations; Ctrl-C saves `last/`, and `resume` continues."""
    return run_finetuning(_finetune, config, force=force, resume=resume, reporter=reporter)


def conversation_splits(config: ChatConfig, vocab_size: int) -> tuple[list, list, list[Example]]:
    """Train and validation conversations and test examples: slm's built-in mixture (which
    tells the model the truth about the base run, at its grown `vocab_size`), or a file
    split by `val_fraction` and `test_fraction`."""
    if config.data == "builtin":
        if config.base_run is None:
            raise ConfigError(
                f"the built-in conversations describe the base run, and GPT-2 weights are not "
                f"one; give a file of conversations with {setting('data')}"
            )
        facts = model_facts(Run(config.base_run), vocab_size=vocab_size)
        return builtin_conversations(facts, config.seed)
    conversations = load_conversations(config.data)
    train, val, test = split(
        conversations, (config.val_fraction, config.test_fraction), config.seed
    )
    return train, val, [as_example(conversation) for conversation in test]


def with_markers(model: GPTModel, tokenizer: BPETokenizer) -> tuple[BPETokenizer, list[int]]:
    """The tokenizer with the ChatML markers (the model grown to match if they are new),
    and the markers' ids."""
    chat_tokenizer = with_chat_tokens(tokenizer)
    if chat_tokenizer is not tokenizer:
        grow_vocabulary(model, chat_tokenizer.vocab_size, new_from=tokenizer.vocab_size)
    return chat_tokenizer, [chat_tokenizer.special_tokens[marker] for marker in CHAT_TOKENS]


def _finetune(config, dist, force, resume, reporter) -> ChatResult:
    device = dist.resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    model, base_tokenizer, base = load_base(config, device)
    tokenizer, markers = with_markers(model, base_tokenizer)
    splits = conversation_splits(config, model.config.vocab_size)
    max_length = min(config.max_length or model.config.block_size, model.config.block_size)
    micro = config.grad_accum_steps * dist.world_size
    task = ChatTask(tokenizer, splits, max_length, config, micro)  # checks the data first
    config = loop_config(config, task.order)
    what = _apply_lora(model, config, markers) if config.lora_rank else "all"
    added = tokenizer.vocab_size - base_tokenizer.vocab_size
    counts = {"trimmed": task.trimmed, "dropped": task.dropped, "markers_added": added}
    extra = {"kind": "chat", "prompt_format": CHATML}
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
        data_info=counts,
    )
    reporter.start(
        {
            "task": "chat (ChatML, multi-turn; loss on the assistant's turns)",
            "conversations": describe_splits(splits),
            "longer than the context": f"{task.trimmed} cut by whole turns, "
            f"{task.dropped} dropped (window: {max_length} tokens)",
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
        lambda result: ChatResult(
            run.path,
            result.history,
            None,
            task.trimmed,
            task.dropped,
            interrupted=result.interrupted,
        ),
        resume=resume,
        device=device,
        precision=precision,
        dist=dist,
        reporter=reporter,
    )


def _apply_lora(model: GPTModel, config: ChatConfig, markers: list[int]) -> str:
    """LoRA adapters on the blocks, and the markers' embedding and output rows trainable."""
    torch.manual_seed(config.seed)  # the adapters start from --seed, as a classifier's do
    apply_lora(model, config.lora_rank, config.lora_alpha)
    for weight in {id(w): w for w in (model.tok_emb.weight, model.lm_head.weight)}.values():
        train_rows(weight, markers)
    return f"LoRA rank {config.lora_rank} + the chat markers' rows"


def _test(run: Run, task: ChatTask, result: FitResult, device) -> ChatResult:
    """The best weights' masked loss on the test conversations, and their first replies."""
    best = run.load_model("best", device)
    test_loss = task.mean_loss(best, task.test_encoded) if task.test_encoded else None
    if test_loss is not None:
        append_metrics(run, {"type": "test", "test_loss": test_loss})
    examples = task.test_set[:5]
    replies = answer(best, task.tokenizer, examples, task.config.max_new_tokens)
    samples = [
        {"question": r.question, "expected": e.messages[-1]["content"], "reply": r.text}
        for r, e in zip(replies, examples, strict=True)
    ]
    return ChatResult(
        run.path, result.history, test_loss, task.trimmed, task.dropped, samples=samples
    )
