"""`import_hf` of a hub model id, through the real huggingface_hub and the fake hub (issue 22).

Each model is a random tiny transformers model saved with save_pretrained,
with a small byte-level BPE and a ChatML template in tokenizer_config.json,
served by tests/fakehub.py. The imported run must give transformers' logits
and greedy tokens with the chat template applied; the second import must find
the weights in huggingface_hub's cache; and each way a download can fail must
end in one line saying what to do.
"""

from __future__ import annotations

import importlib
import itertools
import json
import socket

import pytest
import torch
from hf_folders import repo_files, tiny_hub_model
from safetensors.torch import load_file
from slm_model import generate
from slm_train import export_gguf, export_hf, import_hf
from slm_train.export import fits
from slm_train.export.fits import weights_size

transformers = pytest.importorskip("transformers")
pytest.importorskip("huggingface_hub")

MESSAGES = [{"role": "user", "content": "the cat sat on the mat"}]


def llama_config(**changes):
    return transformers.LlamaConfig(**{**SIZES, **changes})


LLAMA3_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}  # fmt: skip  (with head_dim 8, one RoPE pair keeps its speed, one blends, two stretch)
SIZES = dict(
    vocab_size=304, max_position_embeddings=64, hidden_size=32, intermediate_size=64,
    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
)  # fmt: skip
GPT2_SIZES = dict(vocab_size=304, n_positions=64, n_embd=32, n_layer=2, n_head=4)
FAMILIES = {
    "llama3-tied": lambda: llama_config(
        rope_scaling=dict(LLAMA3_SCALING), tie_word_embeddings=True
    ),
    "llama3-untied": lambda: llama_config(rope_scaling=dict(LLAMA3_SCALING), rope_theta=500.0),
    "smollm2-tied": lambda: llama_config(tie_word_embeddings=True, rope_theta=100000.0),
    "qwen2-tied": lambda: transformers.Qwen2Config(**SIZES, tie_word_embeddings=True),
    "qwen2-untied": lambda: transformers.Qwen2Config(**SIZES, tie_word_embeddings=False),
    # Qwen3's heads are wider than hidden_size / heads (0.6B: 16 x 128 in 1024), as here.
    "qwen3-tied": lambda: transformers.Qwen3Config(**SIZES, head_dim=16, tie_word_embeddings=True),
    "qwen3-untied": lambda: transformers.Qwen3Config(**SIZES, head_dim=8),
    "gpt2-tied": lambda: transformers.GPT2Config(**GPT2_SIZES),
    "gpt2-untied": lambda: transformers.GPT2Config(**GPT2_SIZES, tie_word_embeddings=False),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_imports_from_the_hub_as_transformers_reads_it(fake_hub, family, tmp_path):
    torch.set_num_threads(1)
    config = FAMILIES[family]()
    folder = tiny_hub_model(tmp_path / family, config, seed=len(family))
    fake_hub.add_repo(f"me/{family}", repo_files(folder), "models")
    run = import_hf(f"me/{family}", tmp_path / "run")
    assert run.model_config.tie_weights == config.tie_word_embeddings
    agrees_with_transformers(run, folder)


def test_smollm2s_tokenizer_layout_imports_from_the_hub(fake_hub, tmp_path):
    """SmolLM2's tokenizer puts its special tokens first (ids 0-2 here, 0-16 in the real
    one) and splits digits one by one: the imported run reads it as transformers does."""
    torch.set_num_threads(1)
    folder = tiny_hub_model(tmp_path / "smollm2", llama_config(), smollm2_layout=True)
    assert json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]["<|im_end|>"] == 2
    fake_hub.add_repo("me/smollm2", repo_files(folder), "models")
    run = import_hf("me/smollm2", tmp_path / "run")
    assert run.tokenizer().encode("in 2024") == transformers.AutoTokenizer.from_pretrained(
        folder
    ).encode("in 2024")
    agrees_with_transformers(run, folder)


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    return tiny_hub_model(tmp_path_factory.mktemp("models") / "llama", llama_config())


def agrees_with_transformers(run, folder) -> None:
    """Logits within 1e-4 of transformers', and the same greedy tokens after the chat template."""
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert run.tokenizer().encode(tokenizer.decode(ids), allowed_special="all") == list(ids)
    ours, vocab = run.load_model(), run.tokenizer().vocab_size
    assert ours.config.vocab_size == vocab < theirs.config.vocab_size  # padding rows dropped
    prompt = torch.tensor([list(ids)])
    with torch.no_grad():
        expected = theirs(prompt).logits[..., :vocab]
        torch.testing.assert_close(ours(prompt), expected, atol=1e-4, rtol=0)
        greedy = theirs.generate(
            prompt, max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0,
            suppress_tokens=list(range(vocab, theirs.config.vocab_size)),
        )  # fmt: skip
    assert generate(ours, prompt, 8, temperature=0.0).tolist() == greedy.tolist()


def weight_downloads(hub) -> list[str]:
    return [path for path in hub.downloads() if path.endswith(".safetensors")]


def test_a_hub_id_downloads_once_and_imports_as_transformers_reads_it(
    fake_hub, llama_folder, tmp_path
):
    torch.set_num_threads(1)
    fake_hub.add_repo("me/tiny-llama", repo_files(llama_folder), "models")
    seen = []
    run = import_hf("me/tiny-llama", tmp_path / "run", progress=lambda *done: seen.append(done))
    sha = fake_hub.sha("me/tiny-llama", "models")
    assert run.summary().kind == "chat"
    assert run.config["tokenizer"]["spec"] == f"hf:me/tiny-llama@{sha}"
    agrees_with_transformers(run, llama_folder)
    total = sum(len(data) for data in repo_files(llama_folder).values())
    assert seen[-1] == (total, total) and all(a <= b for (a, _), (b, _) in itertools.pairwise(seen))
    assert len(weight_downloads(fake_hub)) == 1
    again = import_hf("me/tiny-llama", tmp_path / "again", revision=sha)
    assert len(weight_downloads(fake_hub)) == 1  # from the cache
    assert again.load_model().state_dict().keys() == run.load_model().state_dict().keys()
    assert fake_hub.unhandled == []


def refused(match: str, source, out, **options) -> None:
    """import_hf raises exactly one line, matching `match` from its start."""
    with pytest.raises(ValueError, match="^" + match) as caught:
        import_hf(source, out, **options)
    assert "\n" not in str(caught.value)


def test_offline_the_cache_serves_and_nothing_is_asked(fake_hub, llama_folder, tmp_path):
    fake_hub.add_repo("me/tiny-llama", repo_files(llama_folder), "models")
    with fake_hub.environment(HF_HUB_OFFLINE="1"):
        refused(
            r"me/tiny-llama is not in the Hugging Face cache and offline mode is on "
            r"\(HF_HUB_OFFLINE\); unset HF_HUB_OFFLINE to download it$",
            "me/tiny-llama",
            tmp_path / "run",
        )
    import_hf("me/tiny-llama", tmp_path / "run")
    asked = len(fake_hub.requests)
    with fake_hub.environment(HF_HUB_OFFLINE="1"):
        run = import_hf("me/tiny-llama", tmp_path / "offline")
    assert len(fake_hub.requests) == asked and run.summary().kind == "chat"


HUB = r"http://127\.0\.0\.1:\d+"


def test_each_failure_is_one_line_saying_what_to_do(fake_hub, llama_folder, tmp_path):
    files, out = repo_files(llama_folder), tmp_path / "run"
    refused(
        rf"no model me/nothing on the hub \({HUB}\); check the name at {HUB}/me/nothing "
        r"\(a private one needs `hf auth login` or HF_TOKEN\)$",
        "me/nothing",
        out,
    )
    fake_hub.add_repo("me/gated", files, "models")
    fake_hub.gated.add("me/gated")
    refused(
        rf"me/gated is a gated model: accept its terms at {HUB}/me/gated, then log in with "
        r"`hf auth login` or set HF_TOKEN$",
        "me/gated",
        out,
    )
    with fake_hub.environment(HF_TOKEN=fake_hub.token):
        assert import_hf("me/gated", tmp_path / "gated").summary().kind == "chat"
    fake_hub.add_repo("me/tiny", files, "models")
    refused("me/tiny has no revision 'v9'; give a branch, tag or commit of ", "me/tiny", out,
            revision="v9")  # fmt: skip
    pickled = {k: v for k, v in files.items() if not k.endswith(".safetensors")}
    fake_hub.add_repo("me/pickled", {**pickled, "pytorch_model.bin": b"\x80\x04"}, "models")
    before = len(fake_hub.downloads())
    refused(
        r"me/pickled has only pytorch_model\.bin, pickles that slm does not load \(unpickling "
        r"can run code\); pick a repo with model\.safetensors",
        "me/pickled",
        out,
    )
    assert len(fake_hub.downloads()) == before  # refused before downloading anything
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # a port nobody listens on
    with fake_hub.environment(HF_ENDPOINT=f"http://127.0.0.1:{port}"):
        refused(
            rf"cannot reach the Hugging Face hub at {HUB} \(.+\); check your network, "
            "set HF_ENDPOINT to a mirror, or HF_HUB_OFFLINE=1 to use models downloaded before$",
            "me/other",
            out,
        )
    refused(".* is a local folder; --revision is for hub model ids", llama_folder, out,
            revision="main")  # fmt: skip
    assert not out.exists()
    fake_hub.unhandled.clear()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "mistral"}, r".* holds a 'mistral' model; slm imports gpt2, llama, qwen2, "
         r"qwen3 \(the GPT-2, Llama, Qwen2 and Qwen3 architectures\)$"),
        ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}},
         r"RoPE scaling 'yarn' is not supported: slm implements plain RoPE and Llama 3's "
         r"'llama3' scaling$"),
        ({"rope_parameters": {"rope_type": "llama3", "factor": 8.0, "rope_theta": 1e4}},
         r"llama3 RoPE scaling needs low_freq_factor, high_freq_factor, "
         r"original_max_position_embeddings \(numbers\)$"),
        ({"use_sliding_window": True, "sliding_window": 16},
         r"this llama uses sliding-window attention \(use_sliding_window / layer_types\); slm "
         r"implements full causal attention only$"),
        ({"layer_types": ["sliding_attention", "full_attention"]}, r"this llama uses sliding"),
    ],
)  # fmt: skip
def test_what_slm_cannot_compute_is_refused_in_one_line(llama_folder, tmp_path, change, message):
    folder = tmp_path / "changed"
    for name, data in repo_files(llama_folder).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    refused(message, folder, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bf16_weights_stay_bf16_in_the_run_and_give_transformers_logits(tmp_path):
    folder = tiny_hub_model(tmp_path / "bf16", llama_config(dtype="bfloat16"))
    assert {t.dtype for t in load_file(str(folder / "model.safetensors")).values()} == {
        torch.bfloat16
    }
    run = import_hf(folder, tmp_path / "run")
    stored = load_file(str(run.path / "best" / "model.safetensors"))
    assert {tensor.dtype for tensor in stored.values()} == {torch.bfloat16}
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.tensor([[5, 17, 200, 3, 44, 290, 1]])
    with torch.no_grad():
        expected = theirs(ids).logits[..., : run.model_config.vocab_size]
        torch.testing.assert_close(run.load_model()(ids), expected, atol=1e-4, rtol=0)


def test_a_model_too_large_for_memory_is_refused_before_loading(
    fake_hub, llama_folder, tmp_path, monkeypatch
):
    weights = load_file(str(llama_folder / "model.safetensors"))
    size = weights_size([llama_folder / "model.safetensors"])
    assert size.bytes == sum(t.numel() * t.element_size() for t in weights.values())
    assert size.elements == sum(t.numel() for t in weights.values())
    assert size.dtypes == {"F32"} and size.peak_bytes == 2 * size.bytes + 4 * size.elements
    monkeypatch.setattr(fits, "available_memory", lambda: size.peak_bytes)  # no margin left
    loaded = []
    import_module = importlib.import_module("slm_train.export.import_hf")
    monkeypatch.setattr(import_module, "load_file", lambda *a: loaded.append(a))
    refused(
        r".*/llama does not fit in memory: its [\d.]+M parameters \(0\.\d MB as stored\) "
        rf"need about {size.peak_bytes * 1.1 / 1e6:.1f} MB to import, and "
        rf"{size.peak_bytes / 1e6:.1f} MB is available; close other programs or use a "
        "machine with more memory$",
        llama_folder,
        tmp_path / "run",
    )
    assert loaded == [] and not (tmp_path / "run").exists()
    fake_hub.add_repo("me/big", repo_files(llama_folder), "models")
    stored = (llama_folder / "model.safetensors").stat().st_size
    monkeypatch.setattr(fits, "available_memory", lambda: 3 * stored)  # less than 3.3x
    refused(r"me/big does not fit in memory: its weights \(0\.\d MB as stored\) need about ",
            "me/big", tmp_path / "run")  # fmt: skip
    assert [path for path in fake_hub.downloads() if "safetensors" in path] == []
    monkeypatch.undo()  # and with the real reading of this machine's memory, it fits
    assert import_hf(llama_folder, tmp_path / "run").summary().kind == "chat"


@pytest.mark.parametrize("family", ["llama3-untied", "qwen2-tied"])
def test_an_imported_run_exports_back_to_the_same_transformers_model(family, tmp_path):
    torch.set_num_threads(1)
    folder = tiny_hub_model(tmp_path / family, FAMILIES[family]())
    run = import_hf(folder, tmp_path / "run")
    exported = export_hf(run.path, tmp_path / "exported")
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == json.loads((folder / "config.json").read_text())["model_type"]
    before = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    after = transformers.AutoModelForCausalLM.from_pretrained(exported).eval()
    ids = torch.tensor([[5, 17, 200, 3, 44, 290, 1, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70]])
    with torch.no_grad():
        expected = before(ids).logits[..., : run.model_config.vocab_size]  # without padding
        torch.testing.assert_close(after(ids).logits, expected, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match=r"^slm's GGUF export does not write Qwen2's q/k/v biases"):
        export_gguf(run.path, tmp_path / "model.gguf")  # not yet: it would be silently wrong
