"""Log-likelihoods of continuations: the one question multiple-choice tasks ask a model.

"How likely is this continuation after this context?" is the sum of the
log-probabilities of the continuation's tokens, each given everything before
it, as lm-evaluation-harness's `loglikelihood` asks it. The sequence is cut
from the left to the model's context length (the continuation is always kept
whole), and sequences are scored in padded batches; padding sits after each
sequence, where causal attention keeps it from changing anything scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from slm_model import GPTModel

Pair = tuple[Sequence[int], Sequence[int]]  # (context ids, continuation ids)


def continuation_log_likelihoods(
    model: GPTModel,
    pairs: Sequence[Pair],
    batch_size: int = 32,
    advance: Callable[[int], None] | None = None,
) -> list[float]:
    """log p(continuation | context) in nats for each pair, in order; `advance(k)` after each
    batch of k pairs."""
    results: list[float] = []
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        results.extend(_batch(model, batch))
        if advance:
            advance(len(batch))
    return results


@torch.no_grad()
def _batch(model: GPTModel, pairs: Sequence[Pair]) -> list[float]:
    block = model.config.block_size
    rows, scored = [], []
    for context, continuation in pairs:
        if not context:
            raise ValueError("a context needs a token at least (start it with <|endoftext|>)")
        if not continuation or len(continuation) > block:
            raise ValueError(
                f"a continuation must have 1 to {block} tokens (the context length), "
                f"not {len(continuation)}"
            )
        sequence = [*context, *continuation][-(block + 1) :]
        rows.append(sequence[:-1])
        scored.append((len(sequence) - 1 - len(continuation), list(continuation)))
    device = model.tok_emb.weight.device
    width = max(len(row) for row in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    was_training = model.training
    model.eval()
    log_probs = F.log_softmax(model(ids.to(device)).float(), dim=-1)
    model.train(was_training)
    sums = []
    for i, (first, continuation) in enumerate(scored):
        positions = torch.arange(first, first + len(continuation), device=device)
        targets = torch.tensor(continuation, device=device)
        sums.append(float(log_probs[i, positions, targets].sum()))
    return sums
