"""Benchmark a real-sized small model in slm: the import, and generation against transformers.

    uv run python bench/import_hf.py [--rounds 3] [--new-tokens 64] [--threads 2]

Issue 22: a learner imports SmolLM2-135M-Instruct and talks to it on a laptop,
so this script builds a model of that shape (Llama: 30 layers, 576 wide, 9
query and 3 key-value heads, 1,536-wide MLP, tied embeddings, RoPE base
100,000) with random weights, saves it with transformers' `save_pretrained`
(safetensors) beside GPT-2's tokenizer.json, and measures, in one run:

1. `import_hf(folder, out)`: reading the config, tokenizer and safetensors,
   converting the weights, and writing the run (a fresh folder each round);
2. greedy generation, tokens/s: slm's `generate` (KV cache) on the imported
   run against transformers' `generate` (its cache) on the same weights, from
   the same prompt, in turn (A B A B ...); the outputs are checked equal.

No download and no real weights: the time depends on the shape, not the
values. GPT-2's tokenizer has 50,257 tokens where SmolLM2's has 49,152, so the
model is 0.6 M parameters larger than SmolLM2-135M. Medians of `--rounds`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

SMOLLM2_135M = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "max_position_embeddings": 2048,
    "rope_theta": 100000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
}


def save_model(folder: Path) -> int:
    """A random SmolLM2-135M-shaped Llama with GPT-2's tokenizer in `folder`; its parameters."""
    from slm_tokenizer import gpt2
    from slm_tokenizer.hf_format import to_hf_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = gpt2()
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        bos_token_id=tokenizer.eot_id,
        eos_token_id=tokenizer.eot_id,
        **SMOLLM2_135M,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    (folder / "tokenizer.json").write_text(json.dumps(to_hf_tokenizer(tokenizer)))
    return sum(p.numel() for p in model.parameters())


def time_import(folder: Path, root: Path, rounds: int) -> tuple[list[float], Path]:
    from slm_train import import_hf

    seconds = []
    for index in range(rounds):
        out = root / f"run-{index}"
        start = time.perf_counter()
        import_hf(folder, out)
        seconds.append(time.perf_counter() - start)
    return seconds, out


def generation_rates(folder: Path, run: Path, prompt: list[int], new: int, rounds: int):
    """Tokens/s of slm's and transformers' greedy generation, rounds taken in turn."""
    from slm_model import generate
    from slm_train import Run
    from transformers import LlamaForCausalLM

    ours = Run(run).load_model().eval()
    theirs = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    ids = torch.tensor([prompt])
    rates: dict[str, list[float]] = {"slm": [], "transformers": []}
    outputs = {}
    with torch.no_grad():
        for _ in range(rounds):
            for name in rates:
                start = time.perf_counter()
                if name == "slm":
                    out = generate(ours, ids, new, temperature=0)
                else:
                    out = theirs.generate(
                        ids, max_new_tokens=new, min_new_tokens=new, do_sample=False
                    )
                rates[name].append(new / (time.perf_counter() - start))
                outputs[name] = out[0, len(prompt) :].tolist()
    return rates, outputs["slm"] == outputs["transformers"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging

    logging.disable_progress_bar()  # its bars would interleave with the numbers
    print(
        f"{platform.processor() or platform.machine()}, {args.threads} threads, torch "
        f"{torch.__version__}, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        folder = root / "smollm2-135m-shaped"
        parameters = save_model(folder)
        size = sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 1e6
        print(f"model: {parameters / 1e6:.1f} M parameters, {size:.0f} MB of safetensors")
        seconds, run = time_import(folder, root, args.rounds)
        print(f"import_hf: {statistics.median(seconds):.2f} s (median of {args.rounds})")
        prompt = list(range(1000, 1032))
        rates, same = generation_rates(folder, run, prompt, args.new_tokens, args.rounds)
    ours, theirs = (statistics.median(rates[name]) for name in ("slm", "transformers"))
    print(f"greedy generation of {args.new_tokens} tokens after a 32-token prompt:")
    print(f"  slm generate (KV cache)          {ours:7.1f} tokens/s")
    print(f"  transformers generate (cache)    {theirs:7.1f} tokens/s")
    print(f"  slm / transformers: {ours / theirs:.2f}x; the same tokens: {same}")


if __name__ == "__main__":
    main()
