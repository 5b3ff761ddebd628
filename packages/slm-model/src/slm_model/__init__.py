"""slm-model: attention and a GPT model in PyTorch, with sampling and a KV cache.

GPT-2 by default; RoPE, RMSNorm, SwiGLU, grouped-query attention and QK-norm by
configuration (the `llama-*` presets use the first four).

>>> from slm_model import GPTModel, get_gpt_config, generate
>>> model = GPTModel(get_gpt_config("tiny"))
>>> generate(model, [1, 2, 3], max_new_tokens=5, temperature=0).shape
torch.Size([1, 8])
"""

from importlib.metadata import version as _version

from .attention import CausalAttention, MultiHeadAttention, SelfAttention
from .config import PRESETS, GPTConfig, get_gpt_config
from .feed_forward import FeedForward, ReLUSquared, SwiGLU
from .generate import generate, sample_next, stream
from .hf_llama import config_from_llama, to_llama_config
from .inspect import (
    LogitLens,
    NextTokens,
    attention_maps,
    logit_lens,
    token_surprise,
    top_next_tokens,
)
from .kv_cache import KVCache
from .model import GPTModel, TransformerBlock
from .norm import RMSNorm
from .quantize import QUANTIZE, quantize
from .rope import RotaryEmbedding
from .vocab import grow_vocabulary

__all__ = [
    "PRESETS",
    "QUANTIZE",
    "CausalAttention",
    "FeedForward",
    "GPTConfig",
    "GPTModel",
    "KVCache",
    "LogitLens",
    "MultiHeadAttention",
    "NextTokens",
    "RMSNorm",
    "ReLUSquared",
    "RotaryEmbedding",
    "SelfAttention",
    "SwiGLU",
    "TransformerBlock",
    "attention_maps",
    "config_from_llama",
    "generate",
    "get_gpt_config",
    "grow_vocabulary",
    "logit_lens",
    "quantize",
    "sample_next",
    "stream",
    "to_llama_config",
    "token_surprise",
    "top_next_tokens",
]
__version__ = _version("slm-model")
