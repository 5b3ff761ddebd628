"""nanochat's optimiser pieces: Polar Express, NorMuon, cautious decay, momentum warm-up,
AdamW's per-kind groups; each against a by-hand or SVD reference, and exact resume."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import StopAt, quick_config
from slm_model import GPTModel, get_gpt_config
from slm_train import ConfigError, TrainConfig, read_checkpoint, train
from slm_train.muon import Muon, decay
from slm_train.nanochat_groups import parameter_kinds
from slm_train.normuon import normalize_neurons, second_moment_like
from slm_train.optim import (
    make_optimizer,
    muon_momentum,
    set_learning_rate,
    set_muon_schedules,
    weight_decay_factor,
)
from slm_train.polar_express import POLAR_EXPRESS_COEFFICIENTS, polar_express

ALL_ON = dict(
    optimizer="muon",
    polar_express=True,
    normuon=True,
    cautious_weight_decay=True,
    muon_momentum_warmup=0.3,
    adamw_groups="nanochat",
)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def polar_by_svd(matrix: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The reference: each step's polynomial applied to the singular values, via an SVD."""
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    s = s / (torch.linalg.matrix_norm(matrix) * 1.01 + 1e-7)  # as polar_express divides
    for a, b, c in POLAR_EXPRESS_COEFFICIENTS[:steps]:
        s = a * s + b * s**3 + c * s**5
    return u @ torch.diag(s) @ vh


@pytest.mark.parametrize("shape", [(24, 24), (40, 16), (16, 40)])
def test_polar_express_is_its_polynomials_on_the_singular_values(shape):
    torch.manual_seed(0)
    matrix = torch.randn(shape, dtype=torch.float64)
    got = polar_express(matrix, dtype=torch.float64)
    assert (got - polar_by_svd(matrix)).abs().max() < 1e-9
    # Five steps land every singular value of a random matrix in [0.85, 1.15]: tighter
    # than Newton-Schulz's roughly [0.68, 1.17] in the same five steps.
    singular = torch.linalg.svdvals(got)
    assert singular.min() > 0.85 and singular.max() < 1.15, singular
    with pytest.raises(ValueError, match="1 to 5 steps"):
        polar_express(matrix, steps=6)


@pytest.mark.parametrize("shape", [(6, 4), (3, 5)])
def test_normuon_divides_each_neuron_by_its_running_rms(shape):
    torch.manual_seed(1)
    update, moment = torch.randn(shape), None
    moment = second_moment_like(update)
    previous = torch.rand(moment.shape)  # as if earlier steps had filled it
    moment.copy_(previous)
    got = normalize_neurons(update, moment, beta2=0.9)
    rows, cols = shape
    tall = rows >= cols
    expected = torch.empty(shape)
    for i in range(rows if tall else cols):  # by hand, one neuron at a time
        values = update[i] if tall else update[:, i]
        mean_square = sum(v.item() ** 2 for v in values) / len(values)
        old = previous[i, 0] if tall else previous[0, i]
        new = 0.9 * old.item() + 0.1 * mean_square
        assert (moment[i, 0] if tall else moment[0, i]).item() == pytest.approx(new, rel=1e-5)
        if tall:
            expected[i] = values / math.sqrt(new)
        else:
            expected[:, i] = values / math.sqrt(new)
    expected *= update.norm() / expected.norm()  # back to the update's own norm
    assert (got - expected).abs().max() < 1e-5
    assert got.norm().item() == pytest.approx(update.norm().item(), rel=1e-5)


def test_cautious_decay_touches_only_weights_that_agree_with_the_step():
    weight = torch.tensor([[1.0, -2.0], [3.0, -4.0]])
    step = torch.tensor([[0.5, 1.0], [-1.0, -0.5]])
    plain, cautious = weight.clone(), weight.clone()
    decay(plain, step, 0.1, cautious=False)
    decay(cautious, step, 0.1, cautious=True)
    assert torch.equal(plain, weight * 0.9)
    # signs agree at (0, 0) and (1, 1): there the step and the decay both shrink the weight
    assert torch.allclose(cautious, torch.tensor([[0.9, -2.0], [3.0, -3.6]]))


def test_momentum_warms_up_and_cautious_decay_follows_a_cosine():
    config = TrainConfig(optimizer="muon", muon_momentum_warmup=0.2, cautious_weight_decay=True)
    values = [muon_momentum(config, p) for p in (0.0, 0.05, 0.1, 0.2, 0.9)]
    assert values == pytest.approx([0.85, 0.88, 0.91, 0.97, 0.97])
    assert muon_momentum(TrainConfig(), 0.5) is None  # off: Muon keeps its 0.95
    factors = [weight_decay_factor(config, p) for p in (0.0, 0.25, 0.5, 1.0)]
    assert factors == pytest.approx([1.0, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5, 0.0])
    assert weight_decay_factor(TrainConfig(), 0.5) == 1.0

    model = GPTModel(get_gpt_config("llama-tiny"))
    optimizer = make_optimizer(model, config, torch.device("cpu"))
    set_muon_schedules(optimizer, config, 0.5)
    for group in optimizer.optimizers["muon"].param_groups:
        assert group["momentum"] == pytest.approx(0.97) and group["cautious"]
        full = config.weight_decay * config.learning_rate / config.muon_lr  # Muon's (optim.py)
        assert group["weight_decay"] == pytest.approx(0.5 * full)
    for bad in (dict(normuon=True), dict(muon_momentum_warmup=1.5), dict(adamw_groups="x")):
        with pytest.raises(ConfigError):
            TrainConfig(**{"optimizer": "adamw", **bad})


@pytest.mark.parametrize("tied", [True, False])
def test_nanochat_groups_hold_every_parameter_once_at_its_rate(tied):
    model = GPTModel(get_gpt_config("llama-tiny", tie_weights=tied))
    config = TrainConfig(**ALL_ON)
    optimizer = make_optimizer(model, config, torch.device("cpu"))
    set_learning_rate(optimizer, config.learning_rate)  # at the peak, as the engine sets it
    optimizers = optimizer.optimizers
    names = {id(p): n for n, p in model.named_parameters()}
    seen = [names[id(p)] for o in optimizers.values() for g in o.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(names.values())  # each exactly once
    groups = {g.get("kind"): g for g in optimizers["adamw"].param_groups}
    width = model.config.n_embd
    head = groups["head"]
    assert head["lr"] == pytest.approx(0.008 * (768 / width) ** 0.5)
    assert head["betas"] == (0.8, 0.96) and head["eps"] == 1e-10
    if tied:  # the shared matrix is the head and takes the head's settings
        assert [names[id(p)] for p in head["params"]] == ["tok_emb.weight"]
        assert "embedding" not in groups
    else:
        assert [names[id(p)] for p in head["params"]] == ["lm_head.weight"]
        embedding = groups["embedding"]
        assert embedding["lr"] == pytest.approx(0.3 * (768 / width) ** 0.5)
        assert embedding["betas"] == (0.8, 0.995)
    rest = [names[id(p)] for g in groups.values() if "kind" not in g for p in g["params"]]
    assert rest and all("norm" in name for name in rest)


def test_nanochat_kinds_find_scalars_value_embeddings_and_the_smear_gate():
    class Toy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok_emb = torch.nn.Embedding(10, 4)
            self.value_embeds = torch.nn.ModuleList([torch.nn.Embedding(10, 4)])
            self.resid_lambdas = torch.nn.Parameter(torch.ones(3))
            self.x0_lambdas = torch.nn.Parameter(torch.zeros(3))
            self.smear_gate = torch.nn.Linear(2, 1)
            self.lm_head = torch.nn.Linear(4, 10, bias=False)

    toy = Toy()
    kinds = {n: parameter_kinds(toy).get(id(p)) for n, p in toy.named_parameters()}
    assert kinds == {
        "tok_emb.weight": "embedding",
        "value_embeds.0.weight": "value_embedding",
        "resid_lambdas": "residual_scalar",
        "x0_lambdas": "scalar",
        "smear_gate.weight": "smear",
        "smear_gate.bias": "smear",
        "lm_head.weight": "head",
    }


def test_muon_step_with_every_piece_matches_a_by_hand_step():
    torch.manual_seed(2)
    weight = torch.nn.Parameter(torch.randn(6, 4, dtype=torch.float64))
    grad = torch.randn(6, 4, dtype=torch.float64)
    group = dict(params=[weight], polar_express=True, normuon_beta2=0.9, cautious=True)
    muon = Muon([group], lr=0.1, momentum=0.9, weight_decay=0.5, ns_dtype=torch.float64)
    start = weight.detach().clone()
    weight.grad = grad
    muon.step()
    update = grad.lerp(0.1 * grad, 0.9)  # buffer = 0.1 g; Nesterov: g + 0.9 (buffer - g)
    step = polar_by_svd(update)
    moment = 0.1 * step.square().mean(dim=1, keepdim=True)
    normed = step / moment.sqrt()
    normed *= step.norm() / normed.norm()
    agree = (start * normed >= 0).double()
    expected = start - 0.1 * 0.5 * start * agree - 0.1 * math.sqrt(6 / 4) * normed
    assert (weight.detach() - expected).abs().max() < 1e-9


def test_resume_is_exact_with_every_nanochat_piece_on(tmp_path, corpus_file):
    common = dict(
        preset="llama-tiny",
        schedule="wsd",
        max_steps=12,
        eval_interval=6,
        model={"block_size": 32, "tie_weights": False},
        **ALL_ON,
    )
    straight = train(quick_config(tmp_path, corpus_file, out_dir=str(tmp_path / "a"), **common))
    config = quick_config(tmp_path, corpus_file, out_dir=str(tmp_path / "b"), **common)
    assert train(config, reporter=StopAt(7)).step == 7
    saved = read_checkpoint(tmp_path / "b" / "last").optimizer_state()["optimizer"]
    assert any("neuron_second_moment_0" in s for s in saved["muon"]["state"].values())
    resumed = train(config, resume=True)
    losses = [
        {r["step"]: r["loss"] for r in x.history if r["type"] == "step"}
        for x in (straight, resumed)
    ]
    assert all(losses[1][s] == losses[0][s] for s in range(8, 13)), losses
    a = read_checkpoint(tmp_path / "a" / "last").build_model()
    b = read_checkpoint(tmp_path / "b" / "last").build_model()
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
