"""slm-cli serve --quantize: the batched server on a quantized model (issue 26)."""

from __future__ import annotations

import pytest
import torch
from conftest import running
from slm_model import generate
from slm_serve import ServeConfig
from slm_train import ConfigError

pytest.importorskip("torchao")


@pytest.mark.parametrize("how", ["int8", "int4"])
def test_a_quantized_server_replies_as_generate_on_the_same_weights(base_run, how):
    """The server's batched KV cache on quantized weights gives generate's greedy tokens."""
    with running(base_run, quantize=how) as server:
        served = server.served
        assert type(served.model.blocks[0].mlp.fc.weight) not in (torch.nn.Parameter, torch.Tensor)
        reply = server.client().completions.create(
            model="base", prompt="The cat sat", temperature=0, max_tokens=12
        )
        ids = served.text_ids("The cat sat")
        expected = generate(served.model, ids, 12, temperature=0)[0, len(ids) :].tolist()
    assert reply.choices[0].text == served.tokenizer.decode(expected)


def test_an_unknown_quantization_is_a_config_error():
    with pytest.raises(ConfigError, match="int3"):
        ServeConfig(quantize="int3")


def test_the_servers_list_of_kinds_is_the_models():
    """slm_serve.config writes the list out (so that --help imports no torch): the same one."""
    import slm_model
    from slm_serve import config

    assert config.QUANTIZE == slm_model.QUANTIZE
