"""Quantized inference: size, perplexity, greedy agreement and speed of int8/int4 against bf16.

    uv run --extra quantize python bench/quantize.py [--run runs/chat-base] [--rounds 3]
        [--new-tokens 32] [--prompts 100] [--threads 2] [--no-135m]

Issue 26. For the default run (runs/chat-base, else runs/chat; --run) and a
random model of SmolLM2-135M's shape (bench/import_hf.py's sizes, GPT-2's
vocabulary size rounded to 49,152 as SmolLM2's), each of bf16, int8 and int4
(slm_model.quantize, torchao's weight-only kernels) reports:

- MB: the parameters as stored (with tied embeddings the quantized head is a
  copy beside the bf16 embedding, so int8/int4 hold the embedding twice);
- ppl: perplexity on the run's validation split (its prepared corpus), whole
  windows of 256 tokens (for the random model: the same tokens, so only the
  ratio to bf16 means anything);
- agree: greedy agreement with bf16 over `--prompts` prompts of 16 validation
  tokens: each prompt's continuation of `--new-tokens` tokens is compared with
  bf16's, and agreement is the share of tokens before the first that differs
  (after one differs the two texts part, so later matches are not counted);
- tok/s at batch 1 and batch 8 (greedy, KV cache, after a 16-token prompt),
  medians of `--rounds`, the variants measured in turn (A B C A B C ...), and
  each as a ratio to bf16;
- GB/s: batch-1 tokens/s times the bytes of Linear weights each token reads
  (the head included, the embedding lookup not): decoding one token reads
  every weight once, so this is the memory bandwidth the kernels achieve.

The anchor is llama.cpp (llama-cpp-python) on the run's GGUF in f16, q8_0 and
q4_0, batch 1, same prompt and length; its row is absent, with the reason,
when llama_cpp cannot be imported. Load average is printed beside the numbers.

Measured on the 2-core AMD EPYC VM (torch 2.15 CPU, torchao 0.18), 2026-12-08,
`--rounds 7`, nothing else running (load average printed per table):

    runs/chat-base (load 0.5)
             MB     ppl   agree   tok/s b1 (x bf16)   tok/s b8 (x bf16)   GB/s b1
    bf16      8.4   24.95   1.000      880.1 (1.00x)     4686.3 (1.00x)     7.38
    int8      6.4   24.97   0.780      602.9 (0.69x)     3218.3 (0.69x)     2.57
    int4      4.3   25.49   0.245      937.9 (1.07x)     4508.9 (0.96x)     2.09

    random SmolLM2-135M shape (load 1.5)
             MB     ppl   agree   tok/s b1 (x bf16)   tok/s b8 (x bf16)   GB/s b1
    bf16    269.0 57149.91   1.000       65.2 (1.00x)      250.1 (1.00x)    17.54
    int8    192.2 57151.71   0.919       39.6 (0.61x)      152.7 (0.61x)     5.36
    int4    131.5 56511.25   0.336       91.7 (1.41x)      297.7 (1.19x)     6.86

The llama.cpp anchor, from an earlier run on a busy machine (load 2.6; slm's
bf16 then ran 245.5 tokens/s on the default run) with llama-cpp-python 0.3.36
built from source in a helper's environment (it is not in the lock):
f16 261.0 tokens/s b1 (1.06x slm bf16), q8_0 453.3 (1.85x), q4_0 1463.4 (5.96x).
Ratios measured under load moved several-fold between runs (int4 1.42x to
1.57x, int8 0.17x to 1.18x at batch 1); perplexity and agreement never moved.

What it says. int8 keeps perplexity (+0.08 % on the run) but is not faster:
torchao 0.18's int8 weight-only layer converts the whole int8 weight to bf16 on
every call (it leaves fusing that to torch.compile), so eager int8 reads 1 byte
and writes and reads 2 more per weight. Compiled, a stack of eight 2048x2048
int8 layers at batch 1 ran 1.35x bf16 (after a 27 s compile, load average 8):
compiling generation's decode step is what int8 still needs. int4 goes through
PyTorch's int4 CPU kernel, which reads the packed weights directly: 1.4x
bf16 at batch 1 on the 135M shape from a quarter of the bytes, so it runs well under bf16's
bandwidth (its unpacking costs compute), and costs perplexity (+2.2 % on the
small run, whose rows are two groups of 128). The default run is so small (4 M
parameters) that slm's batch-1 step is mostly Python's overhead, not memory;
llama.cpp's q4_0 is 6x slm's bf16 there. The random model's perplexity is near
its vocabulary size by construction; only its ratios mean anything.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

VARIANTS = ("bf16", "int8", "int4")
SMOLLM2_135M = {
    "vocab_size": 49152, "block_size": 2048, "n_layer": 30, "n_embd": 576, "n_head": 9,
    "n_kv_head": 3, "intermediate_size": 1536, "bias": False, "tie_weights": True,
    "pos": "rope", "norm": "rmsnorm", "mlp": "swiglu", "rope_theta": 100000.0,
}  # fmt: skip
PROMPT = 16


def variants(model: nn.Module) -> dict[str, nn.Module]:
    from slm_model import quantize

    bf16 = copy.deepcopy(model).to(torch.bfloat16).eval()
    return {"bf16": bf16, **{how: quantize(copy.deepcopy(model), how) for how in VARIANTS[1:]}}


def linear_bytes(model: nn.Module) -> int:
    from slm_model.quantize import weight_bytes

    return sum(weight_bytes(m) for m in model.modules() if isinstance(m, nn.Linear))


@torch.no_grad()
def perplexity(model: nn.Module, tokens: torch.Tensor, windows: int, width: int = 256) -> float:
    windows = min(windows, (len(tokens) - 1) // width)
    inputs = tokens[: windows * width].view(windows, width)
    targets = tokens[1 : windows * width + 1].view(windows, width)
    logits = model(inputs).float()
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    return float(loss.exp())


def prompts(tokens: torch.Tensor, count: int) -> torch.Tensor:
    step = (len(tokens) - PROMPT) // count
    return torch.stack([tokens[i * step : i * step + PROMPT] for i in range(count)])


@torch.no_grad()
def agreement(reference: torch.Tensor, other: torch.Tensor) -> float:
    """Mean share of each row's tokens before the first that differs from `reference`'s."""
    same = (reference == other).int().cumprod(dim=1)
    return float(same.sum(dim=1).float().mean() / reference.shape[1])


def rates(models: dict[str, nn.Module], starts: torch.Tensor, new: int, rounds: int):
    from slm_model import generate

    seen: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():  # warm-up: first calls allocate and pick kernels
        generate(model, starts, 2, temperature=0)
    for _ in range(rounds):
        for name, model in models.items():
            begin = time.perf_counter()
            generate(model, starts, new, temperature=0)
            seen[name].append(new * len(starts) / (time.perf_counter() - begin))
    return {name: statistics.median(values) for name, values in seen.items()}


def measure(title: str, model: nn.Module, tokens: torch.Tensor, args) -> float:
    """Print the table for `model`; return its bf16 tokens/s at batch 1."""
    from slm_model import generate
    from slm_model.quantize import weight_bytes

    models = variants(model)
    tokens = tokens.clamp(max=model.config.vocab_size - 1)
    windows = args.windows if model.config.n_layer < 10 else max(1, args.windows // 4)
    starts = prompts(tokens, args.prompts)
    greedy = {
        name: generate(m, starts, args.new_tokens, temperature=0)[:, PROMPT:]
        for name, m in models.items()
    }  # (also the warm-up before the timed rounds)
    one = rates(models, starts[:1], args.new_tokens, args.rounds)
    eight = rates(models, starts[:8], args.new_tokens, args.rounds)
    print(f"\n{title} (load {os.getloadavg()[0]:.1f})")
    print("         MB     ppl   agree   tok/s b1 (x bf16)   tok/s b8 (x bf16)   GB/s b1")
    for name, m in models.items():
        size = weight_bytes(m) / 1e6
        print(
            f"{name:5} {size:7.1f} {perplexity(m, tokens, windows):7.2f} "
            f"{agreement(greedy['bf16'], greedy[name]):7.3f} "
            f"{one[name]:10.1f} ({one[name] / one['bf16']:4.2f}x) "
            f"{eight[name]:10.1f} ({eight[name] / eight['bf16']:4.2f}x) "
            f"{one[name] * linear_bytes(m) / 1e9:8.2f}"
        )
    return one["bf16"]


def llama_cpp_rows(run, tokens: torch.Tensor, args, slm_bf16: float) -> None:
    """llama.cpp's batch-1 tokens/s on the run's GGUF files, as ratios to slm's bf16."""
    try:
        import llama_cpp
    except ImportError as error:
        print(f"llama.cpp row absent: llama_cpp does not import ({error})")
        return
    from slm_train import export_gguf

    prompt = tokens[:PROMPT].tolist()
    with tempfile.TemporaryDirectory() as folder:
        for dtype in ("f16", "q8_0", "q4_0"):
            path = export_gguf(run, Path(folder) / f"{dtype}.gguf", dtype=dtype)
            llm = llama_cpp.Llama(str(path), n_ctx=256, n_threads=args.threads, verbose=False)
            seen = []
            for _ in range(args.rounds):
                llm.reset()
                begin = time.perf_counter()
                for count, _token in enumerate(llm.generate(prompt, temp=0), start=1):
                    if count == args.new_tokens:
                        break
                seen.append(args.new_tokens / (time.perf_counter() - begin))
            rate = statistics.median(seen)
            print(f"llama.cpp {dtype:5} {rate:8.1f} tok/s b1 ({rate / slm_bf16:4.2f}x slm bf16)")


def default_run() -> Path:
    for name in ("runs/chat-base", "runs/chat"):
        if Path(name, "config.json").is_file():
            return Path(name)
    raise SystemExit("no runs/chat-base or runs/chat here; train one (slm-cli train) or --run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--windows", type=int, default=16, help="256-token windows for ppl")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-135m", dest="big", action="store_false")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from slm_model import GPTConfig, GPTModel
    from slm_train import Run, load_prepared

    run = Run(args.run or default_run())
    tokens = torch.as_tensor(load_prepared(run.config["data"]["dir"]).tokens("val").astype("int64"))
    print(
        f"{platform.processor() or platform.machine()}, {args.threads} threads, torch "
        f"{torch.__version__}; {len(tokens):,} validation tokens of {run.path}"
    )
    bf16 = measure(f"{run.path}", run.load_model(), tokens, args)
    llama_cpp_rows(run, tokens, args, bf16)
    if args.big:
        torch.manual_seed(0)
        measure("random SmolLM2-135M shape", GPTModel(GPTConfig(**SMOLLM2_135M)), tokens, args)


if __name__ == "__main__":
    main()
