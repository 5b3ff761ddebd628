"""A run as one GGUF file, the format of llama.cpp, Ollama and LM Studio.

A GGUF file holds key-value metadata (the architecture's sizes and the
tokenizer) and named tensors, written here with `gguf`, llama.cpp's own Python
writer. llama.cpp knows the two families by name:

- GPT-2 ("gpt2"): our tensors map one to one, fused QKV included; llama.cpp
  stores a linear layer's weight as (out, in), as `nn.Linear` does.
- Llama ("llama", or "qwen3" with QK-norm): queries, keys and values, and
  SwiGLU's gate and up, are split apart (slm_model's `to_llama_state_dict`).
  llama.cpp's "llama" rotates neighbouring feature pairs, where we (and
  Hugging Face) rotate feature i with i + head_dim/2, so the query and key
  rows are permuted into that order, as llama.cpp's own converter does.
  Its "qwen3" rotates halves like us and needs no permutation.

The tokenizer is the vocabulary in GPT-2's printable byte map, the merges, the
special tokens as control tokens and the name of the pre-tokenizer regex:
llama.cpp has the regexes built in, so only slm's two built-in patterns export.
A chat run also carries `tokenizer.chat_template`, and `<|im_end|>` as both its
end-of-turn and its end-of-sequence token, as Qwen's chat models do: llama.cpp
ends generation at either, and llama-cpp-python's chat completion stops at the
end-of-sequence token's text.

Weights are f32, f16, q8_0 (8-bit blocks of 32) or q4_0 (4-bit blocks of 32,
one f16 scale each: 4.5 bits a weight), quantized by `gguf.quants`, llama.cpp's
own rounding; a matrix whose rows are not whole blocks is written f16. Norms and
biases stay f32, as llama.cpp expects.
"""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np
import torch
from slm_model import GPTConfig, GPTModel
from slm_model.exportable import check_exportable, with_norm_weights
from slm_tokenizer import GPT2_PATTERN, GPT4_PATTERN, BPETokenizer
from slm_tokenizer.bytelevel import bytes_to_text
from slm_tokenizer.chat import IM_END

from ..chat_template import ChatTemplate
from ..prompts import CHATML, chat_template
from ..run import Run
from .output import check_free, staged

DTYPES = ("f32", "f16", "q8_0", "q4_0")
# llama.cpp's names for the pre-tokenizer regexes slm has built in.
PRE_TOKENIZERS = {GPT2_PATTERN: "gpt-2", GPT4_PATTERN: "llama-bpe"}
_FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}
_FILE_TYPES["q8_0"] = gguf.LlamaFileType.MOSTLY_Q8_0
_FILE_TYPES["q4_0"] = gguf.LlamaFileType.MOSTLY_Q4_0
# The block formats, all in blocks of 32 weights along a row.
_QUANTS = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}

# Our tensor names -> GGUF's, per block ({i} is the layer).
_GPT2_BLOCK = {
    "norm1": "attn_norm",
    "attn.qkv": "attn_qkv",
    "attn.out_proj": "attn_output",
    "norm2": "ffn_norm",
    "mlp.fc": "ffn_up",
    "mlp.proj": "ffn_down",
}
# Hugging Face's Llama names (after to_llama_state_dict) -> GGUF's.
_LLAMA_BLOCK = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def export_gguf(
    run: Run | str | os.PathLike,
    out: str | os.PathLike,
    *,
    dtype: str = "f32",
    checkpoint: str = "best",
    force: bool = False,
) -> Path:
    """Write `run`'s `checkpoint` as a GGUF file at `out` (weights in `dtype`); return `out`."""
    if dtype not in DTYPES:
        raise ValueError(f"GGUF weights can be {', '.join(DTYPES)}, not {dtype!r}")
    run = run if isinstance(run, Run) else Run(run)
    check_free(Path(out), force)
    tokenizer = run.tokenizer()
    model = run.load_model(checkpoint)
    architecture = gguf_architecture(model.config)
    pre = _pre_tokenizer(tokenizer)
    tensors = gguf_tensors(model)
    with staged(out, force=force, folder=False) as path:
        writer = gguf.GGUFWriter(str(path), architecture)
        writer.add_name(run.path.name)
        writer.add_file_type(_FILE_TYPES[dtype])
        _add_hyperparameters(writer, model.config)
        _add_tokenizer(writer, tokenizer, pre, model.config.vocab_size)
        _add_ends(writer, tokenizer, run)
        for name, tensor in tensors.items():
            _add_tensor(writer, name, tensor, dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return Path(out)


def gguf_architecture(config: GPTConfig) -> str:
    """llama.cpp's name for the architecture of `config`; a mix it lacks raises ValueError."""
    check_exportable(config, "llama.cpp")
    family = (config.pos, config.norm, config.mlp)
    if config.attention_bias != config.bias or config.rope_scaling is not None:
        raise ValueError(
            "slm's GGUF export does not write Qwen2's q/k/v biases or Llama 3's RoPE scaling "
            "yet; export this run with --format hf (llama.cpp's convert_hf_to_gguf.py reads it)"
        )
    if family == ("learned", "layernorm", "gelu") and config.kv_heads == config.n_head:
        if not config.bias or config.qk_norm:
            raise ValueError("llama.cpp's gpt2 has biases and no QK-norm; use a gpt2 preset")
        return "gpt2"
    if family == ("rope", "rmsnorm", "swiglu") and not config.bias:
        return "qwen3" if config.qk_norm else "llama"
    raise ValueError(
        f"llama.cpp has no architecture with pos={config.pos!r}, norm={config.norm!r}, "
        f"mlp={config.mlp!r}, bias={config.bias}, n_kv_head={config.n_kv_head}: its gpt2 is "
        "GPT-2 exactly and its llama has no biases; train with a gpt2 or llama-* preset"
    )


def gguf_tensors(model: GPTModel) -> dict[str, torch.Tensor]:
    """The model's weights under GGUF's names (the output layer written even when tied)."""
    config = model.config
    weights = with_norm_weights(model)
    ours = {name: tensor.detach().float() for name, tensor in weights.items()}
    top = {"token_embd.weight": ours["tok_emb.weight"]}
    if config.pos == "learned":
        top["position_embd.weight"] = ours["pos_emb.weight"]
        blocks = {
            f"blk.{i}.{theirs}.{kind}": ours[f"blocks.{i}.{name}.{kind}"]
            for i in range(config.n_layer)
            for name, theirs in _GPT2_BLOCK.items()
            for kind in ("weight", "bias")
        }
    else:
        blocks = _llama_blocks(model)
    top["output_norm.weight"] = ours["final_norm.weight"]
    if config.bias:
        top["output_norm.bias"] = ours["final_norm.bias"]
    top["output.weight"] = ours["lm_head.weight"]
    return top | blocks


def _llama_blocks(model: GPTModel) -> dict[str, torch.Tensor]:
    config = model.config
    tensors = {}
    for name, tensor in model.to_llama_state_dict().items():
        if not name.startswith("model.layers."):
            continue
        i, rest = name.removeprefix("model.layers.").split(".", 1)
        layer, kind = rest.rsplit(".", 1)
        if not config.qk_norm:  # llama.cpp's llama pairs neighbouring features for RoPE
            if layer == "self_attn.q_proj":
                tensor = _neighbour_pairs(tensor, config.n_head)
            elif layer == "self_attn.k_proj":
                tensor = _neighbour_pairs(tensor, config.kv_heads)
        tensors[f"blk.{i}.{_LLAMA_BLOCK[layer]}.{kind}"] = tensor.float()
    return tensors


def _neighbour_pairs(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Reorder each head's rows from "rotate half" (i, i + d/2) to neighbouring pairs (2i, 2i+1)."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, -1).transpose(1, 2).reshape(weight.shape)


def _add_hyperparameters(writer: gguf.GGUFWriter, config: GPTConfig) -> None:
    writer.add_context_length(config.block_size)
    writer.add_embedding_length(config.n_embd)
    writer.add_feed_forward_length(config.mlp_hidden)
    writer.add_block_count(config.n_layer)
    writer.add_head_count(config.n_head)
    writer.add_vocab_size(config.vocab_size)
    if config.pos == "learned":
        writer.add_layer_norm_eps(config.norm_eps)
        return
    writer.add_head_count_kv(config.kv_heads)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(float(config.rope_theta))
    writer.add_layer_norm_rms_eps(config.norm_eps)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)


def _pre_tokenizer(tokenizer: BPETokenizer) -> str:
    pre = PRE_TOKENIZERS.get(tokenizer.pattern)
    if pre is None:
        raise ValueError(
            "llama.cpp only knows built-in pre-tokenizer regexes, and this tokenizer has its "
            "own pattern; train it with GPT2_PATTERN or GPT4_PATTERN to export to GGUF"
        )
    return pre


def _add_tokenizer(
    writer: gguf.GGUFWriter, tokenizer: BPETokenizer, pre: str, vocab_size: int
) -> None:
    """Tokens for every embedding row: ours, then unused padding up to the model's vocab_size."""
    vocab, specials = tokenizer.vocab, set(tokenizer.special_tokens.values())
    tokens, types = [], []
    for i in range(vocab_size):
        if i in specials:
            tokens.append(vocab[i].decode("utf-8"))
            types.append(gguf.TokenType.CONTROL)
        elif i in vocab:
            tokens.append(bytes_to_text(vocab[i]))
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([f"{bytes_to_text(a)} {bytes_to_text(b)}" for a, b in tokenizer.merges])
    if tokenizer.eot_id is not None:
        writer.add_bos_token_id(tokenizer.eot_id)
    writer.add_add_bos_token(False)


def _add_ends(writer: gguf.GGUFWriter, tokenizer: BPETokenizer, run: Run) -> None:
    """Where generated text ends: end-of-text, or a chat run's <|im_end|> (its end of turn
    too); and the chat template, if the run has one."""
    template = chat_template(run.config)
    if template is not None:
        writer.add_chat_template(template)
    named = ChatTemplate.of(run.config)
    turn_ends = named.end_ids(tokenizer) if named is not None else []
    if run.config.get("prompt_format") == CHATML:
        turn_ends = [tokenizer.special_tokens[IM_END]]
    if turn_ends:
        writer.add_eot_token_id(turn_ends[0])
        writer.add_eos_token_id(turn_ends[0])
    elif tokenizer.eot_id is not None:
        writer.add_eos_token_id(tokenizer.eot_id)


def _add_tensor(writer: gguf.GGUFWriter, name: str, tensor: torch.Tensor, dtype: str) -> None:
    data = tensor.numpy()
    if data.ndim < 2 or dtype == "f32":  # norms and biases stay f32
        writer.add_tensor(name, data.astype(np.float32))
    elif dtype in _QUANTS and data.shape[-1] % 32 == 0:
        quantized = gguf.quants.quantize(data, _QUANTS[dtype])
        writer.add_tensor(name, quantized, raw_dtype=_QUANTS[dtype])
    else:  # f16, and the block formats' rows that are not whole blocks of 32
        writer.add_tensor(name, data.astype(np.float16))
