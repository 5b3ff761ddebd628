"""A model saved by `transformers` (GPT-2, Llama, Qwen2 or Qwen3) as an slm run.

    DIR/config.json       model_type "gpt2", "llama", "qwen2" or "qwen3", and the sizes
        model.safetensors (or sharded model-0000x-of-0000y.safetensors, or pytorch_model.bin)
        tokenizer.json    a byte-level BPE (slm_tokenizer.hf_format reads it)
        tokenizer_config.json or chat_template.jinja   a chat template, if any

A chat template is kept in the run's config.json, and exports write it again.
If it is ChatML and the tokenizer has ChatML's markers as special tokens, the
run is a chat run: `chat` holds a conversation with it, rendered by slm's own
ChatML renderer.

The run has the model as its `best/` checkpoint and the tokenizer as its
tokenizer.json, so generate, chat, eval (with --data) and both fine-tunings use
it like a run slm trained. Everything is checked before the run is created, so
bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from slm_model import GPTConfig, GPTModel, config_from_llama
from slm_tokenizer import BPETokenizer
from slm_tokenizer.chat import CHAT_TOKENS, has_chat_tokens

from ..chat_template import TEMPLATE
from ..checkpoint import save_checkpoint
from ..prompts import CHATML
from ..run import Run
from .fits import check_fits, weights_size
from .hub_model import Progress, download_model, looks_like_repo_id

MODEL_TYPES = ("gpt2", "llama", "qwen2", "qwen3")


def import_hf(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    revision: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Run:
    """Create the run `out` from `source`, a transformers folder or a hub model id; return it.

    A hub id (OWNER/NAME) is downloaded into huggingface_hub's cache first
    (`hub_model.py`), at `revision` if given, calling `progress(done, total)`
    with the bytes; the cached folder is then read like a local one.
    """
    folder, source_name = _resolve(source, revision, progress)
    hf_config = _read_config(folder)
    tokenizer = tokenizer_from_hf(folder / "tokenizer.json")
    weights, dtype = _read_weights(folder, source_name or str(folder))
    if hf_config["model_type"] == "gpt2":
        model = GPTModel.from_gpt2_state_dict(weights, _gpt2_config(hf_config))
    else:
        model = GPTModel.from_llama_state_dict(weights, config_from_llama(hf_config))
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(
            f"{folder}: the tokenizer makes ids up to {tokenizer.vocab_size - 1}, but the model "
            f"has {model.config.vocab_size} embeddings; they do not belong together"
        )
    model = _without_padding(model, tokenizer.vocab_size)
    folder = folder.resolve()
    source = f"Hugging Face folder {folder}" if source_name is None else f"hf:{source_name}"
    with tempfile.TemporaryDirectory(prefix="slm-tokenizer-") as temporary:
        run = Run.create(
            out,
            model_config=model.config,
            train_config={"epochs": 0, "learning_rate": 0.0, "precision": "fp32"},
            tokenizer_file=tokenizer.save(Path(temporary) / "tokenizer.json"),
            tokenizer_info={
                "spec": f"hf:{source_name or folder}",
                "vocab_size": tokenizer.vocab_size,
                "eot_id": tokenizer.eot_id,
            },
            # No validation split of its own: `eval` needs --data (without, it says so).
            data_info={"source": source, "dir": str(folder), "train": 0, "val": 0, "test": 0},
            force=force,
            extra=_kind(folder, tokenizer),
        )
    try:
        imported_from = source_name or str(folder)
        # Stored as the checkpoint was (bf16 stays bf16: exact, and half the disk); the run
        # loads it into float32, as every slm run.
        state = {"step": 0, "imported_from": imported_from}
        save_checkpoint(run.path / "best", model.to(dtype), state)
    except BaseException:
        shutil.rmtree(run.path, ignore_errors=True)  # no run without its weights
        raise
    return run


def _without_padding(model: GPTModel, vocab_size: int) -> GPTModel:
    """The model with only the embedding rows the tokenizer can make.

    Qwen pads its 151,665 tokens to 151,936 rows (a multiple of 128, for fast
    matrix kernels). No text ever maps to those rows, but sampling could still
    pick one, and then it could not be decoded; dropping them makes the run's
    vocabulary the tokenizer's, as in every run slm trains.
    """
    if vocab_size == model.config.vocab_size:
        return model
    config = dataclasses.replace(model.config, vocab_size=vocab_size)
    state = model.state_dict()
    for name in ("tok_emb.weight", "lm_head.weight"):
        state[name] = state[name][:vocab_size].clone()
    with torch.device("meta"):
        trimmed = GPTModel(config)
    trimmed.load_state_dict(state, assign=True)
    if config.tie_weights:
        trimmed.lm_head.weight = trimmed.tok_emb.weight
    return trimmed


def _resolve(
    source: str | os.PathLike, revision: str | None, progress: Progress | None
) -> tuple[Path, str | None]:
    """(the folder to read, the hub id@revision it came from or None for a local folder)."""
    path = Path(source)
    if path.exists() or not looks_like_repo_id(str(source)):
        if revision is not None:
            raise ValueError(f"{source} is a local folder; --revision is for hub model ids")
        return path, None
    folder = download_model(str(source), revision, progress)
    return folder, f"{source}@{folder.name}"  # the snapshot folder is named by its commit


def tokenizer_from_hf(path: str | os.PathLike) -> BPETokenizer:
    """The tokenizer.json beside a transformers model, as an slm tokenizer."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"{path} is missing; save the tokenizer beside the model (tokenizer.save_pretrained)"
        )
    return BPETokenizer.load(path)


def _kind(folder: Path, tokenizer: BPETokenizer) -> dict[str, Any]:
    """What the run is: imported, with the chat template found beside it. ChatML with the
    tokenizer's markers makes a chat run like slm's own; another template, a chat run
    that renders its conversations through that template (chat_template.py)."""
    template = read_chat_template(folder)
    if template is None:
        return {"kind": "imported"}
    if all(marker in template for marker in CHAT_TOKENS) and has_chat_tokens(tokenizer):
        return {"kind": "chat", "prompt_format": CHATML, "chat_template": template}
    named = _named_tokens(folder, tokenizer)
    return {"kind": "chat", "prompt_format": TEMPLATE, "chat_template": template, **named}


def _named_tokens(folder: Path, tokenizer: BPETokenizer) -> dict[str, str]:
    """tokenizer_config.json's bos_token and eos_token, which templates write, where the
    tokenizer has them (a name is a string or {"content": ...})."""
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    named = {}
    for key in ("bos_token", "eos_token"):
        value = config.get(key) if isinstance(config, dict) else None
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str) and value in tokenizer.special_tokens:
            named[key] = value
    return named


def read_chat_template(folder: str | os.PathLike) -> str | None:
    """The folder's chat template: tokenizer_config.json's "chat_template" (the default
    one, when it lists several), or chat_template.jinja, which transformers 5 writes."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        config = {}
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{folder / 'tokenizer_config.json'} is damaged ({error})") from None
    template = config.get("chat_template") if isinstance(config, dict) else None
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if isinstance(template, str) and template:
        return template
    jinja = folder / "chat_template.jinja"
    return jinja.read_text(encoding="utf-8") if jinja.is_file() else None


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not folder.is_dir():
        raise ValueError(f"no folder at {folder}; give a folder saved by save_pretrained")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"{folder} has no config.json; is it a folder saved by transformers?"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is damaged ({error})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"{folder} holds a {model_type!r} model; slm imports {', '.join(MODEL_TYPES)} "
            "(the GPT-2, Llama, Qwen2 and Qwen3 architectures)"
        )
    return config


def _gpt2_config(hf_config: dict[str, Any]) -> GPTConfig:
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(
            f"this GPT-2 uses {activation!r}; slm's GPT-2 uses the tanh GELU (gelu_new)"
        )
    n_embd, inner = hf_config.get("n_embd", 768), hf_config.get("n_inner")
    return GPTConfig(
        block_size=hf_config.get("n_positions", 1024),
        vocab_size=hf_config["vocab_size"],
        n_layer=hf_config.get("n_layer", 12),
        n_head=hf_config.get("n_head", 12),
        n_embd=n_embd,
        intermediate_size=None if inner in (None, 4 * n_embd) else inner,
        norm_eps=hf_config.get("layer_norm_epsilon", 1e-5),
        tie_weights=hf_config.get("tie_word_embeddings", True),
    )


def _read_weights(folder: Path, name: str) -> tuple[dict[str, torch.Tensor], torch.dtype]:
    """model.safetensors, its shards (model.safetensors.index.json) or pytorch_model.bin,
    and the floating dtype they are stored in. Safetensors are sized from their headers
    first (`fits.py`), so a model too large for memory is refused before it is read."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        files = [folder / shard for shard in shards]
    elif (folder / "pytorch_model.bin").is_file():
        weights = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        return weights, _stored_dtype(weights)
    else:
        raise ValueError(f"{folder} has no model.safetensors (nor pytorch_model.bin)")
    check_fits(name, weights_size(files))
    weights = {k: v for path in files for k, v in load_file(str(path)).items()}
    return weights, _stored_dtype(weights)


def _stored_dtype(weights: dict[str, torch.Tensor]) -> torch.dtype:
    """The one floating dtype of the checkpoint (bfloat16, float16), or float32 for a mix."""
    dtypes = {tensor.dtype for tensor in weights.values() if tensor.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else torch.float32
