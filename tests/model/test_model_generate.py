"""Sampling, the KV cache, and the sliding context window."""

from __future__ import annotations

import pytest
import torch
from slm_model import GPTModel, generate, get_gpt_config, sample_next, stream


@pytest.fixture(scope="module")
def model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(get_gpt_config("tiny", block_size=16, vocab_size=97)).eval()


def naive_greedy(model: GPTModel, idx: torch.Tensor, steps: int) -> torch.Tensor:
    """The book's generate_text_simple: rerun the last block_size tokens every step."""
    for _ in range(steps):
        with torch.no_grad():
            logits = model(idx[:, -model.config.block_size :])
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


@pytest.mark.parametrize(("prompt_length", "steps"), [(1, 10), (5, 40), (16, 5), (30, 12)])
def test_cache_equals_no_cache_equals_naive(model, prompt_length, steps):
    # (5, 40) slides the window past block_size=16; (30, ...) starts with a prompt that is too long.
    prompt = torch.randint(
        0, 97, (2, prompt_length), generator=torch.Generator().manual_seed(prompt_length)
    )
    expected = naive_greedy(model, prompt, steps)
    assert torch.equal(generate(model, prompt, steps, temperature=0), expected)
    assert torch.equal(generate(model, prompt, steps, temperature=0, use_cache=False), expected)


def test_cached_logits_agree(model):
    idx = torch.randint(0, 97, (2, 16))
    with torch.no_grad():
        full = model(idx)
        cache = model.new_kv_cache(batch_size=2)
        steps = [model.lm_head(model.hidden_states(idx[:, :6], cache))]
        steps += [
            model.lm_head(model.hidden_states(idx[:, t : t + 1], cache)) for t in range(6, 16)
        ]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)
    assert cache.length == 16


def test_stream_yields_what_generate_returns(model):
    prompt = [3, 1, 4, 1, 5]
    gen = torch.Generator().manual_seed(7)
    streamed = list(stream(model, prompt, 25, temperature=0.8, top_k=20, generator=gen))
    gen = torch.Generator().manual_seed(7)
    generated = generate(model, prompt, 25, temperature=0.8, top_k=20, generator=gen)
    assert generated[0].tolist() == prompt + streamed


def test_same_seed_same_sample(model):
    def run(seed):
        return generate(model, [1, 2], 20, top_p=0.9, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_eos_stops_generation(model):
    prompt = torch.tensor([[5, 6, 7]])
    greedy = generate(model, prompt, 10, temperature=0)[0, 3:].tolist()
    eos = greedy[3]
    stopped = generate(model, prompt, 10, temperature=0, eos_id=eos)[0, 3:].tolist()
    assert stopped == greedy[: greedy.index(eos) + 1]
    assert list(stream(model, prompt, 10, temperature=0, eos_id=eos)) == stopped


def test_eos_pads_rows_that_finish_first(model):
    prompts = torch.tensor([[5, 6, 7], [9, 9, 9]])
    greedy = generate(model, prompts, 8, temperature=0)
    eos = int(greedy[0, 4])  # row 0's second new token
    out = generate(model, prompts, 8, temperature=0, eos_id=eos)
    row0 = out[0, 3:].tolist()
    first = row0.index(eos)
    assert all(t == eos for t in row0[first:])


def test_top_k_and_top_p_restrict_the_support():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(4000, 1)
    gen = torch.Generator().manual_seed(0)
    assert set(sample_next(logits, top_k=2, generator=gen).tolist()) == {0, 1}
    # Nucleus 0.75: 0.5 + 0.3 already reaches it, so tokens 0 and 1 remain.
    assert set(sample_next(logits, top_p=0.75, generator=gen).tolist()) == {0, 1}
    assert set(sample_next(logits, top_p=0.85, generator=gen).tolist()) == {0, 1, 2}
    assert set(sample_next(logits, top_p=0.01, generator=gen).tolist()) == {0}
    assert set(sample_next(logits, temperature=0).tolist()) == {0}
    counts = torch.bincount(sample_next(logits, top_k=2, generator=gen), minlength=4).float()
    # Renormalised over the top two: 0.5 / 0.8 and 0.3 / 0.8.
    torch.testing.assert_close(counts[:2] / 4000, torch.tensor([0.625, 0.375]), atol=0.03, rtol=0)


def test_temperature_sharpens_and_flattens():
    logits = torch.log(torch.tensor([[0.6, 0.4]])).repeat(4000, 1)
    gen = torch.Generator().manual_seed(0)
    cold = sample_next(logits, temperature=0.25, generator=gen).float().mean()  # share of token 1
    hot = sample_next(logits, temperature=4.0, generator=gen).float().mean()
    assert cold < 0.2 < 0.4 < hot


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": -1}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
    ],
)
def test_bad_sampling_arguments(model, kwargs, message):
    arguments = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(model, [1, 2], **arguments)


def test_bad_prompts(model):
    with pytest.raises(ValueError, match="tokenizer does not match"):
        generate(model, [1, 500], 3)
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [], 3)
    with pytest.raises(ValueError, match="one prompt"):
        next(stream(model, torch.zeros(2, 3, dtype=torch.long), 3))


def test_generate_restores_training_mode(model):
    model.train()
    generate(model, [1], 2)
    assert model.training
    model.eval()
