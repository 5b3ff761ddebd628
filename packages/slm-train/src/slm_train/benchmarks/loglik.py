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
    batch of k pairs. Pairs of similar length are batched together, so little is padding."""
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    results = [0.0] * len(pairs)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        for index, value in zip(indices, _batch(model, [pairs[i] for i in indices]), strict=True):
            results[index] = value
        if advance:
            advance(len(indices))
    return results


@torch.no_grad()
def _batch(model: GPTModel, pairs: Sequence[Pair]) -> list[float]:
    block = model.config.block_size
    rows, positions, targets = [], [], []
    for row, (context, continuation) in enumerate(pairs):
        if not context:
            raise ValueError("a context needs a token at least (start it with <|endoftext|>)")
        if not continuation or len(continuation) > block:
            raise ValueError(
                f"a continuation must have 1 to {block} tokens (the context length), "
                f"not {len(continuation)}"
            )
        sequence = [*context, *continuation][-(block + 1) :]
        rows.append(sequence[:-1])
        first = len(sequence) - 1 - len(continuation)  # where the first continuation token is due
        positions += [(row, first + k) for k in range(len(continuation))]
        targets += continuation
    device = model.tok_emb.weight.device
    ids = torch.zeros(len(rows), max(len(row) for row in rows), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    was_training = model.training
    model.eval()
    hidden = model.hidden_states(ids.to(device))
    model.train(was_training)
    where = torch.tensor(positions, device=device)
    # GPTModel.forward's output layer, only where a continuation token is scored: most
    # positions are context, and the output layer is the widest matrix of a small model.
    logits = model.logits(hidden[where[:, 0], where[:, 1]]).float()
    rows_scored = torch.arange(len(targets), device=device)
    chosen = F.log_softmax(logits, dim=-1)[rows_scored, torch.tensor(targets, device=device)]
    sums = torch.zeros(len(rows), dtype=torch.float64)
    sums.index_add_(0, where[:, 0].cpu(), chosen.double().cpu())
    return sums.tolist()
