"""A run as a Hugging Face model folder, which `transformers` loads with no slm installed.

    DIR/config.json             the architecture, in transformers' names
        model.safetensors       the weights, under transformers' names
        generation_config.json  the tokens that stop generation: end-of-text
                                (a chat run's <|im_end|> first)
        tokenizer.json          the tokenizer, for `tokenizers` (slm_tokenizer.hf_format)
        tokenizer_config.json   tells AutoTokenizer to read tokenizer.json; a chat run's
                                chat_template, for apply_chat_template

The GPT-2 family becomes `GPT2LMHeadModel` and the Llama family `LlamaForCausalLM`
(`Qwen3ForCausalLM` with QK-norm); slm_model's `to_gpt2_state_dict` and
`to_llama_state_dict` rename the weights. A mix of the two (say RoPE with
LayerNorm) is no transformers architecture and is refused.

A classifier (`slm-cli finetune classify`) becomes `GPT2ForSequenceClassification`
when it can: that class reads the last token that is not padding, as slm reads
the last real token, if the padding id is end-of-text in both; but its output
layer has no bias, so a head with a bias cannot be expressed and is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from slm_model import GPTConfig, GPTModel, to_llama_config
from slm_model.exportable import check_exportable
from slm_tokenizer import END_OF_TEXT, BPETokenizer
from slm_tokenizer.chat import IM_END
from slm_tokenizer.files import plain_file_mode
from slm_tokenizer.hf_format import to_hf_tokenizer

from ..chat_template import ChatTemplate
from ..naming import setting
from ..prompts import CHATML, chat_template, reply_ends
from ..run import Run
from .output import check_free, staged


def export_hf(
    run: Run | str | os.PathLike,
    out: str | os.PathLike,
    *,
    checkpoint: str = "best",
    force: bool = False,
) -> Path:
    """Write `run`'s `checkpoint` as a transformers model folder at `out`; return `out`."""
    run = run if isinstance(run, Run) else Run(run)
    check_free(Path(out), force)
    tokenizer = run.tokenizer()
    if run.config.get("kind") == "classifier":
        config, weights = _classifier(run, checkpoint, tokenizer)
    else:
        model = run.load_model(checkpoint)
        config, weights = hf_config(model.config, tokenizer), hf_state_dict(model)
    with staged(out, force=force, folder=True) as folder:
        _write_json(folder / "config.json", config)
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
        os.chmod(folder / "model.safetensors", plain_file_mode())  # safetensors writes 0600
        _write_json(folder / "generation_config.json", _generation_config(tokenizer, run))
        _write_json(folder / "tokenizer.json", to_hf_tokenizer(tokenizer))
        _write_json(folder / "tokenizer_config.json", _tokenizer_config(tokenizer, config, run))
    return Path(out)


def hf_config(config: GPTConfig, tokenizer: BPETokenizer) -> dict[str, Any]:
    """config.json for `config`: GPT-2's or Llama's (Qwen3's) field names."""
    check_exportable(config, "transformers")
    eot = {"bos_token_id": tokenizer.eot_id, "eos_token_id": tokenizer.eot_id}
    common = {"torch_dtype": "float32", "use_cache": True, **eot}
    if (config.pos, config.norm, config.mlp) == ("learned", "layernorm", "gelu"):
        return {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": config.vocab_size,
            "n_positions": config.block_size,
            "n_embd": config.n_embd,
            "n_layer": config.n_layer,
            "n_head": config.n_head,
            "n_inner": config.mlp_hidden,
            "activation_function": "gelu_new",  # the tanh approximation, as slm's FeedForward
            "layer_norm_epsilon": config.norm_eps,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "tie_word_embeddings": config.tie_weights,
            **common,
        }
    if (config.pos, config.norm, config.mlp) == ("rope", "rmsnorm", "swiglu"):
        llama = to_llama_config(config)
        name = "Qwen3ForCausalLM" if llama["model_type"] == "qwen3" else "LlamaForCausalLM"
        return {"architectures": [name], **llama, **common}
    raise ValueError(
        f"no transformers architecture has pos={config.pos!r}, norm={config.norm!r}, "
        f"mlp={config.mlp!r}: GPT-2 is learned/layernorm/gelu and Llama rope/rmsnorm/swiglu; "
        "train with a gpt2 or llama-* preset to export"
    )


def hf_state_dict(model: GPTModel) -> dict[str, torch.Tensor]:
    """The weights under transformers' names; a tied output layer is left to the embedding."""
    config = model.config
    gpt2 = config.pos == "learned"
    weights = model.to_gpt2_state_dict() if gpt2 else model.to_llama_state_dict()
    if config.tie_weights:
        weights.pop("lm_head.weight")
    return {name: tensor.contiguous() for name, tensor in weights.items()}


def _classifier(run: Run, checkpoint: str, tokenizer: BPETokenizer):
    from ..finetune import load_classifier

    classifier, _, labels, _ = load_classifier(run.path, checkpoint)
    if run.config.get("read_at", "last") != "last":
        raise ValueError(
            "this classifier reads its class at an appended <|endoftext|>, which transformers' "
            "GPT2ForSequenceClassification takes for padding; to export one, fine-tune it "
            f"with {setting('read_at', 'last')}"
        )
    gpt_config = classifier.config
    if gpt_config.pos != "learned" or tokenizer.eot_id is None:
        raise ValueError(
            "only GPT-2 classifiers with <|endoftext|> (their padding) export: transformers' "
            "GPT2ForSequenceClassification is the one class that matches slm's classifier"
        )
    bias = classifier.head.bias
    if bias is not None and bool(bias.detach().abs().max() > 0):
        raise ValueError(
            "this classifier's head has a bias, and GPT2ForSequenceClassification's output "
            "layer has none, so the scores would differ; it cannot be exported to transformers"
        )
    weights = classifier.gpt.to_gpt2_state_dict()
    weights.pop("lm_head.weight")  # the classifier's head replaces the language-model head
    weights["score.weight"] = classifier.head.weight.detach().clone().contiguous()
    config = hf_config(gpt_config, tokenizer)
    config["architectures"] = ["GPT2ForSequenceClassification"]
    config["id2label"] = dict(enumerate(labels))
    config["label2id"] = {label: i for i, label in enumerate(labels)}
    config["pad_token_id"] = tokenizer.eot_id  # slm pads with end-of-text too
    return config, weights


def _generation_config(tokenizer: BPETokenizer, run: Run) -> dict[str, Any]:
    """A chat run stops at <|im_end|> or end-of-text (transformers takes a list)."""
    eot = tokenizer.eot_id
    template = ChatTemplate.of(run.config)
    ends = list(reply_ends(tokenizer, run.config.get("prompt_format"), template))
    eos = ends if len(ends) > 1 else eot
    return {"bos_token_id": eot, "eos_token_id": eos, "pad_token_id": eot}


def _tokenizer_config(tokenizer: BPETokenizer, config: dict[str, Any], run: Run) -> dict[str, Any]:
    values: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": config.get("n_positions") or config.get("max_position_embeddings"),
        "clean_up_tokenization_spaces": False,
        "add_prefix_space": False,
    }
    if tokenizer.eot_id is not None:
        values |= {"bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT, "pad_token": END_OF_TEXT}
    if run.config.get("prompt_format") == CHATML:
        values["eos_token"] = IM_END  # where a chat reply ends
    named = ChatTemplate.of(run.config)
    if named is not None:  # an imported template names its own (Llama 3's <|eot_id|>)
        values |= {k: v for k, v in (("bos_token", named.bos_token),
                                     ("eos_token", named.eos_token)) if v}  # fmt: skip
    template = chat_template(run.config)
    if template is not None:
        values["chat_template"] = template
    return values


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
