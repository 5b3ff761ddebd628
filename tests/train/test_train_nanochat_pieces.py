"""nanochat's architecture pieces (issue 27) through a run: training with Muon, the
checkpoint, FLOP counting, and export: the two pieces that transformers and llama.cpp
can run (untied embeddings, norms without parameters) give transformers' logits, and the
others are refused in one line that names them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import quick_config, story
from slm_model import GPTConfig, GPTModel, get_gpt_config
from slm_train import Run, export_gguf, export_hf, save_checkpoint, train
from slm_train.export.gguf import gguf_architecture
from slm_train.export.hf import hf_config
from slm_train.metrics import flops_per_token

transformers = pytest.importorskip("transformers")

ALL = dict(value_embeds=True, lambdas=True, smear=True, mlp="relu2", logit_softcap=15.0,
           tie_weights=False, norm_weight=False, backout=True)  # fmt: skip
REFUSED = {
    "value_embeds": (True, "value embeddings"),
    "lambdas": (True, "residual and x0 lambdas"),
    "smear": (True, "a smear gate"),
    "logit_softcap": (15.0, "a logit soft-cap"),
    "backout": (True, "a back-out of the middle layer"),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    """4 steps of Muon + WSD (slm's default recipe) on a Qwen3 model with every piece on."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("pieces")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n<|endoftext|>\n".join(story(i) for i in range(40)) + "\n")
    config = quick_config(
        folder, corpus, preset="qwen3-tiny", optimizer="muon", schedule="wsd", max_steps=4,
        eval_interval=4, warmup_steps=1, model={"block_size": 32, **ALL},
    )  # fmt: skip
    torch.manual_seed(0)
    return Run(train(config).run_dir)


def test_a_run_with_every_piece_trains_and_reloads(run, tmp_path):
    model = run.load_model()
    for name, value in ALL.items():
        assert getattr(model.config, name) == value
    # Training moved the pieces' parameters off their starts, and the checkpoint kept them.
    assert model.smear.lambda_.item() != 0.0
    assert model.backout.lambda_.item() != pytest.approx(0.2)
    assert model.lambdas.x0[0].item() != pytest.approx(0.2)
    copy = _copy_run(run, tmp_path / "copy", model)
    idx = torch.tensor([run.tokenizer().encode("The cat sat on the mat")])
    with torch.no_grad():
        torch.testing.assert_close(copy.load_model()(idx), model(idx), atol=0, rtol=0)


def test_export_refuses_the_run_in_one_line_naming_its_pieces(run, tmp_path):
    with pytest.raises(ValueError, match=r"this run uses value embeddings and .* which no "
                       r"transformers architecture has") as error:  # fmt: skip
        export_hf(run, tmp_path / "hf")
    assert "\n" not in str(error.value) and "model.backout" in str(error.value)
    with pytest.raises(ValueError, match=r"no llama\.cpp architecture has"):
        export_gguf(run, tmp_path / "model.gguf")
    assert not (tmp_path / "hf").exists() and not (tmp_path / "model.gguf").exists()


@pytest.mark.parametrize("field", REFUSED)
def test_each_piece_without_an_architecture_is_named(run, field):
    value, name = REFUSED[field]
    config = get_gpt_config("qwen3-tiny", **{field: value})
    with pytest.raises(ValueError, match=rf"this run uses {name}.*Train without model\.{field}"):
        hf_config(config, run.tokenizer())
    with pytest.raises(ValueError, match=f"this run uses {name}"):
        gguf_architecture(config)
    with pytest.raises(ValueError, match=f"this run uses {name}"):
        GPTModel(config).to_llama_state_dict()


def test_relu2_is_refused_too(run):
    """Llama's MLP is gated (SwiGLU), GPT-2's is GELU: neither computes ReLU^2."""
    config = get_gpt_config("qwen3-tiny", mlp="relu2")
    with pytest.raises(ValueError, match=r"no transformers architecture has.*mlp='relu2'"):
        hf_config(config, run.tokenizer())
    with pytest.raises(ValueError, match=r"llama\.cpp has no architecture.*mlp='relu2'"):
        gguf_architecture(config)


@pytest.mark.parametrize(
    ("preset", "expected"), [("tiny", "GPT2LMHeadModel"), ("qwen3-tiny", "Qwen3ForCausalLM")]
)
def test_untied_parameter_free_models_export_with_the_same_logits(run, tmp_path, preset, expected):
    """Norms without parameters are written as norms with unit scales (and zero shifts)."""
    config = get_gpt_config(preset, vocab_size=run.model_config.vocab_size, block_size=32,
                            tie_weights=False, norm_weight=False)  # fmt: skip
    torch.manual_seed(0)
    model = GPTModel(config).eval()
    copy = _copy_run(run, tmp_path / "run", model)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(export_hf(copy, tmp_path / "hf"))
    assert type(theirs).__name__ == expected
    assert not theirs.config.tie_word_embeddings
    idx = torch.tensor([run.tokenizer().encode("The cat sat on the mat and the dog")])
    with torch.no_grad():
        torch.testing.assert_close(theirs.eval()(idx).logits, model(idx), atol=1e-4, rtol=0)
    if preset == "qwen3-tiny":  # llama.cpp's qwen3, read back by transformers
        path = export_gguf(copy, tmp_path / "model.gguf")
        theirs = transformers.AutoModelForCausalLM.from_pretrained(
            tmp_path, gguf_file=path.name, head_dim=config.head_dim
        ).eval()
        with torch.no_grad():
            torch.testing.assert_close(theirs(idx).logits, model(idx), atol=1e-5, rtol=0)


def test_flops_count_the_new_matmuls_but_not_the_lookups():
    plain = GPTModel(get_gpt_config("qwen3-tiny"))
    with_ve = GPTModel(get_gpt_config("qwen3-tiny", value_embeds=True))
    c = with_ve.config
    gates = sum(1 for i in range(c.n_layer) if i % 2 == (c.n_layer - 1) % 2) * 12 * c.kv_heads
    assert flops_per_token(with_ve) - flops_per_token(plain) == 6 * gates
    untied = GPTModel(get_gpt_config("qwen3-tiny", tie_weights=False))
    assert flops_per_token(untied) == flops_per_token(plain)  # the head's matmul counts either way


def _copy_run(run: Run, folder: Path, model: GPTModel) -> Run:
    copy = Run.create(
        folder,
        model_config=model.config,
        train_config=run.config["train"],
        tokenizer_file=run.path / "tokenizer.json",
        tokenizer_info=run.config["tokenizer"],
        data_info=run.config["data"],
    )
    save_checkpoint(folder / "best", model, {"step": 0})
    return copy


def test_config_roundtrips_through_a_dict():
    config = get_gpt_config("qwen3-tiny", **ALL)
    assert GPTConfig.from_dict(config.to_dict()) == config
