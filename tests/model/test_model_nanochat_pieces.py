"""nanochat's architecture pieces (issue 27), each alone and all together: a by-hand forward
pass, shapes, causality, the KV cache (in chunks and greedy), batched RowCache decoding,
parameter counts, neutral settings that give back the plain model, and growing the vocabulary.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from slm_model import GPTConfig, GPTModel, generate, grow_vocabulary
from slm_model.batched import RowCache, decode_rows, prefill_row
from slm_model.value_embeddings import has_value_embedding

VOCAB, BLOCK, LAYERS, WIDTH = 61, 12, 3, 32
QWEN3 = dict(pos="rope", norm="rmsnorm", mlp="swiglu", bias=False, n_kv_head=2, qk_norm=True)
PIECES = {
    "value_embeds": dict(value_embeds=True),
    "lambdas": dict(lambdas=True),
    "smear": dict(smear=True),
    "relu2": dict(mlp="relu2"),
    "softcap": dict(logit_softcap=2.0),  # low, so that the cap bends these logits
    "untied": dict(tie_weights=False),
    "no_norm_weight": dict(norm_weight=False),
    "backout": dict(backout=True),
}
ALL = {key: value for piece in PIECES.values() for key, value in piece.items()}
CASES = {**{f"qwen3-{name}": {**QWEN3, **piece} for name, piece in PIECES.items()},
         "qwen3-all": {**QWEN3, **ALL}, "gpt2-all": ALL}  # fmt: skip


def build(seed: int = 0, **options) -> GPTModel:
    torch.manual_seed(seed)
    config = GPTConfig(
        block_size=BLOCK, vocab_size=VOCAB, n_layer=LAYERS, n_head=4, n_embd=WIDTH, **options
    )
    model = GPTModel(config).eval()
    with torch.no_grad():  # move every scalar and vector off its neutral start so it matters
        for parameter in model.parameters():
            if parameter.dim() <= 1:
                parameter.add_(torch.randn_like(parameter) * 0.3)
    return model


def ids(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, BLOCK), generator=torch.Generator().manual_seed(seed))


def naive_greedy(model: GPTModel, idx: torch.Tensor, steps: int) -> torch.Tensor:
    for _ in range(steps):
        with torch.no_grad():
            logits = model(idx[:, -model.config.block_size :])
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


@pytest.mark.parametrize("options", CASES.values(), ids=CASES.keys())
def test_shapes_causality_and_cache(options):
    model, idx = build(**options), ids()
    with torch.no_grad():
        logits = model(idx)
        assert logits.shape == (2, BLOCK, VOCAB)
        for t in (0, 6):  # changing the future leaves the past alone
            changed = idx.clone()
            changed[:, t + 1 :] = (changed[:, t + 1 :] + 1) % VOCAB
            torch.testing.assert_close(model(changed)[:, : t + 1], logits[:, : t + 1])
        # In chunks through the cache: the smear gate reads the previous chunk's last token.
        cache = model.new_kv_cache(batch_size=2)
        chunks = [model.logits(model.hidden_states(idx[:, a:b], cache))
                  for a, b in [(0, 5), (5, 6), (6, 7), (7, 12)]]  # fmt: skip
        torch.testing.assert_close(torch.cat(chunks, dim=1), logits, atol=1e-5, rtol=1e-5)
    prompt = idx[:, :3]
    expected = naive_greedy(model, prompt, 2 * BLOCK)  # past the window: the cache restarts
    assert torch.equal(generate(model, prompt, 2 * BLOCK, temperature=0), expected)


@pytest.mark.parametrize("options", CASES.values(), ids=CASES.keys())
def test_rows_decoded_together_equal_generate(options):
    model = build(**options)
    prompts = [[1, 2, 3], [7], list(range(10, 18))]
    new = 4
    expected = [generate(model, p, new, temperature=0)[0, len(p) :].tolist() for p in prompts]
    cache = RowCache(model, rows=3, room=4)  # grows while decoding
    firsts = [prefill_row(model, cache, row, p).argmax() for row, p in enumerate(prompts)]
    tokens = torch.stack(firsts)
    got = [[int(t)] for t in tokens]
    for _ in range(new - 1):
        tokens = decode_rows(model, cache, tokens).argmax(-1)
        for row, token in enumerate(tokens):
            got[row].append(int(token))
    assert got == expected


def test_all_pieces_match_a_forward_pass_written_out_by_hand():
    """The formulas of each module's docstring, op for op, on a Qwen3-style model."""
    model, idx = build(**{**QWEN3, **ALL}), ids()
    with torch.no_grad():
        torch.testing.assert_close(model(idx), by_hand(model, idx), atol=1e-5, rtol=1e-5)


def by_hand(model: GPTModel, idx: torch.Tensor) -> torch.Tensor:
    c, (batch, tokens) = model.config, idx.shape
    e = model.tok_emb.weight[idx]
    gate = model.smear.lambda_ * torch.sigmoid(e[:, 1:, :24] @ model.smear.gate)
    x = torch.cat([e[:, :1], e[:, 1:] + gate[..., None] * e[:, :-1]], dim=1)
    x0, middle = x, None
    cos, sin = model.blocks[0].attn.rotary.cos[:tokens], model.blocks[0].attn.rotary.sin[:tokens]

    def rope(t):
        half = t.shape[-1] // 2
        return t * cos + torch.cat([-t[..., half:], t[..., :half]], dim=-1) * sin

    def rms(t):
        return t / torch.sqrt(t.pow(2).mean(-1, keepdim=True) + c.norm_eps)

    for i, block in enumerate(model.blocks):
        x = model.lambdas.resid[i] * x + model.lambdas.x0[i] * x0
        h = rms(x)
        q, k, v = (h @ block.attn.qkv.weight.T).split([32, 16, 16], dim=-1)
        if has_value_embedding(i, LAYERS):
            ve = block.value_embed
            g = 3 * torch.sigmoid(h[..., :12] @ ve.gate.weight.T)  # (batch, tokens, kv heads)
            v = v + (g[..., None] * ve.table.weight[idx].view(batch, tokens, 2, 8)).flatten(2)
        q = rope(rms(q.view(batch, tokens, 4, 8).transpose(1, 2)))
        k = rope(rms(k.view(batch, tokens, 2, 8).transpose(1, 2))).repeat_interleave(2, dim=1)
        v = v.view(batch, tokens, 2, 8).transpose(1, 2).repeat_interleave(2, dim=1)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(8)).masked_fill(
            torch.ones(tokens, tokens, dtype=torch.bool).triu(1), float("-inf")
        )
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, tokens, 32)
        x = x + context @ block.attn.out_proj.weight.T
        x = x + F.relu(rms(x) @ block.mlp.fc.weight.T).pow(2) @ block.mlp.proj.weight.T
        if i == LAYERS // 2:
            middle = x
    x = rms(x - model.backout.lambda_ * middle)
    return 2.0 * torch.tanh(x @ model.lm_head.weight.T / 2.0)


def test_parameter_counts_by_hand():
    d, v, kv = WIDTH, VOCAB, 2 * 8
    plain = build(**QWEN3).num_parameters()
    extra = {
        "value_embeds": 2 * (v * kv + 12 * 2),  # layers 0 and 2 of 3: a table and a gate each
        "lambdas": 2 * LAYERS,
        "smear": 24 + 1,
        "softcap": 0,
        "untied": v * d,
        "no_norm_weight": -(2 * LAYERS * d + d + LAYERS * 2 * 8),  # blocks, final, QK-norms
        "backout": 1,
    }
    for name, added in extra.items():
        assert build(**QWEN3, **PIECES[name]).num_parameters() == plain + added, name
    # ReLU^2: two matrices of width 4d where SwiGLU has three of its default width.
    hidden = 64 * math.ceil(8 * d / 3 / 64)
    relu2 = build(**{**QWEN3, "mlp": "relu2"}).num_parameters()
    assert relu2 == plain + LAYERS * (2 * d * 4 * d - 3 * d * hidden)
    # Lookups are not multiplications: the value tables are embeddings.
    with_ve = build(**QWEN3, value_embeds=True)
    body = build(**QWEN3).num_parameters(exclude_embeddings=True)
    assert with_ve.num_parameters(exclude_embeddings=True) == body + 2 * 12 * 2


def test_value_embeddings_in_alternate_layers_ending_with_the_last():
    assert [has_value_embedding(i, 4) for i in range(4)] == [False, True, False, True]
    assert [has_value_embedding(i, 3) for i in range(3)] == [True, False, True]
    model = build(**QWEN3, value_embeds=True)
    assert [b.value_embed is not None for b in model.blocks] == [True, False, True]


@pytest.mark.parametrize("name", ["value_embeds", "lambdas", "smear", "backout"])
def test_neutral_settings_give_back_the_plain_model(name):
    """Value table 0, lambdas (1, 0), smear strength 0, back-out 0: exactly the plain model."""
    plain, piece = build(**QWEN3), build(**QWEN3, **PIECES[name])
    piece.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        for block in piece.blocks:
            if block.value_embed is not None:
                block.value_embed.table.weight.zero_()
        if piece.lambdas is not None:
            piece.lambdas.resid.fill_(1.0)
            piece.lambdas.x0.zero_()
        for module in (piece.smear, piece.backout):
            if module is not None:
                module.lambda_.zero_()
        idx = ids()
        torch.testing.assert_close(piece(idx), plain(idx), atol=1e-6, rtol=0)


def test_parameter_free_norms_equal_norms_with_unit_weights():
    for family in (QWEN3, {}):
        free = build(**family, norm_weight=False)
        weighted = build(**family)
        with torch.no_grad():
            for name, parameter in weighted.named_parameters():
                if "norm" in name:
                    parameter.fill_(1.0 if name.endswith("weight") else 0.0)
        weighted.load_state_dict(free.state_dict(), strict=False)
        idx = ids()
        with torch.no_grad():
            torch.testing.assert_close(free(idx), weighted(idx), atol=1e-6, rtol=0)


def test_softcap_bounds_the_logits_and_the_loss_sees_them():
    model = build(**QWEN3, logit_softcap=2.0)
    with torch.no_grad():
        model.lm_head.weight.mul_(100)  # raw logits far beyond the cap
        idx = ids()
        logits, loss = model(idx[:, :-1], idx[:, 1:])
        raw = model.lm_head(model.hidden_states(idx[:, :-1]))
    assert raw.abs().max() > 20 and logits.abs().max() <= 2.0 and logits.dtype == torch.float32
    torch.testing.assert_close(logits, 2.0 * torch.tanh(raw / 2.0))
    torch.testing.assert_close(loss, F.cross_entropy(logits.flatten(0, 1), idx[:, 1:].flatten()))


def test_early_init_values_are_nanochats():
    pieces = dict(lambdas=True, smear=True, backout=True, value_embeds=True)
    config = GPTConfig(block_size=8, vocab_size=VOCAB, n_layer=5, n_head=2, n_embd=WIDTH, **pieces)
    model = GPTModel(config)
    torch.testing.assert_close(model.lambdas.resid, torch.tensor([1.15, 1.125, 1.1, 1.075, 1.05]))
    torch.testing.assert_close(model.lambdas.x0, torch.tensor([0.2, 0.1625, 0.125, 0.0875, 0.05]))
    assert model.smear.lambda_.item() == 0.0 and model.backout.lambda_.item() == pytest.approx(0.2)
    assert model.smear.gate.min() >= 0 and model.smear.gate.max() <= 0.02
    table = model.blocks[-1].value_embed.table.weight
    assert table.abs().max() <= math.sqrt(3 / WIDTH) and table.std() > 0.5 / math.sqrt(WIDTH)


def test_training_reaches_every_parameter():
    model = build(**{**QWEN3, **ALL}).train()
    idx = ids()
    _, loss = model(idx[:, :-1], idx[:, 1:])
    loss.backward()
    touched = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.any()}
    assert touched == {name for name, _ in model.named_parameters()}


def test_growing_the_vocabulary_grows_the_value_tables():
    model = build(**QWEN3, value_embeds=True)
    idx = ids()
    with torch.no_grad():
        before = model(idx)
        grow_vocabulary(model, VOCAB + 2)
        after = model(idx)
    assert model.blocks[0].value_embed.table.weight.shape[0] == VOCAB + 2
    torch.testing.assert_close(after[..., :VOCAB], before)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("smear", 1, "smear must be true or false"),
     ("logit_softcap", 0, "logit_softcap must be a positive number or None"),
     ("mlp", "relu", "mlp must be one of gelu, swiglu, relu2")],
)  # fmt: skip
def test_bad_settings_are_refused_in_one_line(field, value, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(block_size=8, vocab_size=VOCAB, n_layer=1, n_head=2, n_embd=8, **{field: value})
