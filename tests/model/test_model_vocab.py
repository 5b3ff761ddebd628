"""Growing the vocabulary: old ids keep their logits, new rows start at the mean."""

from __future__ import annotations

import pytest
import torch
from slm_model import GPTModel, generate, get_gpt_config, grow_vocabulary


def gpt2_sized(**overrides) -> GPTModel:
    """GPT-2's 50,257 rows on a tiny body, so the test is fast."""
    torch.manual_seed(0)
    config = get_gpt_config("gpt2", n_layer=1, n_head=2, n_embd=16, block_size=16, **overrides)
    return GPTModel(config).eval()


@pytest.mark.parametrize("tied", [True, False])
def test_growing_gpt2_by_two_keeps_every_old_logit(tied):
    model = gpt2_sized(tie_weights=tied)
    old_embedding = model.tok_emb.weight.detach().clone()
    old_head = model.lm_head.weight.detach().clone()
    inputs = torch.randint(50257, (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(inputs)

    assert grow_vocabulary(model, 50259) is model
    with torch.no_grad():
        after = model(inputs)

    assert model.config.vocab_size == 50259
    assert after.shape == (3, 16, 50259)
    assert torch.equal(after[..., :50257], before)  # bit for bit, not merely close
    assert torch.equal(model.tok_emb.weight[:50257], old_embedding)
    for new, old in ((model.tok_emb.weight, old_embedding), (model.lm_head.weight, old_head)):
        mean = old.double().mean(dim=0).float()
        for row in (50257, 50258):
            torch.testing.assert_close(new[row], mean, rtol=0, atol=1e-7)
    assert (model.lm_head.weight is model.tok_emb.weight) == tied
    # The new ids work as inputs and outputs of the rest of slm_model.
    assert generate(model, [50257, 5, 50258], 2, temperature=0).shape == (1, 5)


def test_new_ids_on_spare_rows_are_reset_and_nothing_else_moves():
    """A table padded past the tokenizer's ids: the new ids take spare rows, which start at
    the mean of the tokenizer's rows; the spare rows after them stay as they were."""
    model = gpt2_sized(vocab_size=50304)
    old = model.tok_emb.weight.detach().clone()
    grow_vocabulary(model, 50259, new_from=50257)
    weight = model.tok_emb.weight
    assert model.config.vocab_size == 50304 and weight.shape == (50304, 16)
    mean = old[:50257].double().mean(dim=0).float()
    torch.testing.assert_close(weight[50257:50259], mean.expand(2, 16), rtol=0, atol=1e-7)
    assert torch.equal(weight[:50257], old[:50257])
    assert torch.equal(weight[50259:], old[50259:])


def test_new_rows_learn():
    model = gpt2_sized()
    grow_vocabulary(model, 50258)
    ids = torch.tensor([[50257, 7]])
    _, loss = model(ids, torch.tensor([[7, 50257]]))
    loss.backward()
    assert model.tok_emb.weight.grad[50257].abs().sum() > 0


def test_a_size_that_is_not_growth_is_refused():
    with pytest.raises(ValueError, match="new_from must be between 1"):
        grow_vocabulary(gpt2_sized(), 50259, new_from=50300)
