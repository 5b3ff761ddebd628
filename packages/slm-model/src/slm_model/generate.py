"""Sampling text from a model.

Each step turns the logits of the last position into a distribution over the
next token and draws from it:
- temperature divides the logits: below 1 sharpens the distribution, above 1
  flattens it, and 0 means "always take the most likely token" (greedy);
- top_k keeps only the k most likely tokens;
- top_p ("nucleus") keeps the smallest set of most likely tokens whose
  probabilities add up to at least p.

With the KV cache (the default), the prompt is run once and each later step
feeds only the new token. Once the sequence outgrows the context window, the
window slides: every token moves to a new position (a learned table, or RoPE's
angles, both count from the window's start), and the cached keys were computed
with the evicted tokens in view, so the window is re-run from scratch. That
keeps the output identical to running without a cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from .model import GPTModel


def _check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row from logits (batch, vocab); returns (batch,) ids."""
    _check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth_largest = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token when the tokens before it already reach top_p; the first always stays.
        drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probabilities = torch.softmax(logits, dim=-1)
    return torch.multinomial(probabilities, num_samples=1, generator=generator).squeeze(-1)


def _as_batch(idx: torch.Tensor | Sequence[int], model: GPTModel) -> torch.Tensor:
    device = model.tok_emb.weight.device
    if not isinstance(idx, torch.Tensor):
        idx = torch.tensor(list(idx), dtype=torch.long)
    if idx.dim() == 1:
        idx = idx.unsqueeze(0)
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError(
            f"the prompt must hold at least one token id, got shape {tuple(idx.shape)}"
        )
    if idx.min() < 0 or idx.max() >= model.config.vocab_size:
        raise ValueError(
            f"prompt token ids must be in 0..{model.config.vocab_size - 1}; the tokenizer does not "
            "match the model"
        )
    return idx.to(device=device, dtype=torch.long)


@torch.inference_mode()
def _steps(
    model: GPTModel,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
    use_cache: bool,
) -> Iterator[torch.Tensor]:
    """Yield (batch,) new token ids, one step at a time."""
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    _check_sampling(temperature, top_k, top_p)
    block_size = model.config.block_size
    cache = model.new_kv_cache(idx.shape[0]) if use_cache else None
    sequence = idx
    pending = sequence[:, -block_size:]  # tokens the model has not seen yet
    for _ in range(max_new_tokens):
        if cache is not None and cache.length + pending.shape[1] > block_size:
            cache.reset()  # the window slides: every position changes, so start over
            pending = sequence[:, -block_size:]
        if cache is None:
            pending = sequence[:, -block_size:]
        hidden = model.hidden_states(pending, cache)
        logits = model.logits(hidden[:, -1, :])
        next_ids = sample_next(logits, temperature, top_k, top_p, generator)
        yield next_ids
        pending = next_ids[:, None]
        sequence = torch.cat([sequence, pending], dim=1)


@contextlib.contextmanager
def _eval_mode(model: GPTModel) -> Iterator[None]:
    """No dropout while sampling; the model's training mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def generate(
    model: GPTModel,
    idx: torch.Tensor | Sequence[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Extend each prompt row by up to `max_new_tokens` tokens; returns (batch, tokens).

    Generation stops early once every row has produced `eos_id`; rows that
    finished earlier are padded with `eos_id`.
    """
    idx = _as_batch(idx, model)
    new_tokens = []
    finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
    steps = _steps(model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache)
    with _eval_mode(model):
        for next_ids in steps:
            if eos_id is not None:
                next_ids = next_ids.masked_fill(finished, eos_id)
                finished |= next_ids == eos_id
            new_tokens.append(next_ids)
            if eos_id is not None and bool(finished.all()):
                break
    return torch.cat([idx, *(t[:, None] for t in new_tokens)], dim=1)


def stream(
    model: GPTModel,
    idx: torch.Tensor | Sequence[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> Iterator[int]:
    """Yield new token ids one at a time for a single prompt (for a chat REPL).

    Stops after yielding `eos_id`. Closing the generator early (e.g. on Ctrl-C)
    is safe.
    """
    idx = _as_batch(idx, model)
    if idx.shape[0] != 1:
        raise ValueError(
            f"stream() takes one prompt, got a batch of {idx.shape[0]}; use generate()"
        )
    steps = _steps(model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache)
    with _eval_mode(model):
        for next_ids in steps:
            token = int(next_ids[0])
            yield token
            if token == eos_id:
                return
