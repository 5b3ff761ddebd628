"""Benchmark slm-model against Hugging Face transformers' GPT-2 or Llama, in one run.

    uv run python bench/model.py            # the `small` preset, on CUDA if present
    uv run python bench/model.py --device cpu --preset small --batch-size 8
    uv run python bench/model.py --preset llama-small   # against transformers' Llama

Measures, each case in its own process (so peak memory is its own):
1. training-step throughput (tokens/s, forward + backward) of `GPTModel` and of
   `transformers.GPT2LMHeadModel` (or `LlamaForCausalLM` for the llama-* presets)
   built with the same configuration;
2. generation tokens/s for 256 new tokens with and without our KV cache;
3. greedy generation tokens/s against transformers' `generate` with its cache,
   from the same weights (the outputs are checked to be identical).
Each case runs in --rounds processes, alternating with the case it is compared
with, and keeps its best round. Peak memory is the process's peak
RSS on CPU, or peak allocated GPU memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch


def peak_memory_mib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build(kind: str, preset: str, device: str):
    """Our model or transformers' from one config, with identical weights.

    GPT-2 presets are compared with `GPT2LMHeadModel`, the `llama-*` presets
    with `LlamaForCausalLM`.
    """
    from slm_model import GPTModel, get_gpt_config

    config = get_gpt_config(preset)
    torch.manual_seed(0)
    ours = GPTModel(config)
    if kind == "ours":
        return ours.to(device), config
    if config.pos == "rope":
        from slm_model import to_llama_config
        from transformers import AutoConfig, AutoModelForCausalLM

        theirs = AutoModelForCausalLM.from_config(AutoConfig.for_model(**to_llama_config(config)))
        theirs.load_state_dict(ours.to_llama_state_dict())
        return theirs.to(device), config
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_config = GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.block_size,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    theirs = GPT2LMHeadModel(hf_config)
    theirs.load_state_dict(ours.to_gpt2_state_dict(), strict=False)
    return theirs.to(device), config


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def case_train(kind: str, preset: str, device: str, batch_size: int, steps: int) -> dict:
    model, config = build(kind, preset, device)
    model.train()
    generator = torch.Generator().manual_seed(0)
    idx = torch.randint(
        0, config.vocab_size, (batch_size, config.block_size + 1), generator=generator
    )
    x, y = idx[:, :-1].to(device), idx[:, 1:].to(device)

    def step() -> None:
        if kind == "ours":
            _, loss = model(x, y)
        else:
            loss = model(input_ids=x, labels=x).loss  # shifts the labels inside
        loss.backward()
        model.zero_grad(set_to_none=True)

    for _ in range(2):  # warm-up: allocator, kernels, lazy init
        step()
    times = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)  # robust to a noisy neighbour on a shared machine
    tokens = batch_size * config.block_size
    return {"tokens_per_s": tokens / seconds, "peak_mib": peak_memory_mib(device)}


def case_generate(
    kind: str, preset: str, device: str, new_tokens: int, use_cache: bool, repeat: int
) -> dict:
    from slm_model import generate

    model, _ = build(kind, preset, device)
    model.eval()
    prompt = torch.tensor([[0]], device=device)

    def run() -> torch.Tensor:
        if kind == "ours":
            return generate(model, prompt, new_tokens, temperature=0, use_cache=use_cache)
        return model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            use_cache=use_cache,
            pad_token_id=0,
        )

    times = []
    with torch.inference_mode():
        run()  # warm-up
        for _ in range(repeat):
            synchronize(device)
            start = time.perf_counter()
            output = run()
            synchronize(device)
            times.append(time.perf_counter() - start)
    seconds = min(times)
    return {
        "tokens_per_s": new_tokens / seconds,
        "peak_mib": peak_memory_mib(device),
        "tokens": output[0].tolist(),
    }


def run_case(args: argparse.Namespace, name: str, **options) -> dict:
    """Run one case in a fresh process and return its measurements."""
    command = [sys.executable, __file__, "--case", name, "--case-options", json.dumps(options)]
    command += ["--device", args.device, "--preset", args.preset, "--repeat", str(args.repeat)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"case {name} {options} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare(args: argparse.Namespace, name: str, cases: list[dict]) -> list[dict]:
    """Run the cases in turn, `--rounds` times, keeping each case's best round.

    Alternating the cases spreads a shared machine's slow spells over all of
    them instead of penalising whichever ran during one.
    """
    best: list[dict | None] = [None] * len(cases)
    for _ in range(args.rounds):
        for i, options in enumerate(cases):
            result = run_case(args, name, **options)
            if best[i] is None or result["tokens_per_s"] > best[i]["tokens_per_s"]:
                best[i] = result
    return best  # type: ignore[return-value]


def row(*cells: object) -> str:
    """One table line: a label column, then right-aligned numbers."""
    label, *numbers = cells
    return f"{label:<34}" + "".join(f"{cell:>14}" for cell in numbers)


def print_results(title: str, results: list[tuple[str, dict]]) -> None:
    """A table of tokens/s, each as a ratio to the first row, and peak memory."""
    print(title)
    print(row("model", "tokens/s", "ratio", "peak MiB"))
    baseline = results[0][1]["tokens_per_s"]
    for label, result in results:
        speed = result["tokens_per_s"]
        print(row(label, f"{speed:,.0f}", f"{speed / baseline:.2f}x", f"{result['peak_mib']:,.0f}"))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description="slm-model vs transformers GPT-2 / Llama")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=7, help="timed training steps (median kept)")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2, help="generations per process (best kept)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per case (best kept)")
    parser.add_argument("--skip-train", action="store_true", help="only the generation cases")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--case-options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:
        options = json.loads(args.case_options)
        function = {"train": case_train, "generate": case_generate}[args.case]
        if args.case == "generate":
            options["repeat"] = args.repeat
        print(json.dumps(function(preset=args.preset, device=args.device, **options)))
        return

    import transformers
    from slm_model import GPTModel, get_gpt_config

    config = get_gpt_config(args.preset)
    reference = "LlamaForCausalLM" if config.pos == "rope" else "GPT2LMHeadModel"
    with torch.device("meta"):
        parameters = GPTModel(config).num_parameters()
    device = torch.cuda.get_device_name() if args.device == "cuda" else platform.machine()
    threads = torch.get_num_threads()
    print(f"# slm-model benchmark: {device}, {os.cpu_count()} CPUs, {threads} torch threads")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, fp32")
    print(f"preset {args.preset!r}: {parameters / 1e6:.1f} M parameters, {config}\n")

    if not args.skip_train:
        options = {"batch_size": args.batch_size, "steps": args.steps}
        theirs, ours = compare(
            args, "train", [{"kind": "transformers", **options}, {"kind": "ours", **options}]
        )
        print_results(
            f"## training step, forward + backward, batch {args.batch_size} x {config.block_size}",
            [(f"transformers {reference}", theirs), ("slm GPTModel", ours)],
        )

    new = args.new_tokens
    no_cache, cached = compare(
        args,
        "generate",
        [{"kind": "ours", "new_tokens": new, "use_cache": use} for use in (False, True)],
    )
    assert cached["tokens"] == no_cache["tokens"], "the cache changed the output"
    print_results(
        f"## generation, {new} new tokens after a 1-token prompt, greedy, batch 1"
        + (" (the window slides at the end)" if new >= config.block_size else ""),
        [("slm, no KV cache", no_cache), ("slm, KV cache", cached)],
    )

    # transformers cannot go past its n_positions, so compare on a sequence that fits.
    fitting = min(new, config.block_size - 1)
    theirs, ours = compare(
        args,
        "generate",
        [
            {"kind": kind, "new_tokens": fitting, "use_cache": True}
            for kind in ("transformers", "ours")
        ],
    )
    assert ours["tokens"] == theirs["tokens"], "greedy outputs differ from transformers"
    print_results(
        f"## generation with KV caches, {fitting} new tokens, greedy, batch 1",
        [("transformers generate", theirs), ("slm generate", ours)],
    )
    print("(greedy tokens checked identical: with and without cache, and against transformers)")


if __name__ == "__main__":
    main()
