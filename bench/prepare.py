"""Benchmark data preparation: throughput with one worker process against two, in one run.

    uv run python bench/prepare.py [--rounds 5] [--workers 2]

`prepare` encodes documents in a pool of worker processes (issue 14, goal 4:
at least 1.7x the throughput from 1 to 2 workers). The machine may be shared
and noisy, so the cases run in turn (A B A B ...) for `--rounds` rounds and
the medians are reported, with MB/s of the corpus's UTF-8 text and the ratio
of the one-process time to the pool's: for the whole call (which includes
fixed costs, such as building and saving GPT-2's tokenizer, that do not
depend on the workers) and for the tokenizing phase alone (reading the
corpus, starting the pool, encoding, writing). A pure CPU loop in 1 and 2
processes shows the speed-up the machine allows at the time. The CPU seconds of the call
(this process and its workers) show how much work the pool adds: on a busy
machine the wall-clock speed-up is capped by the CPU the others leave free.
Each run writes a fresh folder, so nothing is reused; the BPE tokenizer is
trained once and then passed as `file:PATH`, so only tokenization is timed.
The script also checks that the token files are byte-identical for both
worker counts.

Two corpora: `builtin:bbe` (4.2 MB, under a second's work, so the pool's
fixed costs show), and Python's library sources (`--megabytes`, default 16;
each worker warms its own pre-token cache, a cost that a larger corpus
amortises) written as one `.txt` file of documents separated by
`<|endoftext|>` lines, the shape of TinyStories, the corpus the pool is for.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from slm_train import prepare
from slm_train.data import prepare as prepare_module
from slm_train.data.sources import bible_chapters

sys.path.insert(0, str(Path(__file__).parent))
from tokenizer import python_sources


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_prepare(
    source: str, tokenizer: str, workers: int, out: Path
) -> tuple[float, float, float]:
    """Seconds for the whole call, for its tokenizing phase (pool start-up included), and CPU."""
    phase = []
    write_tokens = prepare_module._write_tokens

    def timed_write_tokens(*args, **kwargs):
        start = time.perf_counter()
        try:
            return write_tokens(*args, **kwargs)
        finally:
            phase.append(time.perf_counter() - start)

    prepare_module._write_tokens = timed_write_tokens
    try:
        start, cpu = time.perf_counter(), cpu_seconds()
        prepare(source, out, tokenizer, workers=workers)
        return time.perf_counter() - start, phase[0], cpu_seconds() - cpu
    finally:
        prepare_module._write_tokens = write_tokens


def bench(source: str, tokenizer: str, workers: int, rounds: int, root: Path, megabytes: float):
    """Interleaved runs with 1 and `workers` workers; prints medians and returns the speed-ups."""
    name = tokenizer if tokenizer == "gpt2" else "bpe:4096"
    times: dict[int, list[tuple[float, float, float]]] = {1: [], workers: []}
    for round_ in range(rounds):
        for count in times:
            out = root / f"{name}-{count}-{round_}"
            times[count].append(timed_prepare(source, tokenizer, count, out))
            if round_ > 0:
                shutil.rmtree(out)  # keep the disk use small; round 0 is compared below
    for file in ("train.bin", "val.bin"):
        one = (root / f"{name}-1-0" / file).read_bytes()
        many = (root / f"{name}-{workers}-0" / file).read_bytes()
        assert one == many, f"{name}: {file} differs between 1 and {workers} workers"
    medians = {
        count: [statistics.median(run[i] for run in runs) for i in (0, 1, 2)]
        for count, runs in times.items()
    }
    for count, (total, phase, cpu) in medians.items():
        print(
            f"{name:<10}{count:>8}{total:>10.2f}{megabytes / total:>8.2f}"
            f"{phase:>12.2f}{megabytes / phase:>8.2f}{cpu:>10.2f}"
        )
    total_ratio = medians[1][0] / medians[workers][0]
    phase_ratio = medians[1][1] / medians[workers][1]
    cpu_growth = medians[workers][2] / medians[1][2]
    print(
        f"{name:<10} speed-up from 1 to {workers} workers: {total_ratio:.2f}x whole call, "
        f"{phase_ratio:.2f}x tokenizing; CPU time x{cpu_growth:.2f} (files identical)\n"
    )
    return total_ratio, phase_ratio


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def ceiling(workers: int, rounds: int) -> float:
    """The speed-up the machine allows now: a pure CPU loop split over 1 and `workers` processes."""
    times: dict[int, list[float]] = {1: [], workers: []}
    n = 30_000_000
    for _ in range(rounds):
        for count in times:
            start = time.perf_counter()
            with ProcessPoolExecutor(count) as pool:
                list(pool.map(spin, [n // count] * count))
            times[count].append(time.perf_counter() - start)
    ratio = statistics.median(times[1]) / statistics.median(times[workers])
    print(f"machine check: a pure CPU loop runs {ratio:.2f}x faster in {workers} processes than 1")
    return ratio


def stdlib_corpus(path: Path, megabytes: float) -> Path:
    """The Python library's sources as one file of `<|endoftext|>`-separated documents."""
    text = "\n<|endoftext|>\n".join(python_sources(int(megabytes * 1e6)))
    path.write_text(text, encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--corpus", choices=["bbe", "stdlib", "both"], default="both")
    parser.add_argument("--megabytes", type=float, default=16, help="size of the stdlib corpus")
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; load average before: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    ceiling(args.workers, args.rounds)
    with tempfile.TemporaryDirectory(prefix="slm-bench-prepare-") as tmp:
        root = Path(tmp)
        for key in ["bbe", "stdlib"] if args.corpus == "both" else [args.corpus]:
            if key == "bbe":
                source, megabytes = "builtin:bbe", sum(len(t.encode()) for t in bible_chapters())
            else:
                path = stdlib_corpus(root / "stdlib.txt", args.megabytes)
                source, megabytes = str(path), path.stat().st_size
            megabytes /= 1e6
            print(f"\ncorpus {key}: {megabytes:.2f} MB of text; {args.rounds} rounds, A B A B ...")
            trained = prepare(source, root / f"{key}-trained", "bpe:4096")
            print(f"{'':<18}{'whole call':>18}{'tokenizing':>20}")
            print(
                f"{'tokenizer':<10}{'workers':>8}{'seconds':>10}{'MB/s':>8}"
                f"{'seconds':>12}{'MB/s':>8}{'CPU s':>10}"
            )
            for tokenizer in (f"file:{trained.tokenizer_path}", "gpt2"):
                bench(source, tokenizer, args.workers, args.rounds, root / key, megabytes)
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
