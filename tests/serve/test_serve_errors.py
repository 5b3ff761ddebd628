"""Bad requests get OpenAI's error JSON with the right status, and the server keeps serving.

Raw HTTP (the standard library's http.client) for what the openai client
would never send (broken JSON, wrong types, huge bodies); the openai client
for what it reports (401, 503).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import threading
from dataclasses import dataclass

import openai
import pytest
from conftest import running

HELLO = [{"role": "user", "content": "Hello"}]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict


def send(server, method: str, path: str, body=None, headers=None) -> Reply:
    """One request on its own connection; `body` bytes, a dict (as JSON) or an iterable of bytes
    (sent chunked, with no Content-Length)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    chunked = body is not None and not isinstance(body, bytes)
    connection.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
    response = connection.getresponse()
    reply = Reply(response.status, dict(response.getheaders()), json.loads(response.read()))
    connection.close()
    return reply


def chat(server, body) -> Reply:
    return send(server, "POST", "/v1/chat/completions", body)


def assert_still_serving(server) -> None:
    reply = chat(server, {"messages": HELLO, "max_tokens": 2})
    assert reply.status == 200, reply.body
    assert reply.body["choices"][0]["message"]["role"] == "assistant"


BAD = {
    "malformed JSON": (b'{"messages": [', 400, "not valid JSON"),
    "not an object": (b"[1, 2]", 400, "JSON object"),
    "wrong type": ({"messages": HELLO, "temperature": "hot"}, 400, "temperature"),
    "messages not a list": ({"messages": "Hello"}, 400, "messages"),
    "bad role": ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
    "empty messages": ({"messages": []}, 400, "messages is empty"),
    "max_tokens zero": ({"messages": HELLO, "max_tokens": 0}, 400, "in 1..127"),
    "max_tokens huge": ({"messages": HELLO, "max_tokens": 10**9}, 400, "in 1..127"),
    "prompt too long": (
        {"messages": [{"role": "user", "content": "the cat " * 200}]},
        400,
        "at most 127 prompt tokens are allowed",
    ),
    "reply does not fit": (
        {"messages": [{"role": "user", "content": "the cat " * 20}], "max_tokens": 120},
        400,
        "lower max_tokens",
    ),
    "unknown model": ({"model": "gpt-4", "messages": HELLO}, 404, "serves 'chat'"),
    "body too large": ({"messages": [{"role": "user", "content": "x" * 1_100_000}]}, 413, "limit"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_gets_an_openai_error_and_the_server_goes_on(chat_server, case):
    body, status, words = BAD[case]
    reply = chat(chat_server, body)
    assert reply.status == status
    error = reply.body["error"]
    assert words in error["message"]
    assert {"message", "type", "param", "code"} <= set(error)
    assert_still_serving(chat_server)


def test_a_body_without_content_length_is_cut_at_the_limit(chat_server):
    def chunks():
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"x" * 50_000
        yield b'"}]}'

    reply = chat(chat_server, chunks())
    assert reply.status == 413
    assert "limit" in reply.body["error"]["message"]
    assert_still_serving(chat_server)


def test_with_a_key_every_request_needs_it(chat_run):
    with running(chat_run, api_key="sesame") as server:
        for client in (server.client(), server.client("wrong")):
            with pytest.raises(openai.AuthenticationError):
                client.models.list()
        for path in ("/v1/models", "/v1/slm/model"):
            refused = send(server, "GET", path)
            assert refused.status == 401
            assert "Authorization: Bearer" in refused.body["error"]["message"]
        # The playground's page and files need none (a browser cannot send a header to open
        # a page); the page sends the key with its API calls.
        for path in ("/", "/static/app.js"):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.request("GET", path)
            assert connection.getresponse().status == 200, path
            connection.close()
        reply = server.client("sesame").chat.completions.create(
            model="chat", messages=HELLO, max_tokens=2
        )
        assert reply.choices[0].message.content is not None


def test_a_full_queue_answers_503_with_retry_after(chat_run):
    """One row and no queue: while the worker is busy, the second request is refused."""
    with running(chat_run, max_batch=1, max_queue=0) as server:
        gate = threading.Event()
        busy = server.served.batcher.call(gate.wait)  # holds the worker, as a long step would

        def ask():
            return server.client().chat.completions.create(
                model="chat", messages=HELLO, max_tokens=2
            )

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            calls = [pool.submit(ask), pool.submit(ask)]
            done, _ = concurrent.futures.wait(calls, return_when="FIRST_COMPLETED")
            refused = done.pop()
            with pytest.raises(openai.InternalServerError) as caught:
                refused.result()
            gate.set()
            served = next(call for call in calls if call is not refused).result()
        busy.result()
        assert caught.value.status_code == 503
        assert caught.value.response.headers["Retry-After"] == "1"
        assert served.choices[0].message.content is not None


def test_a_failed_generation_is_a_500_and_the_next_request_is_served(chat_server, monkeypatch):
    from slm_serve import batcher

    def out_of_memory(*args):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(batcher, "prefill_row", out_of_memory)
    reply = chat(chat_server, {"messages": HELLO, "max_tokens": 2})
    assert reply.status == 500 and reply.body["error"]["type"] == "server_error"
    with pytest.raises(openai.APIError, match="generation failed"):
        list(chat_server.client().chat.completions.create(model="chat", messages=HELLO,
                                                          stream=True))  # fmt: skip
    monkeypatch.undo()
    assert_still_serving(chat_server)


def test_no_cors_headers_so_other_sites_cannot_call_it_from_a_browser(chat_server):
    origin = {"Origin": "https://elsewhere.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    asked = send(chat_server, "OPTIONS", "/v1/chat/completions", headers=preflight)
    plain = send(chat_server, "GET", "/v1/models", headers=origin)
    assert asked.status == 405 and plain.status == 200
    for reply in (asked, plain):
        assert not any(h.lower().startswith("access-control-") for h in reply.headers)
