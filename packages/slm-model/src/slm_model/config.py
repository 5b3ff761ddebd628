"""Model configuration and named presets.

One dataclass describes both families slm builds. The defaults are GPT-2
(Radford et al., 2019): learned position embeddings, LayerNorm, a GELU MLP and
one key/value head per query head. Four fields turn it into a modern
Llama-style model (Touvron et al., 2023), one change at a time:

    pos="rope"        rotary position embeddings instead of a learned table
    norm="rmsnorm"    RMSNorm instead of LayerNorm
    mlp="swiglu"      a gated SiLU feed-forward instead of GELU
    n_kv_head=k       grouped-query attention: k key/value heads shared by all query heads

`qk_norm=True` adds the normalisation of queries and keys used by Qwen3 and
OLMo 2. The `llama-*` presets switch all of them on.

Eight more fields, all off by default, are the pieces of nanochat's model
(Karpathy, 2025, `nanochat/gpt.py`) that slm's presets lack, so that each can
be measured on its own (bench/ablations.py): `value_embeds`, `lambdas`,
`smear`, mlp="relu2", `logit_softcap`, tie_weights=False (already an option),
`norm_weight=False` and `backout`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

POSITIONS = ("learned", "rope")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu", "relu2")


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT model.

    block_size: the longest sequence the model can see (its context window).
    vocab_size: rows of the token embedding; must cover every id the tokenizer makes.
    n_layer, n_head, n_embd: depth, attention heads per layer, embedding width.
    dropout: applied to embeddings, attention weights and residual branches.
    bias: biases in linear layers and LayerNorms (GPT-2 has them, Llama does not).
    tie_weights: share the token embedding with the output layer, as GPT-2 does;
        it saves vocab_size * n_embd parameters.
    pos: "learned" (a table of block_size position vectors, GPT-2) or "rope"
        (rotary embeddings inside attention, no table; Llama).
    norm: "layernorm" (GPT-2) or "rmsnorm" (Llama).
    mlp: "gelu" (GPT-2) or "swiglu" (Llama).
    n_kv_head: key/value heads; None means one per query head (GPT-2). It must
        divide n_head; 1 is multi-query attention.
    qk_norm: RMSNorm on each head's queries and keys before attention (Qwen3).
    rope_theta: RoPE's base period; larger values suit longer contexts.
    intermediate_size: the feed-forward's hidden width; None means 4 * n_embd
        for GELU, and for SwiGLU the width with the same parameter count
        (8/3 * n_embd, rounded up to a multiple of 64).
    norm_eps: added to the variance inside every normalisation layer.
    qkv_bias: biases on the query, key and value projections only; None follows
        `bias`. Qwen2 has them where Llama has none (bias=False, qkv_bias=True).
    rope_scaling: None (plain RoPE), or Llama 3.1/3.2's stretch of RoPE's slow
        frequencies for long contexts: {"rope_type": "llama3", "factor",
        "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}
        (rope.py).
    head_size: each attention head's width; None means n_embd / n_head. Qwen3
        sets it apart from the model's width (Qwen3-0.6B: 16 heads of 128 features
        in a 1024-wide model), so attention works in n_head * head_size features
        and its output projection maps them back to n_embd.
    mlp="relu2": proj(relu(fc(x))^2), nanochat's MLP (So et al., 2021, Primer).
    norm_weight: False drops the learned scale (and shift) of every norm, the
        final one and QK-norm's included, as nanochat does: a norm then only
        rescales, and the next layer's weights can learn any per-feature scale.
    value_embeds: a value-embedding residual (ResFormer, Zhou et al., 2024) in
        alternate layers, the last included: value_embeddings.py.
    lambdas: learned per-layer scalars that scale the residual stream and mix
        the first layer's input back in (modded-nanogpt, nanochat): lambdas.py.
    smear: mixes each token's embedding with the previous token's through a
        learned gate, cheap bigram information (nanochat): smear.py.
    logit_softcap: None, or c > 0: logits become c * tanh(logits / c), which
        bounds them to (-c, c) (Gemma 2; nanochat uses 15): softcap.py.
    backout: subtracts a learned share of the residual stream at the middle
        layer before the final norm (nanochat): backout.py.
    """

    block_size: int
    vocab_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    pos: str = "learned"
    norm: str = "layernorm"
    mlp: str = "gelu"
    n_kv_head: int | None = None
    qk_norm: bool = False
    rope_theta: float = 10000.0
    intermediate_size: int | None = None
    norm_eps: float = 1e-5
    qkv_bias: bool | None = None
    rope_scaling: dict | None = None
    head_size: int | None = None
    norm_weight: bool = True
    value_embeds: bool = False
    lambdas: bool = False
    smear: bool = False
    logit_softcap: float | None = None
    backout: bool = False

    def __post_init__(self) -> None:
        self._check_sizes()
        self._check_choices()
        self._check_switches()
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive number, got {value!r}")

    def _check_sizes(self) -> None:
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            _check_positive_int(name, getattr(self, name))
        for name in ("n_kv_head", "intermediate_size", "head_size"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        if self.head_size is None and self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}; "
                f"try n_embd={self.n_head * max(1, round(self.n_embd / self.n_head))}"
            )
        if self.n_head % self.kv_heads != 0:
            divisors = [k for k in range(1, self.n_head + 1) if self.n_head % k == 0]
            raise ValueError(
                f"n_kv_head={self.n_kv_head} must divide n_head={self.n_head} (each key/value "
                f"head serves a group of query heads); choose one of {divisors}"
            )

    def _check_choices(self) -> None:
        for name, choices in (("pos", POSITIONS), ("norm", NORMS), ("mlp", MLPS)):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"GPTConfig.{name} must be one of {', '.join(choices)}; "
                    f"got {getattr(self, name)!r}"
                )
        if self.pos == "rope" and self.head_dim % 2 != 0:
            raise ValueError(
                f"RoPE rotates pairs of features, so a head's width (head_size, or "
                f"n_embd / n_head) must be even; "
                f"got {self.head_dim}"
            )
        if self.qkv_bias is not None and not isinstance(self.qkv_bias, bool):
            raise ValueError(
                f"GPTConfig.qkv_bias must be true, false or None, got {self.qkv_bias!r}"
            )
        if self.rope_scaling is not None:
            from .rope import check_rope_scaling

            check_rope_scaling(self.rope_scaling)

    def _check_switches(self) -> None:
        for name in ("qk_norm", "norm_weight", "value_embeds", "lambdas", "smear", "backout"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"GPTConfig.{name} must be true or false, got {getattr(self, name)!r}"
                )
        cap = self.logit_softcap
        number = isinstance(cap, (int, float)) and not isinstance(cap, bool)
        if cap is not None and not (number and cap > 0):
            raise ValueError(
                f"GPTConfig.logit_softcap must be a positive number or None (off), got {cap!r}; "
                "nanochat uses 15"
            )

    @property
    def attention_bias(self) -> bool:
        """Whether the query, key and value projections have biases (qkv_bias, else bias)."""
        return self.bias if self.qkv_bias is None else self.qkv_bias

    @property
    def head_dim(self) -> int:
        """Each attention head's width: head_size, or n_embd / n_head."""
        return self.n_embd // self.n_head if self.head_size is None else self.head_size

    @property
    def attention_width(self) -> int:
        """Features the attention computes in: n_head * head_dim (n_embd unless head_size)."""
        return self.n_head * self.head_dim

    @property
    def kv_heads(self) -> int:
        """Key/value heads per layer: n_kv_head, or n_head when it is None."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def mlp_hidden(self) -> int:
        """The feed-forward's hidden width (intermediate_size, or the default for `mlp`)."""
        if self.intermediate_size is not None:
            return self.intermediate_size
        if self.mlp == "swiglu":
            # Three matrices instead of two: 2/3 of GELU's 4x keeps the parameter count.
            return 64 * math.ceil(8 * self.n_embd / 3 / 64)
        return 4 * self.n_embd

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GPTConfig:
        """The inverse of `to_dict`; fields missing from older configs take their defaults."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**values)


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")


# Everything a Llama-style model changes from GPT-2 (the modern family's defaults).
LLAMA = dict(pos="rope", norm="rmsnorm", mlp="swiglu", bias=False)

PRESETS: dict[str, dict] = {
    # For tests: about 0.1 M parameters, runs in milliseconds.
    "tiny": dict(block_size=64, vocab_size=512, n_layer=2, n_head=2, n_embd=64),
    # Learns simple English on a laptop CPU in minutes: about 3 M parameters
    # besides the embeddings.
    "small": dict(block_size=256, vocab_size=8192, n_layer=4, n_head=4, n_embd=256),
    # The GPT-2 family (Radford et al., 2019); "gpt2" has 124 M parameters.
    "gpt2": dict(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768),
    "gpt2-medium": dict(block_size=1024, vocab_size=50257, n_layer=24, n_head=16, n_embd=1024),
    "gpt2-large": dict(block_size=1024, vocab_size=50257, n_layer=36, n_head=20, n_embd=1280),
    "gpt2-xl": dict(block_size=1024, vocab_size=50257, n_layer=48, n_head=25, n_embd=1600),
    # The modern family at the budgets of "tiny" and "small": per block, grouped-query
    # attention costs 3 d^2 instead of 4 d^2, and a SwiGLU of width 3 d costs 9 d^2,
    # so each block has GPT-2's 12 d^2 weights (no position table, no biases).
    "llama-tiny": dict(
        block_size=64,
        vocab_size=512,
        n_layer=2,
        n_head=4,
        n_kv_head=2,
        n_embd=64,
        intermediate_size=192,
        **LLAMA,
    ),
    "llama-small": dict(
        block_size=256,
        vocab_size=8192,
        n_layer=4,
        n_head=4,
        n_kv_head=2,
        n_embd=256,
        intermediate_size=768,
        **LLAMA,
    ),
}
# Qwen3's architecture: Llama's with QK-norm (RMSNorm on each head's queries and keys).
# "qwen3-small" with Muon and WSD won bench/recipe.py's race; slm-cli train's default.
PRESETS["qwen3-tiny"] = {**PRESETS["llama-tiny"], "qk_norm": True}
PRESETS["qwen3-small"] = {**PRESETS["llama-small"], "qk_norm": True}


def get_gpt_config(name: str, **overrides: object) -> GPTConfig:
    """A preset by name, with any field overridden: `get_gpt_config("small", vocab_size=4000)`."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return GPTConfig.from_dict({**PRESETS[name], **overrides})
