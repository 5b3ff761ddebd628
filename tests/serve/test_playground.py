"""The playground's look-inside numbers, its routes and its page files (the browser
test is test_playground_browser.py).

`look_inside` must give what `slm-cli inspect` gives for the same tokens (it is
built from the same calls), and its surprise must be the loss computed by hand
from the model's logits. Over HTTP the chat run here has the shape a hub import
of a chat model gets (a Llama with grouped-query heads, its chat template in
the run's config): importing a real one takes transformers, too slow for here.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from chat_runs import CHAT_EXTRA, chat_tokenizer, make_chat_run
from slm_model import GPTModel, get_gpt_config
from slm_serve.look_inside import look_inside
from slm_serve.playground import PAGE_FILES, STATIC
from slm_tokenizer.chat import CHAT_TEMPLATE
from slm_train import Run, inspect_text


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


# ------------------------------------------------------------------ over HTTP
class Answer:
    """An HTTP answer, from the standard library (no extra client for these few calls)."""

    def __init__(self, status: int, headers, body: bytes) -> None:
        self.status_code, self.headers, self.text = status, headers, body.decode("utf-8")

    def json(self):
        return json.loads(self.text)


def call(url: str, body: dict | None = None) -> Answer:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return Answer(answer.status, answer.headers, answer.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory) -> Path:
    """conftest's chat_server serves this here: a Llama-shaped chat run, as a hub import makes."""
    tokenizer = chat_tokenizer()
    torch.manual_seed(0)
    config = get_gpt_config("llama-tiny", vocab_size=tokenizer.vocab_size, block_size=128)
    extra = {**CHAT_EXTRA, "chat_template": CHAT_TEMPLATE, "source": "hub"}
    folder = tmp_path_factory.mktemp("playground") / "imported"
    return make_chat_run(folder, GPTModel(config), tokenizer=tokenizer, extra=extra).path


def test_the_page_and_its_files_are_served_and_nothing_else(base_server):
    page = call(f"{base_server.url}/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert all(f"/static/{name}" in page.text for name in ("app.js", "style.css"))
    for name, kind in PAGE_FILES.items():
        served = call(f"{base_server.url}/static/{name}")
        assert served.headers["Content-Type"] == kind
        assert served.text == (STATIC / name).read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z]", served.text.replace("://127", "")), name
    for name in ("secret.txt", "..%2Fplayground.py", "%2E%2E%2Flook_inside.py"):
        missing = call(f"{base_server.url}/static/{name}")
        assert missing.status_code == 404 and missing.json()["error"]["message"]


def test_the_page_learns_which_kind_of_run_it_talks_to(chat_server, base_server):
    for server, chat, heads in ((chat_server, True, 4), (base_server, False, 2)):
        info = call(f"{server.url}/v1/slm/model").json()
        listed = server.client().models.list().data  # the id the OpenAI client sees
        assert info == {
            "id": listed[0].id,
            "chat": chat,
            "context_length": server.served.context_length,
            "n_layer": 2,
            "n_head": heads,
        }


def test_inspect_over_http_gives_slm_cli_inspects_numbers(chat_server, chat_run):
    question = "Who sat on the mat?"
    body = {"messages": [{"role": "user", "content": question}], "reply": "The cat sat."}
    result = call(f"{chat_server.url}/v1/slm/inspect", {**body, "layer": 1, "head": 3})
    assert result.status_code == 200
    result = result.json()
    cli = inspect_text(Run(chat_run), question, layer=1, head=3, device="cpu").to_dict()

    prompt = len(cli["tokens"])  # the question in the chat template, up to the open reply
    assert result["reply_start"] == prompt
    assert result["tokens"][prompt:] == [
        Run(chat_run).tokenizer().decode([i]) for i in result["token_ids"][prompt:]
    ]
    assert result["token_ids"][:prompt] == [token["id"] for token in cli["tokens"]]
    assert result["surprise"][: prompt - 1] == pytest.approx(cli["surprise"], abs=2e-4)
    weights = cli["attention"]["weights"][0][0]  # causal: the reply changes no earlier row
    for i in range(prompt):
        assert result["attention"][i] == pytest.approx(weights[i][: i + 1], abs=2e-4)


@pytest.mark.parametrize(
    ("server", "body", "param", "message"),
    [
        ("chat", {"reply": "x", "layer": 2}, "layer", "layer 2 does not exist: this model has 2"),
        ("chat", {"reply": "x", "head": 4}, "head", "head 4 does not exist: this model has 4"),
        ("chat", {"reply": "x", "layer": "top"}, "layer", "valid integer"),
        ("chat", {"reply": ""}, "reply", "at least 1 character"),
        ("chat", {"reply": "x", "colour": "red"}, "colour", "Extra inputs"),
        ("chat", {"prompt": "Hi", "reply": "x"}, "messages", "send the conversation as messages"),
        ("base", {"messages": [{"role": "user", "content": "Hi"}], "reply": "x"}, "prompt",
         "send the text the reply followed as prompt"),
    ],
)  # fmt: skip
def test_a_bad_inspect_request_is_one_clear_error_and_the_server_goes_on(
    chat_server, base_server, server, body, param, message
):
    server = chat_server if server == "chat" else base_server
    if server is chat_server and "messages" not in body and "prompt" not in body:
        body = {"messages": [{"role": "user", "content": "Hi"}], **body}
    answer = call(f"{server.url}/v1/slm/inspect", body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == param and message in error["message"]
    assert call(f"{server.url}/v1/slm/model").status_code == 200
