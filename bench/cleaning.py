"""What cleaning (slm_train/data/cleaning.py) costs, next to what tokenizing costs.

    uv run python bench/cleaning.py [--megabytes 64] [--rounds 3]

Cleaning runs in prepare's main process, in front of the tokenizer workers, on
every document, so it must cost little next to encoding. On about 64 MB of
varied text (Python's standard library and the built-in corpus's chapters,
each chapter repeated with a number in front and, for a third of them,
non-ASCII characters at the end), in turn and with medians (the machine may
be shared):
1. tiktoken's GPT-2 encode of every document (the reference);
2. the default cleaning, and each of its cheap steps alone;
3. near-duplicate removal (off by default) on the first few MB: its cost per
   document, on top of the default steps.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
from pathlib import Path

from slm_tokenizer.gpt2 import tiktoken_gpt2
from slm_train import Cleaning
from slm_train.data.cleaning import Cleaner, normalize, text_fraction
from slm_train.data.sources import bible_chapters

sys.path.insert(0, str(Path(__file__).parent))
from tokenizer import interleaved, python_sources, report


def documents(megabytes: float) -> list[str]:
    """Half Python sources, half chapters (varied by a number in front), in a fixed shuffle."""
    texts = python_sources(int(megabytes * 1e6 / 2))
    chapters = list(bible_chapters())
    size, i = sum(map(len, texts)), 0
    while size < megabytes * 1e6:
        texts.append(f"Copy {i}: {chapters[i % len(chapters)]}" + " Café naïve ✓." * (i % 3 == 0))
        size += len(texts[-1])
        i += 1
    random.Random(0).shuffle(texts)
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--near-megabytes", type=float, default=4)
    args = parser.parse_args()
    docs = documents(args.megabytes)
    megabytes = sum(len(text.encode()) for text in docs) / 1e6
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    print(f"# {len(docs):,} documents, {megabytes:.1f} MB; {machine}\n")
    encoder = tiktoken_gpt2()
    medians = interleaved(
        {
            "tiktoken gpt2 encode": lambda: [encoder.encode_ordinary(text) for text in docs],
            "cleaning (defaults)": lambda: list(Cleaner()(docs)),
            "normalize alone": lambda: [normalize(text) for text in docs],
            "text_fraction alone": lambda: [text_fraction(text) for text in docs],
            "exact dedup alone": lambda: list(Cleaner(_only_dedup)(docs)),
        },
        args.rounds,
    )
    report(medians, "tiktoken gpt2 encode", megabytes)
    near_dedup(docs, args.near_megabytes, args.rounds)


_only_dedup = Cleaning(normalize=False, min_chars=0, min_text_fraction=0)


def near_dedup(docs: list[str], megabytes: float, rounds: int) -> None:
    """The near-duplicate step's own cost: with it, less without it, per document."""
    head, size = [], 0
    for text in docs:
        if size >= megabytes * 1e6:
            break
        head.append(text)
        size += len(text.encode())
    cleaners: dict[str, Cleaner] = {}

    def run(name: str, settings: Cleaning) -> None:
        cleaners[name] = Cleaner(settings)
        list(cleaners[name](head))

    medians = interleaved(
        {
            "defaults": lambda: run("defaults", Cleaning()),
            "defaults + near_dedup 0.8": lambda: run("near", Cleaning(near_dedup=0.8)),
        },
        rounds,
    )
    report(medians, "defaults", size / 1e6)
    extra = medians["defaults + near_dedup 0.8"] - medians["defaults"]
    removed = cleaners["near"].report.near_duplicates.documents
    print(
        f"near-dedup: {extra * 1e6 / len(head):.0f} µs a document "
        f"({size / 1e6 / len(head) * 1e3:.1f} KB on average), {size / 1e6 / extra:.1f} MB/s; "
        f"{removed:,} of {len(head):,} documents removed as near-duplicates"
    )


if __name__ == "__main__":
    main()
