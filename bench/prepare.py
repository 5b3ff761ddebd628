"""Benchmark `slm-cli prepare` as a user runs it: 1 worker against 2, and against raw encoding.

    uv run python bench/prepare.py [--rounds 3] [--megabytes 64]

Issue 21's goals, on 64 MB of varied text:
1. `--workers 2` at least 1.6x the throughput of `--workers 1` (wall time);
2. `--workers 1` at least 60 % of the speed of the tokenizer alone: tiktoken's
   `encode_ordinary` for gpt2, slm's `BPETokenizer.encode_ordinary` for a
   trained 4,096-token BPE (given as a file, so that only preparation is timed);
3. the same files for any number of workers.

Each prepare is the whole command in a fresh process (`slm-cli prepare`, a new
output folder each time): the interpreter starting, imports, building and
saving the tokenizer, reading, splitting into documents and into train and
validation, starting the pool, encoding, writing, meta.json. The raw speed is
`encode_ordinary` on the same documents in this process, single thread, with a
tokenizer built before the clock starts (and a cold cache for slm's). MB/s is of
the documents' UTF-8 text, the same number for all.

The corpus is a folder, so that both readers run (`.txt` files of documents
separated by `<|endoftext|>` lines, and JSONL): Python's library sources (code,
many rare words: 56 % of the bytes), the built-in Bible text (simple English
prose, one chapter per document) and generated stories in JSONL (sentences of
that Bible drawn at random, a few to forty per record, like TinyStories).

Python writes its bytecode cache as on a user's machine, and one untimed run
per tokenizer fills it first: a run that compiled slm, typer, rich and the
built-in Bible's 6 MB module again each time would spend a second on that.

The machine may be shared and noisy, so the cases run in turn (A B A B ...) for
`--rounds` rounds and the medians are reported; a pure CPU loop in 1 and 2
processes shows the speed-up the machine allowed at the time, and the load
average is printed before and after. The CPU seconds (the command and its
workers; this process for raw encoding) vary less with the others' load: on a
quiet machine, one worker's wall time is about its CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from slm_tokenizer import RESERVED_TOKENS, BPETokenizer
from slm_tokenizer.gpt2 import tiktoken_gpt2
from slm_train.data.sources import bible_chapters, resolve

sys.path.insert(0, str(Path(__file__).parent))
from tokenizer import machine, python_sources

SEPARATOR = "\n<|endoftext|>\n"


def varied_corpus(folder: Path, megabytes: float) -> Path:
    """code.txt, bible.txt and stories.jsonl, `megabytes` in all (see the module's docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    total = int(megabytes * 1e6)
    chapters = list(bible_chapters())
    (folder / "bible.txt").write_text(SEPARATOR.join(chapters), encoding="utf-8")
    code = SEPARATOR.join(python_sources(int(total * 0.56)))
    (folder / "code.txt").write_text(code, encoding="utf-8")
    left = total - sum(path.stat().st_size for path in folder.iterdir())
    sentences = [s for c in chapters for s in re.split(r"(?<=[.!?]) ", c) if len(s) > 20]
    generator, size = random.Random(0), 0
    with open(folder / "stories.jsonl", "w", encoding="utf-8") as file:
        while size < left:
            story = " ".join(generator.choices(sentences, k=generator.randint(3, 40)))
            line = json.dumps({"id": size, "text": story}) + "\n"
            file.write(line)
            size += len(line.encode("utf-8"))
    return folder


def trained_tokenizer(documents: list[str], path: Path) -> Path:
    """A 4,096-token BPE trained on every 16th document (training is not what is timed)."""
    tokenizer = BPETokenizer.train(documents[::16], 4096, RESERVED_TOKENS)
    tokenizer.save(path)
    return path


def slm_cli() -> list[str]:
    """The installed `slm-cli` script, as a user runs it."""
    script = Path(sys.executable).parent / "slm-cli"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "slm_cli.main"]


def timed_prepare(corpus: Path, tokenizer: str, workers: int, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of `slm-cli prepare` into a fresh folder."""
    command = [*slm_cli(), "prepare", "--data", str(corpus), "--tokenizer", tokenizer]
    command += ["--workers", str(workers), "--out", str(out)]
    # Python may write its bytecode cache, as on a user's machine (where the first run
    # writes it); without it every run would compile slm, typer and rich again (~0.7 s).
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start, cpu = time.perf_counter(), children_cpu()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=environment)
    return time.perf_counter() - start, children_cpu() - cpu


def children_cpu() -> float:
    """CPU seconds of this process's finished children: the command and its workers."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def warm_up(root: Path, tokenizers: list[str]) -> None:
    """One untimed run of each tokenizer on a small corpus: bytecode and disk caches filled."""
    small = root / "warm-up.txt"
    small.write_text(SEPARATOR.join(bible_chapters()), encoding="utf-8")
    for index, tokenizer in enumerate(tokenizers):
        timed_prepare(small, tokenizer, 2, root / f"warm-up-{index}")


def timed_encode(make: Callable[[], Callable[[str], list[int]]], documents: list[str]):
    """Wall and CPU seconds to encode every document with a fresh encoder (made before)."""
    encode = make()
    start, cpu = time.perf_counter(), time.process_time()
    for text in documents:
        encode(text)
    return time.perf_counter() - start, time.process_time() - cpu


def same_files(one: Path, two: Path) -> bool:
    names = ("train.bin", "val.bin", "tokenizer.json", "meta.json")
    return all((one / name).read_bytes() == (two / name).read_bytes() for name in names)


def bench(name: str, spec: str, raw: str, make, corpus: Path, documents: list[str], args, root):
    """Interleaved rounds of prepare with 1 and 2 workers and of raw encoding; prints medians."""
    one, two, folder = "prepare --workers 1", "prepare --workers 2", root / name.replace(":", "-")
    times: dict[str, list[tuple[float, float]]] = {one: [], two: [], raw: []}
    for round_ in range(args.rounds):
        for workers, case in ((1, one), (2, two)):
            times[case].append(timed_prepare(corpus, spec, workers, folder / f"{workers}-{round_}"))
        times[raw].append(timed_encode(make, documents))
        for workers in (1, 2) if round_ > 0 else ():  # round 0's files are compared below
            shutil.rmtree(folder / f"{workers}-{round_}")  # keep the disk use small
    identical = same_files(folder / "1-0", folder / "2-0")
    wall = {case: statistics.median(t for t, _ in runs) for case, runs in times.items()}
    cpu = {case: statistics.median(c for _, c in runs) for case, runs in times.items()}
    for case in times:
        megabytes_per_second = args.megabytes / wall[case]
        print(
            f"{name:<10}{case:<32}{wall[case]:>8.2f}{megabytes_per_second:>8.2f}{cpu[case]:>8.2f}"
        )
    print(
        f"{name}: --workers 2 is {wall[one] / wall[two]:.2f}x --workers 1 (goal 1.6x); "
        f"--workers 1 runs at {wall[raw] / wall[one]:.2f} of the speed of {raw} (goal 0.6; "
        f"{cpu[raw] / cpu[one]:.2f} in CPU time); files "
        f"{'identical' if identical else 'DIFFER'} for 1 and 2 workers\n"
    )
    return identical


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def ceiling(rounds: int) -> None:
    """The speed-up the machine allows now: a pure CPU loop split over 1 and 2 processes."""
    times: dict[int, list[float]] = {1: [], 2: []}
    n = 20_000_000
    for _ in range(rounds):
        for count in times:
            start = time.perf_counter()
            with ProcessPoolExecutor(count) as pool:
                list(pool.map(spin, [n // count] * count))
            times[count].append(time.perf_counter() - start)
    ratio = statistics.median(times[1]) / statistics.median(times[2])
    print(f"machine check: a pure CPU loop runs {ratio:.2f}x faster in 2 processes than 1")


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def load(path: Path) -> Callable[[str], list[int]]:
    return BPETokenizer.load(path).encode_ordinary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--megabytes", type=float, default=64, help="size of the corpus")
    parser.add_argument("--tokenizer", choices=["gpt2", "bpe", "both"], default="both")
    args = parser.parse_args()
    print(f"{machine()}; load average before: {load_average()}")
    ceiling(args.rounds)
    with tempfile.TemporaryDirectory(prefix="slm-bench-prepare-") as tmp:
        root = Path(tmp)
        corpus = varied_corpus(root / "varied", args.megabytes)
        documents = list(resolve(str(corpus)).documents())
        args.megabytes = sum(len(text.encode("utf-8")) for text in documents) / 1e6
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f}" for p in corpus.iterdir())
        print(
            f"corpus: {args.megabytes:.1f} MB of text in {len(documents):,} documents "
            f"({sizes} MB); {args.rounds} rounds, A B A B ..."
        )
        print(f"{'tokenizer':<10}{'case':<32}{'seconds':>8}{'MB/s':>8}{'CPU s':>8}")
        cases = {}
        if args.tokenizer in ("gpt2", "both"):
            make = lambda: tiktoken_gpt2().encode_ordinary  # noqa: E731
            cases["gpt2"] = ("gpt2", "tiktoken encode_ordinary", make)
        if args.tokenizer in ("bpe", "both"):
            path = trained_tokenizer(documents, root / "bpe-4096.json")
            cases["bpe:4096"] = (str(path), "BPETokenizer.encode_ordinary", lambda: load(path))
        warm_up(root, [spec for spec, _, _ in cases.values()])
        identical = True
        for name, (spec, raw, make) in cases.items():
            identical &= bench(name, spec, raw, make, corpus, documents, args, root)
    print(f"load average after: {load_average()}")
    if not identical:
        sys.exit("the token files differ between 1 and 2 workers")


if __name__ == "__main__":
    main()
