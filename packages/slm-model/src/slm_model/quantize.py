"""Weight-only quantization for inference, through torchao (the PyTorch project's library).

Generation at batch 1 reads every weight once per token, so it is bound by
memory bandwidth: storing the Linear layers' weights in 8 or 4 bits reads 2 or
4 times fewer bytes than bf16. Activations stay bf16 and each layer's weight is
turned back into numbers by torchao's kernels, not by code of ours.

What is quantized: every `nn.Linear` (attention's qkv and output, the MLP's, and
the output layer `lm_head`). Norms, biases and the token embedding stay bf16:
the embedding is read one row per token, so it costs no bandwidth worth saving.
With tied embeddings the output layer is quantized as a copy, so the tie is
undone and the embedding's bf16 table is kept beside it (memory goes up by the
quantized head; each token reads only the quantized one).

- int8: `Int8WeightOnlyConfig`, one scale per output row.
- int4: groups of 128 weights along a row (64 or 32 where the row is not whole
  groups of 128), one scale and zero point each. On the CPU it is torchao's
  `PrototypeInt4WeightOnlyConfig` (PyTorch's `_weight_int4pack_mm_for_cpu`),
  on CUDA `Int4WeightOnlyConfig` in its tinygemm layout. A Linear whose rows are
  not whole groups of 32, or whose output count is not a multiple of 16 (the
  kernels pack 16 rows together), stays bf16.

torchao is an optional extra (`uv sync --extra quantize`), imported here only
when a model is quantized, and none of its types leave this module.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from .model import GPTModel

QUANTIZE = ("none", "int8", "int4")
INSTALL = "uv sync --extra quantize (or: pip install torchao)"
INT4_GROUPS = (128, 64, 32)


def check_quantize(how: str | None) -> str:
    """`how` if it is one of QUANTIZE (None means "none"); otherwise ValueError with the fix."""
    how = how or "none"
    if how not in QUANTIZE:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE)}, not {how!r}")
    if how != "none" and importlib.util.find_spec("torchao") is None:
        raise ModuleNotFoundError(f"quantize={how} needs torchao, which is missing: {INSTALL}")
    return how


def quantize(model: GPTModel, how: str | None) -> GPTModel:
    """`model` in bf16 with its Linear weights quantized as `how` says ("none": unchanged).

    The model is changed in place and returned in eval mode; it can no longer
    be trained. Raises ValueError for an unknown `how`, ModuleNotFoundError
    (naming the install command) when torchao is missing.
    """
    how = check_quantize(how)
    if how == "none":
        return model
    from torchao.quantization import quantize_

    model = model.to(torch.bfloat16).eval()
    _untie_head(model)
    if how == "int8":
        from torchao.quantization import Int8WeightOnlyConfig

        quantize_(model, Int8WeightOnlyConfig())
        return model
    for group in INT4_GROUPS:
        quantize_(model, _int4_config(group, model.lm_head.weight.device), filter_fn=_plain(group))
    return model


def _untie_head(model: GPTModel) -> None:
    """Give the output layer its own weight, so that quantizing it leaves the embedding be."""
    if model.lm_head.weight is model.tok_emb.weight:
        model.lm_head.weight = nn.Parameter(model.tok_emb.weight.detach().clone())


def _plain(group: int):
    """A filter: Linear layers still unquantized whose rows are whole groups of `group`
    and whose rows come in sixteens (the int4 kernels' packing)."""

    def wanted(module: nn.Module, name: str) -> bool:
        return (
            isinstance(module, nn.Linear)
            and type(module.weight) in (nn.Parameter, torch.Tensor)
            and module.in_features % group == 0
            and module.out_features % 16 == 0
        )

    return wanted


def _int4_config(group: int, device: torch.device):
    """torchao's int4 weight-only configuration with a kernel for `device`."""
    if device.type == "cuda":
        from torchao.quantization import Int4WeightOnlyConfig

        return Int4WeightOnlyConfig(group_size=group, int4_packing_format="tile_packed_to_4d")
    from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig

    return PrototypeInt4WeightOnlyConfig(group_size=group)


def weight_bytes(model: nn.Module) -> int:
    """Bytes the model's parameters occupy as stored (quantized ones in their packed form)."""
    return sum(_stored_bytes(p) for p in model.parameters())


def _stored_bytes(tensor: torch.Tensor) -> int:
    inner = getattr(tensor, "__tensor_flatten__", None)
    if inner is None or type(tensor) in (nn.Parameter, torch.Tensor):
        return tensor.numel() * tensor.element_size()
    names, _ = inner()
    return sum(_stored_bytes(getattr(tensor, name)) for name in names)
