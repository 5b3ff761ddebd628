"""The GGUF export checked by a real client: llama.cpp, through llama-cpp-python.

    uv run --with llama-cpp-python python bench/gguf_check.py            # trains tiny runs
    uv run --with llama-cpp-python python bench/gguf_check.py --run runs/small

    # or with a libllama.so you built (cmake, target `llama`) and llama-cpp-python's
    # Python sources (its sdist's llama_cpp/ folder, plus diskcache) on PYTHONPATH:
    PYTHONPATH=py LLAMA_CPP_LIB_PATH=build/bin uv run python bench/gguf_check.py

llama-cpp-python builds llama.cpp from source when it installs (minutes), so
this is not part of the test suite (tests/train/test_train_gguf_llama_cpp.py
runs it when `llama_cpp` is installed). For each run, it exports GGUF files,
loads them in llama.cpp, and compares llama.cpp's greedy continuation of a
prompt with slm's, token for token. f32 must match exactly; for f16 and q8_0
it reports how many of the tokens agree (rounding may change a close choice).

Then the chat path: llama.cpp's chat completion (`create_chat_completion`,
greedy) renders a conversation with the file's own `tokenizer.chat_template`
and stops where the file says a reply ends; its reply must equal slm's greedy
reply to the same conversation (slm_tokenizer.chat.render_conversation, cut
at <|im_end|>). A run that is not a chat run is checked as one: the same
weights in a copy whose config.json says it is (its tokenizer must have the
ChatML markers, as every tokenizer slm trains does).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from slm_model import generate
from slm_tokenizer.chat import has_chat_tokens, render_conversation
from slm_train import Run, TrainConfig, export_gguf, reply_ends, train

PROMPT = "The cat sat on the"
# For llama.cpp's tokenizer: contractions, digits, spaces, newlines, accents, emoji, specials.
SAMPLE = "He's   here,\n\n  isn't he? 2026 cafés \u4e2d\u6587 \U0001f600<|endoftext|>Next  "
CONVERSATION = [
    {"role": "system", "content": "You are a small model."},
    {"role": "user", "content": "The cat sat on the"},
]
WORDS = "the cat sat on a mat and the dog ran to the park while birds sang in old trees".split()  # noqa: SIM905


def tiny_run(folder: Path, name: str, preset: str, **model) -> Run:
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
        out_dir=str(folder / name),
        preset=preset,
        model={"block_size": 64, **model},
        batch_size=8,
        max_steps=60,
        warmup_steps=5,
        eval_interval=30,
        learning_rate=3e-3,
        precision="fp32",
    )
    return Run(train(config).run_dir)


def llama_cpp_greedy(
    path: Path, prompt_ids: list[int], n: int, n_ctx: int, text: str
) -> tuple[list[int], np.ndarray, list[int]]:
    """llama.cpp's greedy continuation (the argmax of its logits, one token at a time),
    its logits after the prompt, and its own tokenization of a text."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=2, logits_all=True, verbose=False)
    ids = llm.tokenize(text.encode(), add_bos=False, special=True)
    llm.eval(prompt_ids)
    first = np.array(llm.scores[llm.n_tokens - 1])
    out = []
    for _ in range(n):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(token)
        llm.eval([token])
    return out, first, ids


def check(run: Run, folder: Path, n: int = 20, text: str = PROMPT) -> dict[str, tuple[int, int]]:
    """{dtype: (tokens that agree with slm, n)} for one run."""
    tokenizer = run.tokenizer()
    prompt = tokenizer.encode(text)
    model = run.load_model()
    with torch.no_grad():
        ours = generate(model, prompt, n, temperature=0)[0, len(prompt) :].tolist()
        our_logits = model(torch.tensor([prompt]))[0, -1].numpy()
    results = {}
    for dtype in ("f32", "f16", "q8_0"):
        path = export_gguf(run, folder / f"{run.path.name}-{dtype}.gguf", dtype=dtype, force=True)
        theirs, logits, ids = llama_cpp_greedy(path, prompt, n, model.config.block_size, SAMPLE)
        same_ids = ids == tokenizer.encode(SAMPLE, allowed_special="all")
        gap = float(np.abs(logits - our_logits).max())
        agree = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), n)
        results[dtype] = (agree, n)
        name = run.path.name
        print(f"{name:12s} {dtype:5s} first {agree}/{n} tokens agree, max |logit gap| {gap:.1e}")
        print(f"{'':12s} llama.cpp's tokenizer gives slm's ids: {same_ids}")
        if dtype == "f32":
            print(f"  slm:       {tokenizer.decode(ours)!r}")
            print(f"  llama.cpp: {tokenizer.decode(theirs)!r}")
    return results


def as_chat_run(run: Run, folder: Path) -> Run | None:
    """`run` if it is a chat run, else a copy of it that says it is (None without markers)."""
    if run.config.get("prompt_format") == "chatml":
        return run
    tokenizer = run.tokenizer()
    if not has_chat_tokens(tokenizer):
        return None
    copy = Run.create(
        folder / f"{run.path.name}-as-chat",
        model_config=run.model_config,
        train_config=run.config["train"],
        tokenizer_file=run.path / "tokenizer.json",
        tokenizer_info=run.config["tokenizer"],
        data_info=run.config["data"],
        force=True,
        extra={"kind": "chat", "prompt_format": "chatml"},
    )
    shutil.copytree(run.checkpoint().directory, copy.path / "best")
    return copy


def check_chat(run: Run, folder: Path, n: int = 20) -> bool:
    """Whether llama.cpp's greedy chat completion equals slm's greedy reply (f32)."""
    from llama_cpp import Llama

    tokenizer = run.tokenizer()
    prompt, _ = render_conversation(tokenizer, CONVERSATION, add_generation_prompt=True)
    model = run.load_model()
    n = min(n, model.config.block_size - len(prompt))
    ends = reply_ends(tokenizer, "chatml")
    with torch.no_grad():
        reply = generate(model, prompt, n, temperature=0, eos_id=ends[0])[0, len(prompt) :]
    reply = reply.tolist()
    cut = min((reply.index(end) for end in ends if end in reply), default=len(reply))
    # llama-cpp-python drops the bytes of a character cut off at the limit; so does this.
    ours = tokenizer.decode_bytes(reply[:cut]).decode("utf-8", errors="ignore")
    path = export_gguf(run, folder / f"{run.path.name}-chat.gguf", force=True)
    llm = Llama(model_path=str(path), n_ctx=model.config.block_size, n_threads=2, verbose=False)
    response = llm.create_chat_completion(
        CONVERSATION, temperature=0.0, top_k=1, repeat_penalty=1.0, max_tokens=n
    )
    theirs = response["choices"][0]["message"]["content"]
    ended = "ended" if cut < len(reply) else f"ran to the {n}-token limit"
    print(f"{run.path.name:12s} chat  the replies agree: {ours == theirs} (slm's {ended})")
    print(f"  slm:       {ours!r}")
    print(f"  llama.cpp: {theirs!r} (finish_reason {response['choices'][0]['finish_reason']})")
    return ours == theirs


def require_llama_cpp() -> None:
    """Stop before any training when llama-cpp-python is missing, saying how to get it."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise SystemExit(
            "error: llama-cpp-python is not installed; run this as "
            "`uv run --with llama-cpp-python python bench/gguf_check.py` (it builds llama.cpp, "
            "which takes minutes)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, action="append", help="Runs to check (default: tiny).")
    parser.add_argument("--prompt", default=PROMPT, help="The text to continue.")
    args = parser.parse_args()
    require_llama_cpp()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        runs = (
            [Run(r) for r in args.run]
            if args.run
            else [
                tiny_run(folder, "gpt2", "tiny"),
                tiny_run(folder, "llama", "llama-tiny"),
                tiny_run(folder, "qwen3", "llama-tiny", qk_norm=True),
            ]
        )
        failures = [
            run.path for run in runs if check(run, folder, text=args.prompt)["f32"][0] != 20
        ]
        chat_failures = []
        for run in runs:
            chat = as_chat_run(run, folder)
            if chat is None:
                print(f"{run.path.name:12s} chat  skipped: its tokenizer has no ChatML markers")
            elif not check_chat(chat, folder):
                chat_failures.append(run.path)
    if failures:
        raise SystemExit(f"llama.cpp's f32 continuation differs from slm's for {failures}")
    if chat_failures:
        raise SystemExit(f"llama.cpp's chat reply differs from slm's for {chat_failures}")
    print("f32: llama.cpp's greedy continuation and chat reply equal slm's for every run")


if __name__ == "__main__":
    main()
