"""Counting a corpus's pre-tokens, in parallel worker processes when it is large.

BPE training starts from how often each distinct pre-token occurs (see
`training`). Finding the pre-tokens means running the pre-tokenization regex
over every character of the corpus, which is most of a training run's time and
grows with the corpus, so it is the part worth spreading over the cores.

The corpus is cut only where pre-tokens cannot span the cut: between documents
(the strings of an iterable) and at special tokens. A single string without
special tokens is therefore counted by one process. The pieces are grouped into
batches of about `BATCH_CHARS` characters, which the calling process hands to
`workers` helper processes through a bounded queue, so no more than a few
batches are in memory at once, whatever the size of the corpus. Each helper
keeps one Counter for all its batches and sends it back once at the end. (The
caller only feeds the queue: if it counted too, its pre-tokenizing would hold
the GIL and starve the thread that writes batches to the helpers.)

`patterns.PreTokenizer` splits ASCII text with the pattern's ASCII twin under
`re`, which is about twice as fast.

Counts are sums, so they do not depend on which process counted what: the
result, and the merges learned from it, equal a single-process run.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections import Counter
from collections.abc import Iterable, Iterator

import regex

from .base import replace_surrogates, require_str
from .patterns import PreTokenizer

# About 1 MB of text per batch: ~0.1 s of regex work, large enough that queue
# traffic costs little, small enough to balance the load and bound memory.
BATCH_CHARS = 1 << 20
# How long to wait on a queue before checking that the helpers are still alive.
_POLL_SECONDS = 0.5


def default_workers() -> int:
    """The CPUs this process may run on (not all of the machine's, under a CPU limit)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def count_pre_tokens(
    text: str | Iterable[str],
    special_tokens: list[str],
    pattern: str,
    workers: int = 1,
    *,
    batch_chars: int | None = None,
) -> Counter[str]:
    """Count the pre-tokens of the corpus, never letting one span a special token or document.

    With `workers` > 1 and more than one batch of text (`batch_chars`, default
    `BATCH_CHARS`), that many processes share the counting; a smaller corpus
    is counted here, as starting processes would cost more than it saves.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    pre_tokenizer = PreTokenizer(pattern)
    batches = _batches(_segments(text, special_tokens), batch_chars or BATCH_CHARS)
    first = next(batches, [])
    second = next(batches, None)
    if second is None or workers == 1:
        counts: Counter[str] = Counter()
        for batch in [first] if second is None else _chain(first, second, batches):
            count_batch(pre_tokenizer, batch, counts)
        return counts
    return _count_in_parallel(_chain(first, second, batches), pattern, workers)


def count_batch(pre_tokenizer: PreTokenizer, batch: list[str], counts: Counter[str]) -> None:
    """Add the pre-tokens of each string of `batch` to `counts`."""
    for segment in batch:
        counts.update(pre_tokenizer.findall(replace_surrogates(segment)))


def _segments(text: str | Iterable[str], special_tokens: list[str]) -> Iterator[str]:
    """The corpus as strings that no pre-token spans: documents, cut at special tokens."""
    splitter = None
    if special_tokens:
        ordered = sorted(special_tokens, key=len, reverse=True)  # longest match first
        splitter = regex.compile("|".join(regex.escape(s) for s in ordered))
    documents = [text] if isinstance(text, (str, bytes, bytearray)) else text
    for document in documents:
        document = str(require_str(document, "each text"))  # a plain str always pickles
        if splitter is None:
            yield document
        else:
            yield from splitter.split(document)


def _batches(segments: Iterator[str], batch_chars: int) -> Iterator[list[str]]:
    """Group segments into lists of at least `batch_chars` characters (the last may be short)."""
    batch: list[str] = []
    size = 0
    for segment in segments:
        batch.append(segment)
        size += len(segment)
        if size >= batch_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _chain(first: list[str], second: list[str], rest: Iterator[list[str]]) -> Iterator[list[str]]:
    yield first
    yield second
    yield from rest


def _count_in_parallel(batches: Iterator[list[str]], pattern: str, workers: int) -> Counter[str]:
    """Hand the batches to `workers` helper processes and add up their counts."""
    context = multiprocessing.get_context()
    tasks = context.Queue(maxsize=2 * workers)
    results = context.Queue()
    helpers = [
        context.Process(target=_helper, args=(pattern, tasks, results), daemon=True)
        for _ in range(workers)
    ]
    for helper in helpers:
        helper.start()
    counts: Counter[str] = Counter()
    try:
        for batch in batches:
            _put(tasks, batch, helpers, results)
        for _ in helpers:
            _put(tasks, None, helpers, results)
        for received in range(len(helpers)):
            counts.update(_get(results, helpers, received))
    finally:
        for helper in helpers:
            helper.join(timeout=_POLL_SECONDS)
            if helper.is_alive():
                helper.terminate()
                helper.join()
        tasks.close()
        results.close()
    return counts


def _helper(pattern: str, tasks: multiprocessing.Queue, results: multiprocessing.Queue) -> None:
    """A helper process: count batches until the None that says the corpus is done."""
    try:
        pre_tokenizer = PreTokenizer(pattern)
        counts: Counter[str] = Counter()
        while (batch := tasks.get()) is not None:
            count_batch(pre_tokenizer, batch, counts)
        results.put(counts)
    except BaseException as error:  # report it (as text, which always pickles) and stop
        results.put(RuntimeError(repr(error)))


def _put(
    tasks: multiprocessing.Queue, item: object, helpers: list, results: multiprocessing.Queue
) -> None:
    """Put `item` on the queue; if it stays full while a helper has stopped, that helper failed.

    (A helper stops only after taking its None, and until then the queue
    cannot be full of work for it, so a stopped helper here is a failed one.)
    """
    while True:
        try:
            tasks.put(item, timeout=_POLL_SECONDS)
            return
        except queue.Full:
            if any(helper.exitcode is not None for helper in helpers):
                _get(results, helpers, 0)  # raises the helper's error
                raise RuntimeError("a pre-token counting process stopped early") from None


def _get(results: multiprocessing.Queue, helpers: list, received: int) -> Counter[str]:
    """The next helper's counts, `received` having come already; raises if a helper failed."""
    while True:
        try:
            result = results.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            _check_alive(helpers)
            # A helper that exits has sent its result first, so this one was lost.
            if sum(helper.exitcode == 0 for helper in helpers) > received:
                raise RuntimeError(
                    "a pre-token counting process stopped without its counts"
                ) from None
            continue
        if isinstance(result, BaseException):
            raise RuntimeError(f"a pre-token counting process failed: {result}") from None
        return result


def _check_alive(helpers: list) -> None:
    for helper in helpers:
        if helper.exitcode not in (None, 0):
            raise RuntimeError(
                f"a pre-token counting process died (exit code {helper.exitcode}); "
                "it may have run out of memory: train with fewer workers"
            )
