"""The batcher: rows of different lengths in one step, a vanished client's row, and Ctrl-C.

Where a test needs the worker to be at a known point, it holds the worker
with a gate (a function run on it, or a wrapped decoding step) and opens the
gate when the test is ready: events, not timing.
"""

from __future__ import annotations

import asyncio
import signal
import threading

import pytest
import torch
from conftest import running
from slm_model import GPTModel, generate, get_gpt_config
from slm_serve import batcher
from slm_serve.batcher import Batcher, Finished, Request, Sampling


@pytest.mark.parametrize("preset", ["tiny", "llama-tiny"])
def test_rows_of_different_lengths_in_one_step_equal_generate(preset):
    """Also past 128 tokens, where the cache grows (RowCache.make_room)."""
    torch.manual_seed(0)
    model = GPTModel(get_gpt_config(preset, vocab_size=300, block_size=256)).eval()
    prompts = [[1, 2, 3], list(range(10, 110)), [7], list(range(50, 62))]
    new = 40
    expected = [generate(model, p, new, temperature=0)[0, len(p) :].tolist() for p in prompts]
    work = Batcher(model, max_batch=4, max_queue=0)
    gate = threading.Event()

    async def run_all() -> list[list[int]]:
        held = work.call(gate.wait)  # every prompt is queued before the worker admits any
        requests = [Request(p, Sampling(temperature=0, max_tokens=new), ends=()) for p in prompts]
        for request in requests:
            work.submit(request)
        gate.set()
        await asyncio.wrap_future(held)
        return [await tokens_of(request) for request in requests]

    try:
        assert asyncio.run(run_all()) == expected
        assert work.widest == len(prompts)
        assert work.cache.context_length == 256  # grew from 128
    finally:
        work.stop()


async def tokens_of(request: Request) -> list[int]:
    tokens = []
    while not isinstance(event := await request.events.get(), Finished):
        tokens.append(event.id)
    return tokens


class HeldStep:
    """Wraps the batched decoding step: the first call waits until `release`."""

    def __init__(self, step) -> None:
        self.step, self.reached, self.release = step, threading.Event(), threading.Event()

    def __call__(self, *args):
        if not self.reached.is_set():
            self.reached.set()
            assert self.release.wait(30)
        return self.step(*args)


@pytest.fixture
def held_step(monkeypatch) -> HeldStep:
    held = HeldStep(batcher.decode_rows)
    monkeypatch.setattr(batcher, "decode_rows", held)
    return held


@pytest.fixture
def cancels(monkeypatch) -> threading.Event:
    """Set when a request is cancelled (the route's reaction to a vanished client)."""
    cancelled = threading.Event()
    cancel = Request.cancel

    def recorded(self):
        cancel(self)
        cancelled.set()

    monkeypatch.setattr(Request, "cancel", recorded)
    return cancelled


def test_a_client_that_disconnects_frees_its_row(chat_run, held_step, cancels):
    with running(chat_run, max_batch=1, max_queue=4) as server:
        client = server.client()
        stream = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=100,
            stream=True, temperature=0,  # greedy: the same tokens every time, none an end
        )  # fmt: skip
        assert next(iter(stream)).choices[0].delta.role == "assistant"
        assert held_step.reached.wait(30)  # its first token is out; the second step waits
        stream.close()
        assert cancels.wait(30)
        held_step.release.set()
        reply = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "Again"}], max_tokens=3
        )  # the only row is free again, long before the first reply's 100 tokens
        assert reply.usage.completion_tokens <= 3
        first = server.served.batcher.finished[0]
        assert first.reason == "cancelled" and first.tokens <= 3


def test_ctrl_c_ends_running_streams_properly(chat_run, held_step):
    with running(chat_run) as server:
        stream = server.client().chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=100,
            stream=True, temperature=0,  # greedy: the same tokens every time, none an end
        )  # fmt: skip
        chunks = iter(stream)
        assert next(chunks).choices[0].delta.role == "assistant"
        assert held_step.reached.wait(30)
        server.server.handle_exit(signal.SIGINT, None)  # what uvicorn calls on Ctrl-C
        held_step.release.set()
        rest = list(chunks)  # ends at `data: [DONE]`, which the client consumes
        assert rest[-1].choices[0].finish_reason == "length"
        assert len(rest) < 100
    assert not server.thread.is_alive()  # and the server has stopped


def test_exclusive_runs_a_function_on_the_worker(chat_server):
    """What other routes use to touch the model safely (the playground's "look inside")."""
    served = chat_server.served
    name = asyncio.run(served.exclusive(lambda: threading.current_thread().name))
    assert name == served.batcher.thread.name
    with pytest.raises(ZeroDivisionError):
        asyncio.run(served.exclusive(lambda: 1 / 0))
