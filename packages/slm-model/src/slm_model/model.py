"""The GPT model (the book's chapter 4, GPT-2's architecture, and Llama's changes).

    tokens -> token embedding (+ position embedding, GPT-2 only) -> dropout
           -> n_layer x TransformerBlock
           -> final norm -> linear layer to vocabulary logits

Each TransformerBlock is "pre-norm": x + attention(norm(x)), then
x + mlp(norm(x)). Normalising before each sub-layer, and adding its output to
an untouched residual stream, is what lets deep stacks train stably.

`GPTConfig` picks each part: the position encoding (a learned table, or RoPE
inside attention), the norm (LayerNorm or RMSNorm, `norm.py`), the MLP (GELU or
SwiGLU, `feed_forward.py`) and the number of key/value heads (`attention.py`).
With the defaults it is GPT-2; with the `llama-*` presets it is a Llama.

nanochat's pieces are further options, each in its own module: a smear gate
on the embeddings (`smear.py`), per-layer residual and x0 lambdas before each
block (`lambdas.py`), value embeddings added to attention's values
(`value_embeddings.py`), a back-out of the middle layer's stream before the
final norm (`backout.py`) and a soft cap on the logits (`softcap.py`):

    tokens -> embedding -> smear -> x0
           -> for each block: x = resid[i] * x + x0[i] * x0; x = block(x, value embedding)
           -> x - lambda * (x after the middle block) -> final norm -> head -> cap
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import overload

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention
from .backout import Backout, backout_layer
from .config import GPTConfig
from .exportable import with_norm_weights
from .feed_forward import make_feed_forward
from .kv_cache import KVCache
from .lambdas import ResidualLambdas
from .norm import make_norm
from .rope import RotaryEmbedding
from .smear import Smear
from .softcap import soft_cap
from .value_embeddings import ValueEmbedding, has_value_embedding


class TransformerBlock(nn.Module):
    def __init__(
        self, config: GPTConfig, rotary: RotaryEmbedding | None = None, layer: int = 0
    ) -> None:
        """`rotary` is the model's RoPE table, shared by every block (None: learned positions).

        `layer` is the block's index, which decides whether it has a value embedding.
        """
        super().__init__()
        self.norm1 = make_norm(config)
        self.attn = MultiHeadAttention(
            config.n_embd,
            config.attention_width,
            config.block_size,
            config.n_head,
            dropout=config.dropout,
            qkv_bias=config.attention_bias,
            out_bias=config.bias,
            num_kv_heads=config.kv_heads,
            rotary=rotary,
            qk_norm=config.qk_norm,
            norm_eps=config.norm_eps,
            norm_weight=config.norm_weight,
        )
        self.norm2 = make_norm(config)
        self.mlp = make_feed_forward(config)
        self.dropout = nn.Dropout(config.dropout)
        wanted = config.value_embeds and has_value_embedding(layer, config.n_layer)
        self.value_embed = ValueEmbedding(config) if wanted else None

    def forward(
        self,
        x: torch.Tensor,
        kv_cache: KVCache | None = None,
        layer: int = 0,
        idx: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`idx`, the token ids at x's positions, is needed only with a value embedding."""
        h = self.norm1(x)
        x = x + self.dropout(self.attn(h, kv_cache, layer, self.extra_values(idx, h)))
        return x + self.mlp(self.norm2(x))

    def extra_values(self, idx: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor | None:
        """The value embedding's share of attention's values, or None without one."""
        if self.value_embed is None:
            return None
        if idx is None:
            raise ValueError("this block has a value embedding, so it needs the token ids (idx)")
        return self.value_embed(idx, h)


class GPTModel(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        if config.pos == "learned":
            self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
            rotary = None
        else:  # RoPE: positions enter inside attention; one table of angles serves all blocks
            self.pos_emb = None
            rotary = RotaryEmbedding(
                config.head_dim, config.block_size, config.rope_theta, config.rope_scaling
            )
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(config, rotary, layer) for layer in range(config.n_layer)
        )
        self.smear = Smear(config.n_embd) if config.smear else None
        self.lambdas = ResidualLambdas(config.n_layer) if config.lambdas else None
        self.backout = Backout() if config.backout else None
        self.final_norm = make_norm(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: residual projections are scaled down so the residual stream's variance does
        # not grow with depth (each block adds two branches to it).
        for block in self.blocks:
            for projection in (block.attn.out_proj, block.mlp.proj):
                nn.init.normal_(projection.weight, std=0.02 / math.sqrt(2 * config.n_layer))
            if block.value_embed is not None:  # nanochat's init, not GPT-2's
                block.value_embed.reset_parameters(config.n_embd)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ forward
    def hidden_states(self, idx: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        """Final-norm outputs (batch, tokens, n_embd) for token ids (batch, tokens).

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
        x = self._smeared(self.tok_emb(idx), kv_cache)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(start, start + tokens, device=idx.device))
        x = self.run_blocks(self.drop(x), lambda layer, block, x: block(x, kv_cache, layer, idx))
        if kv_cache is not None:
            kv_cache.length += tokens
        return self.final_norm(x)

    def _smeared(self, x: torch.Tensor, kv_cache: KVCache | None) -> torch.Tensor:
        """Token embeddings through the smear gate; a cache carries the last one across calls."""
        if self.smear is None:
            return x
        previous = None if kv_cache is None or kv_cache.length == 0 else kv_cache.previous
        if kv_cache is not None:
            kv_cache.previous = x[:, -1:]
        return self.smear(x, previous)

    def run_blocks(
        self,
        x: torch.Tensor,
        step: Callable[[int, TransformerBlock, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """The stream `x` through every block, `step(layer, block, x)` running one.

        Around the blocks sit the per-layer lambdas and the back-out when the
        config has them. `step` is a block's forward here, and the batched
        decoder's per-row version of it in batched.py.
        """
        x0, middle = x, x
        for layer, block in enumerate(self.blocks):
            if self.lambdas is not None:
                x = self.lambdas(x, x0, layer)
            x = step(layer, block, x)
            if layer == backout_layer(self.config.n_layer):
                middle = x
        return x if self.backout is None else self.backout(x, middle)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The output layer on final-norm outputs, soft-capped when the config says so."""
        logits = self.lm_head(hidden)
        cap = self.config.logit_softcap
        return logits if cap is None else soft_cap(logits, cap)

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
        logits = self.logits(self.hidden_states(idx))
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
            c.kv_heads,
            c.block_size,
            c.head_dim,
            device=weight.device,
            dtype=weight.dtype,
        )

    # --------------------------------------------------------------- counting
    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Trainable parameters, each shared tensor counted once.

        `exclude_embeddings` leaves out the token, position and value-embedding
        tables (and so the output layer too when it is tied to the token table),
        the usual way to compare model sizes across vocabularies; what is left
        are the weights a token is multiplied by (FLOPs, slm_train.metrics).
        """
        unique = {id(p): p for p in self.parameters()}
        total = sum(p.numel() for p in unique.values())
        if exclude_embeddings:
            tables = [self.tok_emb, self.pos_emb]
            tables += [b.value_embed.table for b in self.blocks if b.value_embed is not None]
            total -= sum(table.weight.numel() for table in tables if table is not None)
        return total

    # ----------------------------------------------------- GPT-2 (transformers)
    @classmethod
    def from_gpt2_state_dict(
        cls,
        state_dict: Mapping[str, torch.Tensor],
        config: GPTConfig | None = None,
        n_head: int | None = None,
    ) -> GPTModel:
        """A model holding the weights of a Hugging Face `GPT2LMHeadModel` / `GPT2Model`.

        Works on `model.state_dict()` or on a `model.safetensors` file loaded with
        `safetensors.torch.load_file`. Without `config` the shape is read from
        the weights; the head count is known for the published GPT-2 widths and
        must be given as `n_head` for any other.
        """
        from .hf_gpt2 import config_from_gpt2_state_dict, from_gpt2_state_dict

        config = config or config_from_gpt2_state_dict(state_dict, n_head)
        weights = from_gpt2_state_dict(state_dict, config)
        return cls._with_weights(config, weights, "pass config=None to read it from the weights")

    def to_gpt2_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under `GPT2LMHeadModel`'s names and layouts (Conv1D weights transposed)."""
        from .hf_gpt2 import to_gpt2_state_dict

        return to_gpt2_state_dict(with_norm_weights(self), self.config)

    # ----------------------------------------------------- Llama (transformers)
    @classmethod
    def from_llama_state_dict(
        cls, state_dict: Mapping[str, torch.Tensor], config: GPTConfig
    ) -> GPTModel:
        """A model holding the weights of a Hugging Face `LlamaForCausalLM` (or Qwen3).

        `config` comes from the checkpoint's config.json through
        `slm_model.config_from_llama`; the weights alone do not tell the number of heads.
        """
        from .hf_llama import from_llama_state_dict

        weights = from_llama_state_dict(state_dict, config)
        return cls._with_weights(config, weights, "build the config with config_from_llama")

    def to_llama_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under `LlamaForCausalLM`'s names, for `LlamaConfig(**to_llama_config(c))`."""
        from .hf_llama import to_llama_state_dict

        return to_llama_state_dict(with_norm_weights(self), self.config)

    @classmethod
    def _with_weights(
        cls, config: GPTConfig, weights: Mapping[str, torch.Tensor], hint: str
    ) -> GPTModel:
        """A model for `config` loaded with converted `weights`, after checking every shape."""
        model = cls(config)
        for name, expected in model.state_dict().items():
            if weights[name].shape != expected.shape:
                raise ValueError(
                    f"{name}: the weights have shape {tuple(weights[name].shape)} but the config "
                    f"expects {tuple(expected.shape)}; {hint}"
                )
        model.load_state_dict(weights)
        return model
