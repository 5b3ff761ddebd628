"""`import_hf` of a hub model id, through the real huggingface_hub and the fake hub (issue 22).

Each model is a random tiny transformers model saved with save_pretrained,
with a small byte-level BPE and a ChatML template in tokenizer_config.json,
served by tests/fakehub.py. The imported run must give transformers' logits
and greedy tokens with the chat template applied; the second import must find
the weights in huggingface_hub's cache; and each way a download can fail must
end in one line saying what to do.
"""

from __future__ import annotations

import itertools
import socket

import pytest
import torch
from hf_folders import repo_files, tiny_hub_model
from slm_model import generate
from slm_train import import_hf

transformers = pytest.importorskip("transformers")
pytest.importorskip("huggingface_hub")

MESSAGES = [{"role": "user", "content": "the cat sat on the mat"}]


def llama_config(**changes):
    values = dict(
        vocab_size=304, max_position_embeddings=64, hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    )  # fmt: skip
    return transformers.LlamaConfig(**{**values, **changes})


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
    ours = run.load_model()
    prompt = torch.tensor([list(ids)])
    with torch.no_grad():
        torch.testing.assert_close(ours(prompt), theirs(prompt).logits, atol=1e-4, rtol=0)
        expected = theirs.generate(
            prompt, max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0
        )
    assert generate(ours, prompt, 8, temperature=0.0).tolist() == expected.tolist()


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
