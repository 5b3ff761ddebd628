"""The modern recipe: Muon against independent references, its parameter split, WSD, resume."""

from __future__ import annotations

import pytest
import torch
from helpers import StopAt, quick_config
from slm_model import GPTModel, get_gpt_config
from slm_train import (
    ConfigError,
    GPTClassifier,
    TrainConfig,
    apply_lora,
    learning_rate,
    read_checkpoint,
    train,
)
from slm_train.muon import NS_COEFFICIENTS, Muon, orthogonalize
from slm_train.optim import Optimizers, make_optimizer


def step_losses(result) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in result.history if r["type"] == "step"}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: one thread is faster and steadier on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_close(got: torch.Tensor, expected: torch.Tensor, tol: float, what: str = "") -> None:
    """Max-abs comparison (torch.testing.assert_close imports torch.distributed: seconds)."""
    error = (got.detach() - expected.detach()).abs().max().item()
    assert error <= tol, f"{what} off by {error}"


def newton_schulz_by_svd(matrix: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The reference: the iteration's polynomial applied to each singular value, via an SVD."""
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    a, b, c = NS_COEFFICIENTS
    s = s / torch.linalg.matrix_norm(matrix)  # the Frobenius norm, as the iteration divides by
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return u @ torch.diag(s) @ vh


@pytest.mark.parametrize("shape", [(24, 24), (40, 16), (16, 40)])
def test_orthogonalize_is_the_polynomial_on_singular_values(shape):
    torch.manual_seed(0)
    matrix = torch.randn(shape, dtype=torch.float64)
    got = orthogonalize(matrix, dtype=torch.float64)
    assert_close(got, newton_schulz_by_svd(matrix), 1e-10)
    # Five steps bring every singular value of a random matrix close to 1 (Keller Jordan's
    # coefficients aim for roughly 0.7 to 1.2, not exactly 1).
    singular = torch.linalg.svdvals(got)
    assert singular.min() > 0.6 and singular.max() < 1.25, singular


@pytest.mark.parametrize("shape", [(256, 256), (768, 256), (256, 768)])  # qwen3-small's
def test_the_bf16_iteration_lands_where_the_fp32_one_does(shape):
    """bf16 Newton-Schulz (the default where bf16 is native) against fp32: the same
    update within bf16's rounding, and singular values near 1 all the same."""
    torch.manual_seed(0)
    matrix = torch.randn(shape) @ torch.diag(torch.logspace(0, -2, shape[1]))  # a spread of s
    fp32 = orthogonalize(matrix, dtype=torch.float32)
    bf16 = orthogonalize(matrix, dtype=torch.bfloat16)
    assert bf16.dtype == torch.float32  # returned in the matrix's own dtype
    assert (bf16 - fp32).norm() / fp32.norm() < 0.03
    assert torch.nn.functional.cosine_similarity(bf16.flatten(), fp32.flatten(), 0) > 0.999
    singular = torch.linalg.svdvals(bf16)
    assert singular.max() < 1.25 and singular.median() > 0.6, singular


def test_muon_steps_like_torch_muon_on_whole_matrices():
    torch.manual_seed(0)
    shapes = [(16, 16), (32, 8), (8, 32)]
    ours = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    settings = dict(lr=0.02, momentum=0.95, nesterov=True, weight_decay=0.1, ns_steps=5)
    mine = Muon(ours, **settings, ns_dtype=torch.bfloat16)  # torch's iterates in bfloat16
    reference = torch.optim.Muon(theirs, **settings)
    for step in range(4):
        grads = [torch.randn(s) for s in shapes]
        for p, q, g in zip(ours, theirs, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        mine.step()
        reference.step()
        for p, q in zip(ours, theirs, strict=True):
            assert_close(p, q, 1e-6, f"step {step}")


def test_split_parts_step_as_separate_matrices():
    torch.manual_seed(0)
    fused = torch.nn.Parameter(torch.randn(16, 8))
    parts = [torch.nn.Parameter(piece.detach().clone()) for piece in fused.split([8, 4, 4])]
    split = Muon([{"params": [fused], "splits": [8, 4, 4]}], weight_decay=0.1)
    separate = Muon(parts, weight_decay=0.1)
    for _ in range(3):
        grad = torch.randn(16, 8)
        fused.grad = grad.clone()
        for part, g in zip(parts, grad.split([8, 4, 4]), strict=True):
            part.grad = g.clone()
        split.step()
        separate.step()
        assert_close(fused, torch.cat([p.detach() for p in parts]), 1e-6)
    with pytest.raises(ValueError, match="do not add up"):
        Muon([{"params": [fused], "splits": [8, 4]}])


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    model = GPTModel(get_gpt_config("llama-tiny"))
    config = TrainConfig(optimizer="muon", learning_rate=1e-3, muon_lr=0.02, weight_decay=0.1)
    optimizers = make_optimizer(model, config, torch.device("cpu")).optimizers
    names = {id(p): n for n, p in model.named_parameters()}
    muon = {names[id(p)]: g for g in optimizers["muon"].param_groups for p in g["params"]}
    adamw = {names[id(p)] for g in optimizers["adamw"].param_groups for p in g["params"]}
    c = model.config
    kv = c.kv_heads * c.head_dim
    for block in range(c.n_layer):
        prefix = f"blocks.{block}."
        assert muon[prefix + "attn.qkv.weight"]["splits"] == [c.n_embd, kv, kv]
        assert muon[prefix + "mlp.fc.weight"]["splits"] == [c.mlp_hidden, c.mlp_hidden]
        assert muon[prefix + "attn.out_proj.weight"]["splits"] is None
        assert muon[prefix + "mlp.proj.weight"]["splits"] is None
    assert {"tok_emb.weight", "final_norm.weight", "blocks.0.norm1.weight"} <= adamw
    assert not set(muon) & adamw and len(muon) + len(adamw) == len(list(model.parameters()))
    group = next(iter(muon.values()))
    assert group["lr_scale"] == pytest.approx(20) and group["weight_decay"] == pytest.approx(0.005)


def test_optimizer_state_names_its_optimizers():
    model = GPTModel(get_gpt_config("tiny"))
    adamw = make_optimizer(model, TrainConfig(optimizer="adamw"), torch.device("cpu"))
    saved_before_muon = adamw.optimizers["adamw"].state_dict()
    adamw.load_state_dict(saved_before_muon)  # a checkpoint from before this change
    muon = make_optimizer(model, TrainConfig(optimizer="muon"), torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"resume with the run's optimizer$"):
        muon.load_state_dict(adamw.state_dict())
    assert isinstance(muon, Optimizers) and sorted(muon.state_dict()) == ["adamw", "muon"]


def test_wsd_schedule_holds_the_peak_then_decays_linearly():
    config = TrainConfig(
        learning_rate=1e-3,
        min_lr=1e-4,
        warmup_steps=10,
        max_steps=110,
        schedule="wsd",
        decay_fraction=0.2,
    )
    assert learning_rate(config, 0, 0.0) == pytest.approx(1e-4)
    assert learning_rate(config, 50, 0.5) == pytest.approx(1e-3)
    assert learning_rate(config, 88, 0.8) == pytest.approx(1e-3)
    assert learning_rate(config, 99, 0.9) == pytest.approx(5.5e-4)
    assert learning_rate(config, 110, 1.0) == pytest.approx(1e-4)
    for bad in (dict(schedule="linear"), dict(optimizer="sgd"), dict(decay_fraction=0.0)):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


def test_resume_is_exact_with_muon_and_wsd(tmp_path, corpus_file):
    common = dict(
        preset="llama-tiny",
        optimizer="muon",
        schedule="wsd",
        max_steps=16,
        eval_interval=8,
        model={"block_size": 32, "dropout": 0.1},
        grad_accum_steps=2,
    )
    straight = train(quick_config(tmp_path, corpus_file, out_dir=str(tmp_path / "a"), **common))

    config = quick_config(tmp_path, corpus_file, out_dir=str(tmp_path / "b"), **common)
    stopped = train(config, reporter=StopAt(9))
    assert stopped.interrupted and stopped.step == 9
    saved = read_checkpoint(tmp_path / "b" / "last").optimizer_state()["optimizer"]
    assert sorted(saved) == ["adamw", "muon"] and saved["muon"]["state"]  # momentum buffers
    resumed = train(config, resume=True)
    assert resumed.step == 16 and not resumed.interrupted

    expected, got = step_losses(straight), step_losses(resumed)
    assert all(got[s] == expected[s] for s in range(10, 17)), (got, expected)
    a = read_checkpoint(tmp_path / "a" / "last").build_model()
    b = read_checkpoint(tmp_path / "b" / "last").build_model()
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_muon_lowers_the_loss_faster_than_adamw(tmp_path, corpus_file):
    losses = {}
    for optimizer in ("adamw", "muon"):
        config = quick_config(
            tmp_path,
            corpus_file,
            preset="llama-tiny",
            optimizer=optimizer,
            max_steps=30,
            eval_interval=30,
            out_dir=str(tmp_path / optimizer),
        )
        losses[optimizer] = train(config).last_val_loss
    assert losses["muon"] < losses["adamw"], losses


def test_fp16_with_muon_goes_through_the_scaler(tmp_path, corpus_file):
    config = quick_config(
        tmp_path, corpus_file, preset="llama-tiny", optimizer="muon", precision="fp16", max_steps=6
    )
    losses = step_losses(train(config))
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(v)) for v in losses.values())


def test_muon_finds_the_blocks_inside_a_classifier_and_leaves_lora_to_adamw():
    classifier = GPTClassifier(GPTModel(get_gpt_config("llama-tiny")), num_classes=2)
    config = TrainConfig(optimizer="muon")
    muon = make_optimizer(classifier, config, torch.device("cpu")).optimizers["muon"]
    assert sum(len(g["params"]) for g in muon.param_groups) == 4 * classifier.gpt.config.n_layer
    apply_lora(classifier.gpt, rank=2)
    optimizers = make_optimizer(classifier, config, torch.device("cpu")).optimizers
    assert list(optimizers) == ["adamw"]  # the frozen matrices' adapters are not Muon's
