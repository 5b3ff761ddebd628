"""Model configuration and named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT model.

    block_size: the longest sequence the model can see (its context window).
    vocab_size: rows of the token embedding; must cover every id the tokenizer makes.
    n_layer, n_head, n_embd: depth, attention heads per layer, embedding width.
    dropout: applied to embeddings, attention weights and residual branches.
    bias: biases in linear layers and LayerNorms (GPT-2 has them).
    tie_weights: share the token embedding with the output layer, as GPT-2 does;
        it saves vocab_size * n_embd parameters.
    """

    block_size: int
    vocab_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True

    def __post_init__(self) -> None:
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}; "
                f"try n_embd={self.n_head * max(1, round(self.n_embd / self.n_head))}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GPTConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**values)


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
}


def get_gpt_config(name: str, **overrides: object) -> GPTConfig:
    """A preset by name, with any field overridden: `get_gpt_config("small", vocab_size=4000)`."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return GPTConfig.from_dict({**PRESETS[name], **overrides})
