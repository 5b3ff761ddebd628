"""slm-model: attention and a GPT model in PyTorch, with sampling and a KV cache.

>>> from slm_model import GPTModel, get_gpt_config, generate
>>> model = GPTModel(get_gpt_config("tiny"))
>>> generate(model, [1, 2, 3], max_new_tokens=5, temperature=0).shape
torch.Size([1, 8])
"""

from importlib.metadata import version as _version

from .attention import CausalAttention, MultiHeadAttention, SelfAttention
from .config import PRESETS, GPTConfig, get_gpt_config
from .generate import generate, sample_next, stream
from .kv_cache import KVCache
from .model import FeedForward, GPTModel, TransformerBlock

__all__ = [
    "PRESETS",
    "CausalAttention",
    "FeedForward",
    "GPTConfig",
    "GPTModel",
    "KVCache",
    "MultiHeadAttention",
    "SelfAttention",
    "TransformerBlock",
    "generate",
    "get_gpt_config",
    "sample_next",
    "stream",
]
__version__ = _version("slm-model")
