"""The GPT model (the book's chapter 4, GPT-2's architecture).

    tokens -> token embedding + position embedding -> dropout
           -> n_layer x TransformerBlock
           -> final LayerNorm -> linear layer to vocabulary logits

Each TransformerBlock is "pre-norm": x + attention(norm(x)), then
x + mlp(norm(x)). Normalising before each sub-layer, and adding its output to
an untouched residual stream, is what lets deep stacks train stably.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import overload

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention
from .config import GPTConfig
from .kv_cache import KVCache


class FeedForward(nn.Module):
    """Position-wise MLP: widen 4x, GELU, project back."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # GPT-2 uses the tanh approximation of GELU; matching it keeps imported weights exact.
        self.gelu = nn.GELU(approximate="tanh")
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(self.gelu(self.fc(x))))


class TransformerBlock(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = MultiHeadAttention(
            config.n_embd,
            config.n_embd,
            config.block_size,
            config.n_head,
            dropout=config.dropout,
            qkv_bias=config.bias,
            out_bias=config.bias,
        )
        self.norm2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = FeedForward(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, kv_cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), kv_cache, layer))
        return x + self.mlp(self.norm2(x))


class GPTModel(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layer))
        self.final_norm = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: residual projections are scaled down so the residual stream's variance does
        # not grow with depth (each block adds two branches to it).
        for block in self.blocks:
            for projection in (block.attn.out_proj, block.mlp.proj):
                nn.init.normal_(projection.weight, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ forward
    def hidden_states(self, idx: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        """Final-LayerNorm outputs (batch, tokens, n_embd) for token ids (batch, tokens).

        With `kv_cache`, `idx` holds only the tokens after those already cached,
        and the cache is advanced past them.
        """
        if idx.dim() != 2:
            raise ValueError(
                f"idx must have shape (batch, tokens), got {tuple(idx.shape)}; "
                "add a batch dimension with idx.unsqueeze(0)"
            )
        start = 0 if kv_cache is None else kv_cache.length
        tokens = idx.shape[1]
        if start + tokens > self.config.block_size:
            raise ValueError(
                f"{start + tokens} tokens exceed block_size={self.config.block_size}; "
                "keep only the last block_size tokens"
            )
        positions = torch.arange(start, start + tokens, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(positions))
        for layer, block in enumerate(self.blocks):
            x = block(x, kv_cache, layer)
        if kv_cache is not None:
            kv_cache.length += tokens
        return self.final_norm(x)

    @overload
    def forward(self, idx: torch.Tensor, targets: None = None) -> torch.Tensor: ...
    @overload
    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (batch, tokens, vocab_size); with `targets`, also the mean cross-entropy.

        Target positions set to -100 are ignored by the loss (padding, prompts).
        """
        logits = self.lm_head(self.hidden_states(idx))
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        return logits, loss

    def new_kv_cache(self, batch_size: int = 1) -> KVCache:
        """An empty cache sized for this model, on its device and in its dtype."""
        weight = self.tok_emb.weight
        c = self.config
        return KVCache(
            c.n_layer,
            batch_size,
            c.n_head,
            c.block_size,
            c.head_dim,
            device=weight.device,
            dtype=weight.dtype,
        )

    # --------------------------------------------------------------- counting
    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Trainable parameters, each shared tensor counted once.

        `exclude_embeddings` leaves out the token and position tables (and so the
        output layer too when it is tied to the token table), the usual way to
        compare model sizes across vocabularies.
        """
        unique = {id(p): p for p in self.parameters()}
        total = sum(p.numel() for p in unique.values())
        if exclude_embeddings:
            total -= self.tok_emb.weight.numel() + self.pos_emb.weight.numel()
        return total

    # ----------------------------------------------------- GPT-2 (transformers)
    @classmethod
    def from_gpt2_state_dict(
        cls, state_dict: Mapping[str, torch.Tensor], config: GPTConfig | None = None
    ) -> GPTModel:
        """A model holding the weights of a Hugging Face `GPT2LMHeadModel` / `GPT2Model`.

        Works on `model.state_dict()` or on a `model.safetensors` file loaded with
        `safetensors.torch.load_file`. Without `config` the shape is read from
        the weights, with GPT-2's 64-dimensional heads.
        """
        from .hf_gpt2 import config_from_gpt2_state_dict, from_gpt2_state_dict

        config = config or config_from_gpt2_state_dict(state_dict)
        model = cls(config)
        weights = from_gpt2_state_dict(state_dict, config)
        for name, expected in model.state_dict().items():
            if weights[name].shape != expected.shape:
                raise ValueError(
                    f"{name}: the weights have shape {tuple(weights[name].shape)} but the config "
                    f"expects {tuple(expected.shape)}; pass config=None to read it from the weights"
                )
        model.load_state_dict(weights)
        return model

    def to_gpt2_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under `GPT2LMHeadModel`'s names and layouts (Conv1D weights transposed)."""
        from .hf_gpt2 import to_gpt2_state_dict

        return to_gpt2_state_dict(self.state_dict(), self.config)
