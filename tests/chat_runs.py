"""Chat runs made in a second, for the tests of what talks to them (chat, generate, export).

A chat run is a run whose config.json says `"kind": "chat"` and
`"prompt_format": "chatml"`, with a tokenizer that has ChatML's markers.
`finetune chat` makes them by training; these are made directly: a tiny BPE
trained with `RESERVED_TOKENS`, and a tiny model whose weights are set by hand
when a test needs it to say something known.

`scripted_model` makes a model that is a bigram table: every block adds
nothing to the residual stream (its output projections are zero), there are no
position embeddings, and each chosen token's embedding is its own direction, so
the logits depend on the last token only. Its greedy reply to any conversation
is therefore the chain written into the table: the token that ends
"<|im_start|>assistant\\n", then the reply's tokens one by one, then
`<|im_end|>`.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import torch
from helpers import story
from slm_model import GPTModel, get_gpt_config
from slm_tokenizer import RESERVED_TOKENS, BPETokenizer
from slm_tokenizer.chat import IM_END
from slm_train import Run, save_checkpoint

CHAT_EXTRA = {"kind": "chat", "prompt_format": "chatml"}


def chat_tokenizer() -> BPETokenizer:
    """A 300-token BPE of the tests' stories, with <|endoftext|>, <|im_start|>, <|im_end|>."""
    text = " ".join(story(i) for i in range(40)) + " Hello, friend! Who are you? I am slm.\n"
    return BPETokenizer.train(text, 300, RESERVED_TOKENS, workers=1)


def make_chat_run(
    folder: str | Path,
    model: GPTModel | None = None,
    *,
    tokenizer: BPETokenizer | None = None,
    block_size: int = 64,
    extra: dict | None = None,
) -> Run:
    """A chat run at `folder` holding `model` (default: a random tiny GPT-2) as `best/`."""
    tokenizer = tokenizer or chat_tokenizer()
    if model is None:
        torch.manual_seed(0)
        model = GPTModel(
            get_gpt_config("tiny", vocab_size=tokenizer.vocab_size, block_size=block_size)
        )
    with tempfile.TemporaryDirectory() as temporary:
        run = Run.create(
            folder,
            model_config=model.config,
            train_config={"epochs": 1, "learning_rate": 1e-4, "precision": "fp32"},
            tokenizer_file=tokenizer.save(Path(temporary) / "tokenizer.json"),
            tokenizer_info={
                "spec": "bpe:300",
                "vocab_size": tokenizer.vocab_size,
                "eot_id": tokenizer.eot_id,
            },
            data_info={"source": "tests", "train": 1, "val": 1, "test": 0},
            extra=CHAT_EXTRA if extra is None else extra,
        )
    save_checkpoint(run.path / "best", model, {"step": 0})
    return run


def scripted_model(
    tokenizer: BPETokenizer, chain: list[int], *, preset: str = "tiny", block_size: int = 64
) -> GPTModel:
    """A model whose greedy next token after `chain[i]` is `chain[i + 1]` (a bigram table)."""
    if len(set(chain[:-1])) != len(chain) - 1:
        raise ValueError(f"each token may lead to one next token only: {chain}")
    config = get_gpt_config(
        preset, vocab_size=tokenizer.vocab_size, block_size=block_size, tie_weights=False
    )
    if len(chain) > config.n_embd:
        raise ValueError("the chain needs one embedding direction per token")
    model = GPTModel(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("blocks.") and (".out_proj." in name or ".proj." in name):
                parameter.zero_()  # the blocks add nothing: each position sees its own token
        if config.pos == "learned":
            model.pos_emb.weight.zero_()
        model.tok_emb.weight.zero_()
        model.lm_head.weight.zero_()
        if model.lm_head.bias is not None:
            model.lm_head.bias.zero_()
        for direction, (token, following) in enumerate(itertools.pairwise(chain)):
            model.tok_emb.weight[token, direction] = 1.0
            model.lm_head.weight[following, direction] = 10.0
    return model.eval()


def reply_chain(tokenizer: BPETokenizer, reply: str) -> list[int]:
    """The chain that makes a scripted model answer `reply` and stop, after any prompt."""
    header = tokenizer.encode_ordinary("assistant\n")
    return [header[-1], *tokenizer.encode_ordinary(reply), tokenizer.special_tokens[IM_END]]


def scripted_chat_run(folder: str | Path, reply: str, *, block_size: int = 64) -> Run:
    """A chat run whose greedy reply to anything is `reply`, then <|im_end|>."""
    tokenizer = chat_tokenizer()
    model = scripted_model(tokenizer, reply_chain(tokenizer, reply), block_size=block_size)
    return make_chat_run(folder, model, tokenizer=tokenizer)
