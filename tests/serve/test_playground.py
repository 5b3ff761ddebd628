"""The playground's look-inside numbers and its page files (the browser test is
test_playground_browser.py).

`look_inside` must give what `slm-cli inspect` gives for the same tokens (it is
built from the same calls), and its surprise must be the loss computed by hand
from the model's logits.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from chat_runs import make_chat_run
from slm_serve.look_inside import look_inside
from slm_train import inspect_text


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """A pre-trained (plain text) tiny run: 2 layers, 2 heads, a context of 64."""
    run = make_chat_run(tmp_path_factory.mktemp("playground") / "plain", extra={})
    return run, run.tokenizer(), run.load_model("best", "cpu")


def test_look_inside_gives_slm_cli_inspects_numbers(plain_run):
    run, tokenizer, model = plain_run
    prompt, reply = "The cat sat", " on the mat and the dog ran."
    prompt_ids, reply_ids = tokenizer.encode(prompt), tokenizer.encode(reply)
    result = look_inside(model, tokenizer, prompt_ids, reply_ids, layer=1, head=1)
    cli = inspect_text(run, prompt + reply, layer=1, head=1, device="cpu").to_dict()

    assert result.token_ids == [token["id"] for token in cli["tokens"]]
    assert result.tokens == [token["token"] for token in cli["tokens"]]
    assert result.reply_start == len(prompt_ids)
    assert result.surprise == pytest.approx(cli["surprise"], abs=2e-4)
    weights = cli["attention"]["weights"][0][0]
    for i, row in enumerate(result.attention):
        assert len(row) == i + 1  # only the past: the page draws the future blank
        assert row == pytest.approx(weights[i][: i + 1], abs=2e-4)
        assert sum(weights[i][i + 1 :]) == 0


def test_surprise_is_the_loss_by_hand(plain_run):
    _, tokenizer, model = plain_run
    ids = tokenizer.encode("Birds sang in old trees while the cat sat on a mat.")
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0]
    by_hand = F.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="none")
    result = look_inside(model, tokenizer, ids[:4], ids[4:])
    assert result.surprise == pytest.approx(by_hand.tolist(), abs=2e-4)
    assert (result.n_layer, result.n_head, result.layer, result.head) == (2, 2, 0, 0)


def test_a_long_exchange_keeps_the_last_context_window(plain_run):
    _, tokenizer, model = plain_run
    prompt_ids = tokenizer.encode("The dog ran to the park. " * 20)
    reply_ids = tokenizer.encode(" The cat sat.")
    result = look_inside(model, tokenizer, prompt_ids, reply_ids)
    context = model.config.block_size
    assert len(result.tokens) == len(result.attention) == context
    assert result.dropped == len(prompt_ids) + len(reply_ids) - context
    assert result.token_ids == (prompt_ids + reply_ids)[-context:]
    assert result.reply_start == context - len(reply_ids)


@pytest.mark.parametrize(("layer", "head", "message"), [(2, 0, "layer 2"), (0, 5, "head 5")])
def test_a_layer_or_head_the_model_lacks_is_refused(plain_run, layer, head, message):
    _, tokenizer, model = plain_run
    with pytest.raises(ValueError, match=f"{message} does not exist: this model has 2 .*, 0..1"):
        look_inside(model, tokenizer, [1, 2], [3], layer=layer, head=head)
