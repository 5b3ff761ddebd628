"""Looking inside a model: attention maps, surprise, the logit lens, next-token odds.

The book draws these pictures by hand; here they come from your own model.
Each function takes a model and one sequence of token ids and returns plain
tensors (float32, on the CPU), so a notebook can plot them and `slm-cli
inspect` can print them.

    attention_maps   softmax(QK^T / sqrt(d)) of every layer and head
    token_surprise   the loss at each token: -log p(token | the tokens before it)
    logit_lens       what the residual stream after each block would predict,
                     read through the final norm and the output layer
                     (nostalgebraist, 2020)
    top_next_tokens  the most likely next tokens after a position

Nothing here changes the model. A forward pass runs as usual (with the fused
SDPA kernel); hooks record the residual stream between blocks, and for
attention maps each block's attention input is run once more through
`MultiHeadAttention.forward_with_weights`, the explicit path that also returns
the weights. So it works for every architecture `GPTConfig` builds: learned
positions or RoPE, grouped-query heads (each query head's map, keys shared in
its group), QK-norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import GPTModel


@dataclass(frozen=True)
class Trace:
    """What one forward pass went through, for a single sequence of `tokens` ids.

    residual: (n_layer + 1, tokens, n_embd): the residual stream after the
        embeddings (row 0) and after each block (row L + 1 is after block L).
    logits: (tokens, vocab_size): the model's output.
    attention: (n_layer, n_head, tokens, tokens) or None: row i of a map is how
        much token i attends to each token 0..i.
    """

    residual: torch.Tensor
    logits: torch.Tensor
    attention: torch.Tensor | None


@dataclass(frozen=True)
class LogitLens:
    """Each layer's best guesses for the next token, at every position.

    token_ids, probabilities: (n_layer + 1, tokens, top_k), most likely first.
    Row 0 reads the embeddings alone; row L + 1 the stream after block L, so
    the last row is the model's own prediction.
    """

    token_ids: torch.Tensor
    probabilities: torch.Tensor


@dataclass(frozen=True)
class NextTokens:
    """The `k` most likely tokens to follow the token at `position`, most likely first."""

    position: int
    token_ids: list[int]
    probabilities: list[float]


def as_ids(model: GPTModel, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """One sequence of ids as a (1, tokens) tensor on the model's device, checked."""
    ids = torch.as_tensor(ids if isinstance(ids, torch.Tensor) else list(ids), dtype=torch.long)
    if ids.dim() == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.dim() != 1 or ids.numel() == 0:
        raise ValueError(
            f"expected one non-empty sequence of token ids, got shape {tuple(ids.shape)}"
        )
    vocab, block = model.config.vocab_size, model.config.block_size
    if ids.min() < 0 or ids.max() >= vocab:
        raise ValueError(
            f"token ids must be in 0..{vocab - 1}; the tokenizer does not match the model"
        )
    if ids.numel() > block:
        raise ValueError(
            f"{ids.numel()} tokens exceed the model's context of {block}; "
            f"keep only the last {block} tokens"
        )
    return ids.unsqueeze(0).to(model.tok_emb.weight.device)


def trace(model: GPTModel, ids: torch.Tensor | Sequence[int], attention: bool = True) -> Trace:
    """Run `ids` through the model in eval mode and record what happened inside."""
    idx = as_ids(model, ids)
    residual: list[torch.Tensor] = []
    maps: list[torch.Tensor] = []

    def block_input(block, args):
        residual.append(args[0])

    def last_block_output(block, args, output):
        residual.append(output)

    def attention_weights(attn, args, output):
        maps.append(attn.forward_with_weights(args[0])[1])

    hooks = [block.register_forward_pre_hook(block_input) for block in model.blocks]
    hooks.append(model.blocks[-1].register_forward_hook(last_block_output))
    if attention:
        hooks += [block.attn.register_forward_hook(attention_weights) for block in model.blocks]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(idx)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return Trace(
        residual=torch.stack([r[0] for r in residual]).float().cpu(),
        logits=logits[0].float().cpu(),
        attention=torch.stack([m[0] for m in maps]).float().cpu() if attention else None,
    )


def attention_maps(model: GPTModel, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """(n_layer, n_head, tokens, tokens): every head's attention weights.

    Each row sums to 1 and is zero right of the diagonal (no token sees the future).
    """
    maps = trace(model, ids).attention
    assert maps is not None
    return maps


def token_surprise(model: GPTModel, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """(tokens - 1,): the model's loss at each token after the first, in nats.

    Entry t is -log p(ids[t + 1] | ids[0..t]); the first token has no context to
    be predicted from. Their mean is the usual cross-entropy loss.
    """
    idx = as_ids(model, ids)
    logits = trace(model, idx, attention=False).logits
    return F.cross_entropy(logits[:-1], idx[0, 1:].cpu(), reduction="none")


def logit_lens(model: GPTModel, ids: torch.Tensor | Sequence[int], top_k: int = 5) -> LogitLens:
    """What each layer would predict if the model stopped there (see `LogitLens`).

    Early layers of a trained model often guess common tokens; the guesses
    sharpen towards the model's answer as the residual stream gathers context.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k}")
    top_k = min(top_k, model.config.vocab_size)
    device = model.tok_emb.weight.device
    token_ids, probabilities = [], []
    with torch.no_grad():
        # One layer at a time, so only one (tokens, vocab) block of logits is alive.
        for stream in trace(model, ids, attention=False).residual:
            logits = model.logits(model.final_norm(stream.to(device, model.tok_emb.weight.dtype)))
            best = torch.softmax(logits.float(), dim=-1).topk(top_k, dim=-1)
            token_ids.append(best.indices.cpu())
            probabilities.append(best.values.cpu())
    return LogitLens(torch.stack(token_ids), torch.stack(probabilities))


def top_next_tokens(
    model: GPTModel, ids: torch.Tensor | Sequence[int], k: int = 10, at: int | None = None
) -> NextTokens:
    """The `k` most likely tokens to follow the token at index `at` (default: the last).

    A negative `at` counts from the end, as in Python.
    """
    logits = trace(model, ids, attention=False).logits
    tokens = logits.shape[0]
    position = tokens - 1 if at is None else at
    if not -tokens <= position < tokens:
        raise ValueError(
            f"position {at} is outside the text's {tokens} tokens; choose 0..{tokens - 1}"
        )
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    best = torch.softmax(logits[position].float(), dim=-1).topk(min(k, logits.shape[-1]))
    return NextTokens(position % tokens, best.indices.tolist(), best.values.tolist())
