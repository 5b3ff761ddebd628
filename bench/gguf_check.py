"""The GGUF export checked by a real client: llama.cpp, through llama-cpp-python.

    uv run --with llama-cpp-python python bench/gguf_check.py            # trains tiny runs
    uv run --with llama-cpp-python python bench/gguf_check.py --run runs/small

llama-cpp-python builds llama.cpp from source when it installs (minutes), so
this is not part of the test suite (tests/train/test_train_gguf_llama_cpp.py
runs it when `llama_cpp` is installed). For each run, it exports GGUF files,
loads them in llama.cpp, and compares llama.cpp's greedy continuation of a
prompt with slm's, token for token. f32 must match exactly; for f16 and q8_0
it reports how many of the tokens agree (rounding may change a close choice).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from slm_model import generate
from slm_train import Run, TrainConfig, export_gguf, train

PROMPT = "The cat sat on the"
WORDS = "the cat sat on a mat and the dog ran to the park while birds sang in old trees".split()  # noqa: SIM905


def tiny_run(folder: Path, preset: str) -> Run:
    """A few seconds of training, so that the continuation is not noise."""
    import random

    rng = random.Random(0)
    stories = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))).capitalize() + "."
        for _ in range(200)
    ]
    corpus = folder / "corpus.txt"
    corpus.write_text("\n<|endoftext|>\n".join(stories) + "\n")
    config = TrainConfig(
        data=str(corpus),
        tokenizer="bpe:400",
        data_dir=str(folder / "data"),
        out_dir=str(folder / preset),
        preset=preset,
        model={"block_size": 64},
        batch_size=8,
        max_steps=60,
        warmup_steps=5,
        eval_interval=30,
        learning_rate=3e-3,
        precision="fp32",
    )
    return Run(train(config).run_dir)


def llama_cpp_greedy(path: Path, prompt_ids: list[int], n: int, n_ctx: int) -> list[int]:
    """llama.cpp's greedy continuation: the argmax of its logits, one token at a time."""
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=2, logits_all=False, verbose=False)
    llm.eval(prompt_ids)
    out = []
    for _ in range(n):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(token)
        llm.eval([token])
    return out


def check(run: Run, folder: Path, n: int = 20) -> dict[str, tuple[int, int]]:
    """{dtype: (tokens that agree with slm, n)} for one run."""
    tokenizer = run.tokenizer()
    prompt = tokenizer.encode(PROMPT)
    model = run.load_model()
    with torch.no_grad():
        ours = generate(model, prompt, n, temperature=0)[0, len(prompt) :].tolist()
    results = {}
    for dtype in ("f32", "f16", "q8_0"):
        path = export_gguf(run, folder / f"{run.path.name}-{dtype}.gguf", dtype=dtype, force=True)
        theirs = llama_cpp_greedy(path, prompt, n, model.config.block_size)
        agree = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), n)
        results[dtype] = (agree, n)
        print(f"{run.path.name:12s} {dtype:5s} first {agree}/{n} tokens agree")
        if dtype == "f32":
            print(f"  slm:       {tokenizer.decode(ours)!r}")
            print(f"  llama.cpp: {tokenizer.decode(theirs)!r}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, action="append", help="Runs to check (default: tiny).")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        runs = (
            [Run(r) for r in args.run]
            if args.run
            else [tiny_run(folder, preset) for preset in ("tiny", "llama-tiny")]
        )
        failures = [run.path for run in runs if check(run, folder)["f32"][0] != 20]
    if failures:
        raise SystemExit(f"llama.cpp's f32 continuation differs from slm's for {failures}")
    print("f32: llama.cpp's greedy continuation equals slm's for every run")


if __name__ == "__main__":
    main()
