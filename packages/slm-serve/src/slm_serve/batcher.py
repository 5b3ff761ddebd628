"""Continuous batching: one worker thread owns the model and advances every request together.

Requests wait in a bounded queue (`submit` refuses with QueueFull once
`max_batch + max_queue` are in the server, which the routes answer with 503).
The worker loops:

1. run any `call`ed functions (other code that needs the model, e.g. the
   playground's "look inside"), so they never race a generation step;
2. admit waiting requests into free rows of a `RowCache`: each prompt is run
   alone into its row (`prefill_row`, as `generate` runs a prompt) and its first
   token is sampled;
3. advance every occupied row by one token in one forward pass
   (`decode_rows`), each row at its own position, and sample each row with its
   own settings and random generator (`sample_next`, the one sampler).

A request joins at the next step after it arrives and leaves the moment it
ends (an end token, max_tokens, or its client gone: `cancel`), so a long reply
never holds up a short one and a disconnected client frees its row at the next
step. Rows are taken lowest first so the step covers a short block of rows.

Tokens reach the request's asyncio queue through its event loop
(`call_soon_threadsafe`); the worker never waits for a client. A prompt's
prefill runs alone, so a long one pauses the other rows for its duration
(chunked prefill, as vLLM's, would bound that pause; not done here).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from slm_model import GPTModel, sample_next
from slm_model.batched import RowCache, decode_rows, prefill_row

logger = logging.getLogger("slm_serve")


class QueueFull(RuntimeError):
    """Every row is busy and the queue is full (or the server is shutting down)."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    max_tokens: int = 16
    top_logprobs: int | None = None  # None: no log-probabilities; 0: the chosen token's only


@dataclass
class Token:
    id: int
    logprob: float | None = None  # log-softmax of the raw logits (temperature 1)
    top: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class Finished:
    reason: str  # "stop" (an end token), "length" (max_tokens, shutdown), "cancelled", "error"
    tokens: int  # how many were generated


class Request:
    """One generation: its prompt and settings in, `Token`s then one `Finished` out."""

    def __init__(self, prompt: list[int], sampling: Sampling, ends: tuple[int, ...]) -> None:
        self.prompt, self.sampling, self.ends = prompt, sampling, ends
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[Token | Finished] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.generated = 0
        self.last = -1  # the newest token, fed to the next step
        self.generator: torch.Generator | None = None

    def cancel(self) -> None:
        """The client is gone (or needs no more): the row is freed at the next step."""
        self.cancelled.set()

    def put(self, event: Token | Finished) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop has closed: nobody listens
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class Batcher:
    def __init__(self, model: GPTModel, max_batch: int = 8, max_queue: int = 32) -> None:
        self.model, self.capacity = model, max_batch + max_queue
        self.rows: list[Request | None] = [None] * max_batch
        self.cache: RowCache | None = None  # allocated at the first request
        self.waiting: deque[Request] = deque()
        self.calls: deque[tuple[Callable[[], Any], concurrent.futures.Future]] = deque()
        self.load = 0  # requests waiting or in a row
        self.finished: deque[Finished] = deque(maxlen=256)  # the latest, for tests and stats
        self.widest = 0  # the most rows one step has advanced together
        self.state = threading.Condition()
        self.draining = self.stopped = False
        self.thread = threading.Thread(target=self._work, name="slm-serve-batcher", daemon=True)
        self.thread.start()

    # ---------------------------------------------------------- other threads
    def submit(self, request: Request) -> None:
        """Queue `request`, or raise QueueFull when the server holds as many as it may."""
        with self.state:
            if self.draining or self.load >= self.capacity:
                raise QueueFull("shutting down" if self.draining else "the queue is full")
            self.load += 1
            self.waiting.append(request)
            self.state.notify()

    def call(self, function: Callable[[], Any]) -> concurrent.futures.Future:
        """Run `function()` on the worker between two steps; its result comes in the future."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self.state:
            if self.stopped:
                raise QueueFull("shutting down")
            self.calls.append((function, future))
            self.state.notify()
        return future

    def drain(self) -> None:
        """Refuse new requests and end the running ones at the next step (for Ctrl-C)."""
        with self.state:
            self.draining = True
            self.state.notify()

    def stop(self) -> None:
        self.drain()
        with self.state:
            self.stopped = True
            self.state.notify()
        self.thread.join()

    # ------------------------------------------------------------ the worker
    def _work(self) -> None:
        while True:
            with self.state:
                self.state.wait_for(self._has_work)
                calls, self.calls = list(self.calls), deque()
                if self.stopped and not calls:
                    break
            for function, future in calls:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(function())
                    except BaseException as error:  # the caller gets it, the worker goes on
                        future.set_exception(error)
            try:
                self._admit()
                self._step()
            except Exception:  # a bug or out of memory: fail these requests, serve the next
                logger.exception("generation failed")
                self._end_all("error")
        self._end_all("length")

    def _has_work(self) -> bool:
        busy = any(self.rows) or self.waiting
        return bool(self.calls or self.stopped or busy)

    def _admit(self) -> None:
        """Prefill waiting requests into free rows (or end them all when draining)."""
        while True:
            with self.state:
                free = next((r for r, held in enumerate(self.rows) if held is None), None)
                if not self.waiting or (free is None and not self.draining):
                    return
                request = self.waiting.popleft()
            if self.draining or request.cancelled.is_set():
                self._finish(request, "cancelled" if request.cancelled.is_set() else "length")
                continue
            if self.cache is None:
                self.cache = RowCache(self.model, len(self.rows))
            self.rows[free] = request
            request.generator = _generator(self.model, request.sampling.seed)
            self._emit(free, prefill_row(self.model, self.cache, free, request.prompt))

    @torch.inference_mode()
    def _step(self) -> None:
        """One token for every occupied row, in one forward pass."""
        for row, request in enumerate(self.rows):
            if request is not None and (request.cancelled.is_set() or self.draining):
                self._free(row, "cancelled" if request.cancelled.is_set() else "length")
        occupied = [row for row, request in enumerate(self.rows) if request is not None]
        if not occupied:
            return
        device = self.model.tok_emb.weight.device
        span = occupied[-1] + 1
        self.widest = max(self.widest, len(occupied))
        last = [request.last if request else 0 for request in self.rows[:span]]
        logits = decode_rows(self.model, self.cache, torch.tensor(last, device=device))
        for row in occupied:
            self._emit(row, logits[row])

    def _emit(self, row: int, logits: torch.Tensor) -> None:
        """Sample the row's next token, send it, and free the row if the request is done."""
        request = self.rows[row]
        settings = request.sampling
        chosen = sample_next(
            logits[None], settings.temperature, settings.top_k, settings.top_p, request.generator
        )
        token = Token(int(chosen[0]))
        if settings.top_logprobs is not None:
            _add_logprobs(token, logits, settings.top_logprobs)
        request.generated += 1
        request.last = token.id
        if token.id in request.ends:
            return self._free(row, "stop")
        request.put(token)
        full = int(self.cache.lengths[row]) >= self.model.config.block_size  # no room to feed it
        if request.generated >= settings.max_tokens or full:
            self._free(row, "length")

    def _free(self, row: int, reason: str) -> None:
        request, self.rows[row] = self.rows[row], None
        self._finish(request, reason)

    def _finish(self, request: Request, reason: str) -> None:
        done = Finished(reason, request.generated)
        self.finished.append(done)
        request.put(done)
        with self.state:
            self.load -= 1

    def _end_all(self, reason: str) -> None:
        for row, request in enumerate(self.rows):
            if request is not None:
                self._free(row, reason)
        with self.state:
            waiting, self.waiting = list(self.waiting), deque()
        for request in waiting:
            self._finish(request, reason)


def _generator(model: GPTModel, seed: int | None) -> torch.Generator:
    generator = torch.Generator(device=model.tok_emb.weight.device)
    generator.manual_seed(seed) if seed is not None else generator.seed()
    return generator


def _add_logprobs(token: Token, logits: torch.Tensor, top: int) -> None:
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    token.logprob = float(logprobs[token.id])
    if top:
        values, ids = torch.topk(logprobs, min(top, logprobs.shape[-1]))
        token.top = list(zip(ids.tolist(), values.tolist(), strict=True))
