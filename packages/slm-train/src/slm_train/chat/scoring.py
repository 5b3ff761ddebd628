"""The chat scorecard: how a chat model does on held-out conversations, as numbers.

Issue 20's goals, measured on the `test` split of mixture.py (or any list of
`Example`s): the model answers each conversation's last question greedily,
through the one generation engine (`slm_model.generate`, stopping at
`<|im_end|>`), from the same rendering it was trained on
(`render_conversation(..., add_generation_prompt=True)`). Then:

- `ended`: the share of replies that close with `<|im_end|>` within
  `max_reply_tokens` (the goal: at least 95 %);
- `identity`: the share of identity questions, in phrasings training never
  used, answered truly (the goal: at least 90 %);
- `tasks`: each checkable task's accuracy on held-out problems, beside the
  accuracy of always giving the most common answer (the goal: clearly above).

bench/chat.py prints it, and `train --chat` ends with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from slm_model import GPTModel, generate
from slm_tokenizer import BPETokenizer
from slm_tokenizer.chat import IM_END, render_conversation

from .checkable import Expected, constant_baseline
from .mixture import Example

BATCH = 32  # prompts of one length are answered together: the same replies (up to rounding), sooner


@dataclass
class Reply:
    source: str
    question: str  # the last user turn
    text: str  # the reply, without <|im_end|>
    ended: bool
    correct: bool | None  # None where the example has no check


@dataclass
class TaskScore:
    accuracy: float
    baseline: float  # always the most common answer
    count: int


@dataclass
class Scorecard:
    ended: float
    identity: float | None  # None when there were no identity questions
    tasks: dict[str, TaskScore] = field(default_factory=dict)
    replies: list[Reply] = field(default_factory=list)


def score_chat(
    model: GPTModel,
    tokenizer: BPETokenizer,
    examples: Sequence[Example],
    *,
    max_reply_tokens: int = 64,
) -> Scorecard:
    """Answer every example's last question greedily and measure the replies."""
    replies = answer(model, tokenizer, examples, max_reply_tokens)
    identity = [r.correct for r in replies if r.source == "identity"]
    by_task: dict[str, list[tuple[Reply, Expected]]] = defaultdict(list)
    for reply, example in zip(replies, examples, strict=True):
        if isinstance(example.check, Expected):
            by_task[example.source].append((reply, example.check))
    tasks = {
        name: TaskScore(
            accuracy=sum(reply.correct for reply, _ in pairs) / len(pairs),
            baseline=constant_baseline([check for _, check in pairs]),
            count=len(pairs),
        )
        for name, pairs in by_task.items()
    }
    return Scorecard(
        ended=sum(r.ended for r in replies) / len(replies) if replies else 0.0,
        identity=sum(identity) / len(identity) if identity else None,
        tasks=tasks,
        replies=replies,
    )


def answer(
    model: GPTModel, tokenizer: BPETokenizer, examples: Sequence[Example], max_reply_tokens: int
) -> list[Reply]:
    """The model's greedy reply in place of each example's last (assistant) turn."""
    end = tokenizer.special_tokens[IM_END]
    prompts = [
        render_conversation(tokenizer, example.messages[:-1], add_generation_prompt=True)[0]
        for example in examples
    ]
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, prompt in enumerate(prompts):
        by_length[len(prompt)].append(index)
    generated: dict[int, list[int]] = {}
    for length, indices in by_length.items():
        for start in range(0, len(indices), BATCH):
            batch = indices[start : start + BATCH]
            ids = torch.tensor([prompts[i] for i in batch])
            out = generate(model, ids, max_reply_tokens, temperature=0.0, eos_id=end)
            for i, row in zip(batch, out[:, length:].tolist(), strict=True):
                generated[i] = row
    return [_reply(tokenizer, example, generated[i], end) for i, example in enumerate(examples)]


def _reply(tokenizer: BPETokenizer, example: Example, ids: list[int], end: int) -> Reply:
    ended = end in ids
    text = tokenizer.decode(ids[: ids.index(end)] if ended else ids)
    return Reply(
        source=example.source,
        question=example.messages[-2]["content"],
        text=text,
        ended=ended,
        correct=example.check(text) if example.check else None,
    )
