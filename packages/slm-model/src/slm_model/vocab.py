"""Growing a model's vocabulary: rows for token ids its tokenizer has just gained.

Chat fine-tuning adds the ChatML markers (`<|im_start|>`, `<|im_end|>`) to a
tokenizer that lacks them (GPT-2's, runs trained before the markers were
reserved). The tokenizer appends them after its last id, so the model needs
one new row per marker in its token embedding and in its output layer (and
in its value-embedding tables, value_embeddings.py, when it has them), and
nothing else changes: every old id keeps exactly its rows, so old ids get the
same logits as before (the new ids only add columns to the softmax).

A new row starts at the mean of the existing rows (Hewitt, 2021, "Initializing
new word embeddings for pretrained language models"): as an input it looks
like an ordinary token, and as an output its logit starts near the average
logit, so the first loss on it is about log(vocab_size) instead of whatever a
random row happens to give.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .model import GPTModel


def grow_vocabulary(model: GPTModel, vocab_size: int, *, new_from: int | None = None) -> GPTModel:
    """Give `model` rows for the ids up to `vocab_size - 1`, in place; returns the model.

    Rows `new_from` .. `vocab_size - 1` of the token embedding and of the
    output layer (one tensor when they are tied) become the mean of rows
    0 .. `new_from - 1`; every other row keeps its values. `new_from` is the
    tokenizer's size before the new ids were added, and defaults to the
    model's vocab_size (the model has a row for every old id and none
    spare). `model.config.vocab_size` becomes the larger of the two sizes.

    Spare rows: a model may have more rows than its tokenizer has ids (a
    table padded to a round size, as many imported models are). Then the new
    ids fall on spare rows, and those are reset to the mean too, since
    pre-training never used them as a target: their output rows were only
    ever pushed down, so left as they are the new token would start as one the
    model is sure never comes. Spare rows past `vocab_size` stay as they are.
    """
    old_size = model.config.vocab_size
    new_from = old_size if new_from is None else new_from
    if not 0 < new_from <= min(old_size, vocab_size):
        raise ValueError(
            f"new_from must be between 1 and the model's vocab_size ({old_size}) and at most "
            f"vocab_size ({vocab_size}); got {new_from}"
        )
    size = max(old_size, vocab_size)
    old_embedding, old_head = model.tok_emb.weight, model.lm_head.weight
    embedding = _grown(old_embedding, size, new_from, vocab_size)
    head = embedding if old_head is old_embedding else _grown(old_head, size, new_from, vocab_size)
    # Built on the meta device (no memory, no random rows), then given the grown weights.
    model.tok_emb = nn.Embedding(size, model.config.n_embd, device="meta")
    model.tok_emb.weight = embedding
    model.lm_head = nn.Linear(model.config.n_embd, size, bias=False, device="meta")
    model.lm_head.weight = head  # the same Parameter as the embedding's when they are tied
    for block in model.blocks:
        if block.value_embed is not None:
            table = _grown(block.value_embed.table.weight, size, new_from, vocab_size)
            block.value_embed.table = nn.Embedding(size, table.shape[1], device="meta")
            block.value_embed.table.weight = table
    model.config = dataclasses.replace(model.config, vocab_size=size)
    return model


def _grown(weight: nn.Parameter, size: int, new_from: int, new_to: int) -> nn.Parameter:
    """`weight` with `size` rows: the old rows, then rows new_from..new_to-1 set to the mean."""
    rows = torch.empty(size, weight.shape[1], dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        rows[: weight.shape[0]] = weight
        rows[new_from:new_to] = weight[:new_from].float().mean(dim=0).to(weight.dtype)
    return nn.Parameter(rows, requires_grad=weight.requires_grad)
