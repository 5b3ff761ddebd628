"""Export to Hugging Face and GGUF, and import from Hugging Face (issue 12).

The references are independent: `transformers` and `tokenizers` load what we
export and build what we import; transformers also loads the GGUF files, and
`gguf.GGUFReader` reads their metadata back.
Every model is a tiny run that the test trains itself, for 4 steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import quick_config, story
from hypothesis import given, settings
from hypothesis import strategies as st
from slm_model import GPTModel, generate, get_gpt_config
from slm_tokenizer import END_OF_TEXT, GPT4_PATTERN, BPETokenizer, gpt2
from slm_train import (
    CheckpointError,
    ClassifyConfig,
    InstructConfig,
    Run,
    export_gguf,
    export_hf,
    finetune_classifier,
    finetune_instructions,
    import_hf,
    save_checkpoint,
    train,
)
from slm_train.export import to_hf_tokenizer
from slm_train.finetune import GPTClassifier

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
gguf = pytest.importorskip("gguf")

# (preset, model overrides): GPT-2, Llama (RoPE, RMSNorm, SwiGLU, GQA), and Qwen3 (QK-norm,
# heads wider than n_embd / n_head as in Qwen3-0.6B).
FAMILIES = {
    "gpt2": ("tiny", {}),
    "llama": ("llama-tiny", {"block_size": 256}),  # room for the instruction template
    "qwen3": ("llama-tiny", {"qk_norm": True, "tie_weights": False, "head_size": 32}),
}
PROMPT = "The cat sat on"


def train_run(folder: Path, preset: str, model: dict) -> Run:
    corpus = folder / "corpus.txt"
    corpus.write_text("\n<|endoftext|>\n".join(story(i) for i in range(40)) + "\n")
    config = quick_config(
        folder, corpus, preset=preset, max_steps=4, eval_interval=4, warmup_steps=1,
        model={"block_size": 32, **model},
    )  # fmt: skip
    torch.manual_seed(0)
    return Run(train(config).run_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    torch.set_num_threads(1)
    return {
        name: train_run(tmp_path_factory.mktemp(name), preset, model)
        for name, (preset, model) in FAMILIES.items()
    }


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hf")
    return {name: export_hf(run, folder / name) for name, run in runs.items()}


# ------------------------------------------------------------ Hugging Face
@pytest.mark.parametrize("family", FAMILIES)
def test_transformers_gives_the_same_logits_and_greedy_tokens(runs, exported, family):
    run, folder = runs[family], exported[family]
    assert {p.name for p in folder.iterdir()} == {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    expected = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM"}
    assert type(theirs).__name__ == expected[family]
    ours = run.load_model()
    ids = torch.tensor([run.tokenizer().encode(PROMPT + " the dog ran to the park")])
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, ours(ids), atol=1e-4, rtol=0)
        ours_greedy = generate(ours, ids[:, :4], 12, temperature=0)
        theirs_greedy = theirs.generate(
            ids[:, :4], max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0
        )
    assert theirs_greedy.tolist() == ours_greedy.tolist()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=12), st.just(END_OF_TEXT), st.sampled_from(["'s", "  \n", "1 2"])
        ),
        max_size=6,
    )
)
def test_autotokenizer_gives_the_same_ids(exported, runs, parts):
    tokenizer = runs["gpt2"].tokenizer()
    theirs = _autotokenizer(exported["gpt2"])
    text = "".join(parts)
    ids = tokenizer.encode(text, allowed_special="all")
    assert theirs(text)["input_ids"] == ids
    assert theirs.decode(ids) == tokenizer.decode(ids)


def _autotokenizer(folder: Path, cache: dict = {}):  # noqa: B006 (loaded once per folder)
    if folder not in cache:
        cache[folder] = transformers.AutoTokenizer.from_pretrained(folder)
    return cache[folder]


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30))
def test_gpt2_tokenizer_with_its_byte_order_exports(text):
    """GPT-2's tokenizer numbers the 256 bytes in its own order; the export keeps it.
    (`tokenizers` always reads an added special token as special: so does ours here.)"""
    ours = gpt2()
    theirs = _gpt2_hf(ours)
    assert theirs.encode(text).ids == ours.encode(text, allowed_special="all")


def _gpt2_hf(tokenizer, cache: dict = {}):  # noqa: B006
    if "gpt2" not in cache:
        cache["gpt2"] = tokenizers.Tokenizer.from_str(json.dumps(to_hf_tokenizer(tokenizer)))
    return cache["gpt2"]


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from("aB1 \n\r\t'sSlLD.,é中😀\u00a0"), max_size=20) | st.text())
def test_gpt4_pattern_exports(text):
    """GPT-4's pattern: case-insensitive contractions, digits in threes, newlines apart."""
    ours, theirs = _gpt4_pair()
    assert theirs.encode(text).ids == ours.encode(text, allowed_special="all")


def _gpt4_pair(cache: dict = {}):  # noqa: B006
    if not cache:
        text = " ".join(story(i) for i in range(20)) + " 12345 I'LL\r\n\n  x"
        ours = BPETokenizer.train(text, 300, [END_OF_TEXT], GPT4_PATTERN, workers=1)
        cache["pair"] = ours, tokenizers.Tokenizer.from_str(json.dumps(to_hf_tokenizer(ours)))
    return cache["pair"]


def test_export_refuses_what_does_not_map(runs, tmp_path):
    with pytest.raises(ValueError, match="already exists; pass force=True"):
        export_hf(runs["gpt2"], tmp_path)
    mixed = tmp_path / "mixed"
    run = runs["gpt2"]
    model = GPTModel(get_gpt_config("tiny", pos="rope", vocab_size=run.model_config.vocab_size))
    _copy_run(run, mixed, model)
    with pytest.raises(ValueError, match="no transformers architecture"):
        export_hf(mixed, tmp_path / "out")
    with pytest.raises(ValueError, match=r"llama\.cpp has no architecture"):
        export_gguf(mixed, tmp_path / "out.gguf")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.gguf").exists()


def test_export_of_a_damaged_checkpoint_writes_nothing(runs, tmp_path):
    damaged = tmp_path / "damaged"
    _copy_run(runs["gpt2"], damaged, runs["gpt2"].load_model())
    weights = damaged / "best" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        export_hf(damaged, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _copy_run(run: Run, folder: Path, model, extra: dict | None = None) -> Run:
    copy = Run.create(
        folder,
        model_config=model.config,
        train_config=run.config["train"],
        tokenizer_file=run.path / "tokenizer.json",
        tokenizer_info=run.config["tokenizer"],
        data_info=run.config["data"],
        extra=extra,
    )
    save_checkpoint(folder / "best", model, {"step": 0})
    return copy


def test_classifier_exports_as_gpt2_for_sequence_classification(runs, tmp_path):
    run = runs["gpt2"]
    torch.manual_seed(0)
    classifier = GPTClassifier(run.load_model(), 2)
    extra = {"kind": "classifier", "labels": ["no", "yes"], "max_length": 32}
    _copy_run(run, tmp_path / "with-bias", classifier, extra)
    with pytest.raises(ValueError, match="has a bias"):
        export_hf(tmp_path / "with-bias", tmp_path / "out")

    torch.nn.init.zeros_(classifier.head.bias)
    _copy_run(run, tmp_path / "at-eot", classifier, extra | {"read_at": "eot"})
    with pytest.raises(ValueError, match=r"appended <\|endoftext\|>.*read_at='last'$"):
        export_hf(tmp_path / "at-eot", tmp_path / "out")
    _copy_run(run, tmp_path / "classifier", classifier, extra)
    folder = export_hf(tmp_path / "classifier", tmp_path / "hf")
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert type(theirs).__name__ == "GPT2ForSequenceClassification"
    assert theirs.config.id2label == {0: "no", 1: "yes"}
    tokenizer = run.tokenizer()
    texts = [tokenizer.encode("the cat sat"), tokenizer.encode("a dog ran to the park")]
    lengths = torch.tensor([len(t) for t in texts])
    idx = torch.full((2, int(lengths.max())), tokenizer.eot_id)
    for row, ids in enumerate(texts):
        idx[row, : len(ids)] = torch.tensor(ids)
    with torch.no_grad():
        torch.testing.assert_close(theirs(idx).logits, classifier(idx, lengths), atol=1e-4, rtol=0)


# -------------------------------------------------------------------- GGUF
@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0", "q4_0"])
def test_gguf_reads_back(runs, tmp_path, dtype):
    run = runs["gpt2"]
    path = export_gguf(run, tmp_path / "model.gguf", dtype=dtype)
    reader = gguf.GGUFReader(path)
    fields = reader.fields
    assert _string(fields["general.architecture"]) == "gpt2"
    assert _string(fields["tokenizer.ggml.model"]) == "gpt2"
    assert _string(fields["tokenizer.ggml.pre"]) == "gpt-2"
    config = run.model_config
    assert _int(fields["gpt2.block_count"]) == config.n_layer
    assert _int(fields["gpt2.context_length"]) == config.block_size
    assert _int(fields["gpt2.embedding_length"]) == config.n_embd
    tokenizer = run.tokenizer()
    tokens = [
        bytes(fields["tokenizer.ggml.tokens"].parts[i])
        for i in fields["tokenizer.ggml.tokens"].data
    ]
    assert len(tokens) == config.vocab_size
    assert tokens[tokenizer.eot_id] == END_OF_TEXT.encode()
    assert tokens[256 + 3] == "".join(_text(t) for t in tokenizer.merges[3]).encode()
    merges = fields["tokenizer.ggml.merges"]
    assert len(merges.data) == len(tokenizer.merges)
    assert _int(fields["tokenizer.ggml.eos_token_id"]) == tokenizer.eot_id

    tensors = {t.name: t for t in reader.tensors}
    state = run.load_model().state_dict()
    expected = {"token_embd.weight", "position_embd.weight", "output_norm.weight", "output.weight"}
    assert expected <= set(tensors)
    assert len(tensors) == 5 + 12 * config.n_layer
    qkv = tensors["blk.1.attn_qkv.weight"]
    assert list(qkv.shape) == [config.n_embd, 3 * config.n_embd]  # GGUF lists dims inner first
    if dtype == "f32":
        data = np.asarray(qkv.data).reshape(3 * config.n_embd, config.n_embd)
        np.testing.assert_array_equal(data, state["blocks.1.attn.qkv.weight"].numpy())
    kind = {"f32": "F32", "f16": "F16", "q8_0": "Q8_0", "q4_0": "Q4_0"}[dtype]
    assert qkv.tensor_type.name == kind
    assert tensors["blk.0.attn_norm.weight"].tensor_type.name == "F32"


def test_gguf_llama_permutes_queries_and_keys_for_llama_cpp(runs, tmp_path):
    run = runs["llama"]
    reader = gguf.GGUFReader(export_gguf(run, tmp_path / "llama.gguf"))
    assert _string(reader.fields["general.architecture"]) == "llama"
    assert _int(reader.fields["llama.attention.head_count_kv"]) == 2
    tensors = {t.name: t for t in reader.tensors}
    config = run.model_config
    q = np.asarray(tensors["blk.0.attn_q.weight"].data).reshape(config.n_embd, config.n_embd)
    ours = run.load_model().blocks[0].attn.qkv.weight[: config.n_embd].detach().numpy()
    half = config.head_dim // 2
    # Row 2i of a head is our row i, row 2i+1 our row i + head_dim/2.
    np.testing.assert_array_equal(q[0], ours[0])
    np.testing.assert_array_equal(q[1], ours[half])
    assert (
        _string(
            gguf.GGUFReader(export_gguf(runs["qwen3"], tmp_path / "q.gguf")).fields[
                "general.architecture"
            ]
        )
        == "qwen3"
    )


# transformers reads GGUF with its own code (names, Llama's row order, the config),
# and so is an independent reader. Its GGUF config mapping has two gaps, filled here
# from our config: gpt2's context_length goes to the unused `n_ctx` rather than
# `n_positions`, and qwen3's head size (attention.key_length) is not read at all.
GGUF_CONFIG_GAPS = {"gpt2": ("n_positions", "block_size"), "qwen3": ("head_dim", "head_dim")}


@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0", "q4_0"])
@pytest.mark.parametrize("family", FAMILIES)
def test_transformers_reads_the_gguf_file_with_our_logits(runs, tmp_path, family, dtype):
    """Each dtype against our model with its weights rounded as the format stores them.

    The file is lossy for f16 and q8_0, so the reference is our model with every
    matrix rounded the way the format rounds it (written out below, not taken from
    `gguf`). Then transformers' logits must match to float32 noise for all three
    dtypes (2e-7 measured; 1e-5 allowed). The rounding itself moves these logits by
    about 2e-4 (f16) and 5e-3 (q8_0), and a 4-step model's attention is so nearly
    uniform that dropping Llama's key permutation moves them by only 2e-3: a loose
    tolerance against the unrounded model would miss both that and q8_0 written as f16.
    """
    run = runs[family]
    path = export_gguf(run, tmp_path / "model.gguf", dtype=dtype)
    config = run.model_config
    setting, ours_name = GGUF_CONFIG_GAPS.get(family, (None, None))
    gaps = {setting: getattr(config, ours_name)} if setting else {}
    theirs = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, gguf_file=path.name, **gaps
    ).eval()
    text = PROMPT + " the dog ran to the park.<|endoftext|>A bird"
    ids = run.tokenizer().encode(text, allowed_special="all")
    reference = _rounded_as_stored(run.load_model(), dtype)
    with torch.no_grad():
        torch.testing.assert_close(
            theirs(torch.tensor([ids])).logits, reference(torch.tensor([ids])), atol=1e-5, rtol=0
        )
    if dtype == "f32":  # the tokenizer does not depend on the weights' dtype
        tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
        assert tokenizer(text)["input_ids"] == ids


def _rounded_as_stored(model: GPTModel, dtype: str) -> GPTModel:
    """`model` with its matrices rounded as a `dtype` GGUF file stores them (vectors stay f32)."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 2 and dtype == "f16":
                parameter.copy_(parameter.half().float())
            elif parameter.ndim == 2 and dtype == "q8_0":
                parameter.copy_(_q8_0(parameter))
            elif parameter.ndim == 2 and dtype == "q4_0":
                parameter.copy_(_q4_0(parameter))
    return model


def _q8_0(weight: torch.Tensor) -> torch.Tensor:
    """ggml's q8_0: each run of 32 weights in a row is int8 times one f16 scale, max|w| / 127.

    As ggml-quants.c does it: x * (1 / scale), rounded half away from zero (C's roundf).
    """
    blocks = weight.reshape(-1, 32)
    scale = blocks.abs().amax(dim=1, keepdim=True) / 127
    scaled = blocks * torch.where(scale == 0, 0.0, 1 / scale)
    steps = scaled.sign() * (scaled.abs() + 0.5).floor()
    return (steps * scale.half().float()).reshape(weight.shape)


def _q4_0(weight: torch.Tensor) -> torch.Tensor:
    """ggml's q4_0: each run of 32 weights is (q - 8) times one f16 scale, q in 0..15.

    As ggml-quants.c does it: the scale is the signed weight of largest magnitude
    over -8 (so that weight lands exactly on -8), q = trunc(x / scale + 8.5) kept
    within 0..15.
    """
    blocks = weight.reshape(-1, 32)
    extreme = blocks.gather(1, blocks.abs().argmax(dim=1, keepdim=True))
    scale = extreme / -8
    steps = (blocks * torch.where(scale == 0, 0.0, 1 / scale) + 8.5).trunc().clamp(0, 15)
    return ((steps - 8) * scale.half().float()).reshape(weight.shape)


def test_gguf_q4_0_dequantizes_within_its_error_bound(runs, tmp_path):
    """Each q4_0 weight is within half a step of the original, or one step where clipped.

    The step of a block is max|w| / 8, and the steps run from -8 to 7: the largest
    weight lands on -8 exactly, weights within 7 steps err by at most half a step
    (rounding to the nearest), and those of the other sign beyond 7 steps are clipped
    to 7, erring by up to one step. Allowed on top: 1 % for the f16 scale (relative
    2^-11, times at most 8 steps) and float32 noise. A matrix whose rows are not
    whole blocks would be written f16 instead.
    """
    run = runs["llama"]
    reader = gguf.GGUFReader(export_gguf(run, tmp_path / "q4.gguf", dtype="q4_0"))
    tensors = {t.name: t for t in reader.tensors}
    weight = run.load_model().blocks[0].mlp.proj.weight.detach().numpy()
    stored = tensors["blk.0.ffn_down.weight"]
    assert stored.tensor_type.name == "Q4_0"
    theirs = gguf.quants.dequantize(np.asarray(stored.data), gguf.GGMLQuantizationType.Q4_0)
    blocks = weight.reshape(-1, 32)
    step = np.abs(blocks).max(axis=1, keepdims=True) / 8
    error = np.abs(theirs.reshape(-1, 32) - blocks)
    clipped = np.abs(blocks) > 7 * step
    assert (error <= np.where(clipped, 1.0, 0.5) * step * 1.01).all()
    assert error.max() > step.max() / 100  # really quantized, not written as f32
    assert tensors["blk.0.attn_norm.weight"].tensor_type.name == "F32"


def _string(field) -> str:
    return bytes(field.parts[field.data[0]]).decode()


def _int(field) -> int:
    return int(field.parts[field.data[0]][0])


def _text(token: bytes) -> str:
    from slm_tokenizer.bytelevel import bytes_to_text

    return bytes_to_text(token)


# ------------------------------------------------------------------ import
def hf_tokenizer(folder: Path):
    """A byte-level BPE trained by the `tokenizers` library, with <|endoftext|> after the merges."""
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=320,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    tokenizer.train_from_iterator([story(i) for i in range(40)], trainer)
    tokenizer.add_special_tokens([END_OF_TEXT])
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=END_OF_TEXT)
    fast.save_pretrained(folder)
    return fast


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_import_a_model_transformers_saved(tmp_path, family):
    torch.manual_seed(0)
    hf_tok = hf_tokenizer(tmp_path / "hf")
    vocab = len(hf_tok)
    if family == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=vocab, n_positions=32, n_embd=32, n_layer=2, n_head=4
        )
    else:
        config = transformers.LlamaConfig(
            vocab_size=vocab, max_position_embeddings=32, hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        )  # fmt: skip
    theirs = transformers.AutoModelForCausalLM.from_config(config).eval()
    theirs.save_pretrained(tmp_path / "hf")
    run = import_hf(tmp_path / "hf", tmp_path / "run")
    text = "The dog ran to the park.<|endoftext|>A cat"
    ids = hf_tok(text)["input_ids"]
    assert run.tokenizer().encode(text, allowed_special="all") == ids
    ours = run.load_model()
    with torch.no_grad():
        torch.testing.assert_close(
            ours(torch.tensor([ids])), theirs(torch.tensor([ids])).logits, atol=1e-4, rtol=0
        )
    assert run.summary().kind == "imported"


def test_both_fine_tunings_start_from_an_imported_run(exported, tmp_path):
    base = import_hf(exported["llama"], tmp_path / "base")
    rows = [(story(i, 1), "even" if i % 2 else "odd") for i in range(40)]
    (tmp_path / "labels.csv").write_text(
        "text,label\n" + "".join(f'"{text}",{label}\n' for text, label in rows)
    )
    records = [
        {"instruction": "Repeat.", "input": story(i, 1), "output": story(i, 1)} for i in range(20)
    ]
    (tmp_path / "inst.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    common = dict(base_run=str(base.path), epochs=1, max_steps=2, batch_size=4)
    classified = finetune_classifier(
        ClassifyConfig(data=str(tmp_path / "labels.csv"), out_dir=str(tmp_path / "c"), **common)
    )
    assert classified.labels == ["even", "odd"]
    instructed = finetune_instructions(
        InstructConfig(
            data=str(tmp_path / "inst.jsonl"),
            out_dir=str(tmp_path / "i"),
            max_new_tokens=2,
            **common,
        )
    )
    assert Run(instructed.run_dir).config["data"]["base"] == str(base.path)


def test_export_then_import_is_the_same_run(runs, exported, tmp_path):
    run = import_hf(exported["qwen3"], tmp_path / "back")
    assert run.model_config == runs["qwen3"].model_config
    ours, back = runs["qwen3"].load_model(), run.load_model()
    for name, tensor in ours.state_dict().items():
        torch.testing.assert_close(back.state_dict()[name], tensor, atol=0, rtol=0)
    assert run.tokenizer().merges == runs["qwen3"].tokenizer().merges


def test_import_refuses_bad_folders(tmp_path, exported):
    with pytest.raises(ValueError, match="no folder at"):
        import_hf(tmp_path / "missing", tmp_path / "run")
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="'bert' model; slm imports gpt2, llama, qwen2, qwen3"):
        import_hf(folder, tmp_path / "run")
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((exported["gpt2"] / name).read_bytes())
    with pytest.raises(ValueError, match=r"tokenizer\.json is missing"):
        import_hf(no_tokenizer, tmp_path / "run")
    wordpiece = tmp_path / "wordpiece"
    wordpiece.mkdir()
    (wordpiece / "config.json").write_bytes((exported["gpt2"] / "config.json").read_bytes())
    (wordpiece / "tokenizer.json").write_text('{"model": {"type": "WordPiece"}}')
    with pytest.raises(ValueError, match="'WordPiece' tokenizer; slm reads byte-level BPE"):
        import_hf(wordpiece, tmp_path / "run")
    assert not (tmp_path / "run").exists()
