"""Benchmark `slm-cli serve`: throughput and time to first token for 1, 4 and 16 streaming clients.

    uv run python bench/serve.py                        # a default-shaped chat run, then a 135M
    uv run python bench/serve.py --run runs/chat --models run
    uv run python bench/serve.py --soak                 # 2,000 requests, random disconnects

The server runs as `slm-cli serve` in its own process (so its memory is its
own), and the clients are asyncio tasks speaking HTTP/1.1 directly (light, so
they take little CPU from the server, and able to hang up mid-stream). Each
client sends `--requests` streaming chat (or text) completions in turn, of
`--max-tokens` tokens at temperature 0.8, and reads them to `data: [DONE]`.

For each number of clients it reports
- aggregate tokens/s: every client's tokens over the wall time of the round,
- time to first token (TTFT) p50 and p95: from sending a request to its first text,
- per-client tokens/s: each client's tokens over its own time (median),
and the aggregate's ratio to one client's, measured in the same rounds: the
levels take turns (1, 4, 16, 1, 4, 16, ...) and each number is the median of
`--rounds`. The issue's goal is 4x one client's aggregate at 16 clients.

Models: `--run RUN` (a chat run made by `slm-cli train --chat`), or by
default a stand-in of its shape (random weights: the time depends on the shape,
not the values; a random model rarely ends a reply early, so each reply is
`--max-tokens` long); and a random model of SmolLM2-135M's shape, imported as
bench/import_hf.py makes it (GPT-2's tokenizer; a text-continuing run, so it
gets /v1/completions).

`--soak`: 2,000 requests from 16 clients against `--max-batch 8 --max-queue 4`
(so some are refused, as planned, with 503, and tried again after about a
second), each of 4-48 tokens, and one in five hung up after a few chunks. It
reports the server's resident memory after the first 200 requests and at the
end, and every outcome by kind; anything but a complete stream, a planned
hang-up or a 503 is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

WORDS = "the cat sat on a mat and the dog ran to the park while birds sang in old trees".split()  # noqa: SIM905
PROMPTS = [
    "Tell me about the cat and the dog.",
    "Who are you?",
    "Write one sentence about birds in old trees, please.",
    "What is on the mat?",
]


# ------------------------------------------------------------------ the runs
def standin_chat_run(folder: Path) -> Path:
    """A random model of `slm-cli train --chat`'s shape (TrainConfig's preset), as a chat run."""
    import torch
    from slm_model import GPTModel, get_gpt_config
    from slm_tokenizer import RESERVED_TOKENS, BPETokenizer
    from slm_train import Run, TrainConfig, save_checkpoint

    rng = random.Random(0)
    text = " ".join(rng.choice(WORDS) for _ in range(20_000)) + " ".join(PROMPTS)
    tokenizer = BPETokenizer.train(text, 512, RESERVED_TOKENS, workers=1)
    torch.manual_seed(0)
    config = get_gpt_config(TrainConfig().preset, vocab_size=tokenizer.vocab_size)
    model = GPTModel(config)
    run = Run.create(
        folder / "chat",
        model_config=config,
        train_config={"epochs": 1, "learning_rate": 1e-4, "precision": "fp32"},
        tokenizer_file=tokenizer.save(folder / "tokenizer.json"),
        tokenizer_info={
            "spec": "bpe:512",
            "vocab_size": tokenizer.vocab_size,
            "eot_id": tokenizer.eot_id,
        },
        data_info={"source": "bench", "train": 1, "val": 1, "test": 0},
        extra={"kind": "chat", "prompt_format": "chatml"},
    )
    save_checkpoint(run.path / "best", model, {"step": 0})
    return run.path


def smollm_run(folder: Path) -> Path:
    """A random SmolLM2-135M-shaped Llama, saved by transformers and imported by slm."""
    sys.path.insert(0, str(Path(__file__).parent))
    from import_hf import save_model
    from slm_train import import_hf

    save_model(folder / "hf")
    return import_hf(folder / "hf", folder / "smollm2-135m").path


# ---------------------------------------------------------------- the server
class Server:
    """`slm-cli serve` in a child process, on a free port."""

    def __init__(self, run: Path, device: str, *options: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = [sys.executable, "-m", "slm_cli", "serve", "--run", str(run), "--port",
                   str(self.port), "--device", device, *options]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.chat = json.loads((run / "config.json").read_text()).get("prompt_format") == "chatml"

    def wait_ready(self) -> None:
        """Connect until the server answers (the model loads first)."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server stopped: {self.process.stderr.read().decode()}")
            try:
                asyncio.run(request(self.port, "GET", "/v1/models", None))
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the server did not start in 5 minutes")

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kilobytes = next(
            line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")
        )
        return int(kilobytes) / 1024

    def stop(self) -> None:
        self.process.send_signal(2)  # Ctrl-C
        self.process.wait(60)


# ---------------------------------------------------------------- the client
async def request(port: int, method: str, path: str, body: dict | None):
    """One request on its own connection: (status, reader, writer), headers read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")  # fmt: skip
    writer.write(head.encode() + data)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    return status, reader, writer


@dataclass
class Outcome:
    kind: str  # "ok", "hung up", "503" or an error's description
    tokens: int = 0
    first: float | None = None  # seconds to the first text
    seconds: float = 0.0


async def stream_one(port: int, chat: bool, max_tokens: int, hang_up_after: int | None) -> Outcome:
    """A streaming completion read to [DONE] (or dropped after `hang_up_after` chunks)."""
    body = {"max_tokens": max_tokens, "temperature": 0.8, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    prompt = random.choice(PROMPTS)
    body.update({"messages": [{"role": "user", "content": prompt}]} if chat else {"prompt": prompt})
    start = time.perf_counter()
    status, reader, writer = await request(port, "POST", "/v1/chat/completions" if chat else
                                           "/v1/completions", body)  # fmt: skip
    outcome = Outcome("503" if status == 503 else f"status {status}")
    try:
        if status == 200:
            outcome = await read_events(reader, start, hang_up_after)
    finally:
        writer.close()
    outcome.seconds = time.perf_counter() - start
    return outcome


async def read_events(reader, start: float, hang_up_after: int | None) -> Outcome:
    outcome, chunks = Outcome("no [DONE]"), 0
    async for line in reader:  # chunked transfer: size lines, data lines, blank lines
        if not line.startswith(b"data: "):
            continue
        if line.strip() == b"data: [DONE]":
            outcome.kind = "ok"
            break
        event, chunks = json.loads(line[6:]), chunks + 1
        if event.get("usage"):
            outcome.tokens = event["usage"]["completion_tokens"]
        elif outcome.first is None and _text(event):
            outcome.first = time.perf_counter() - start
        if hang_up_after is not None and chunks >= hang_up_after:
            outcome.kind = "hung up"
            break
    return outcome


def _text(event: dict) -> str:
    choice = event["choices"][0]
    return choice.get("text") or choice.get("delta", {}).get("content") or ""


# ------------------------------------------------------------ the measurement
@dataclass
class Level:
    clients: int
    aggregate: list[float] = field(default_factory=list)
    per_client: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)


async def one_round(server: Server, level: Level, requests: int, max_tokens: int) -> None:
    async def client() -> list[Outcome]:
        return [await stream_one(server.port, server.chat, max_tokens, None)
                for _ in range(requests)]  # fmt: skip

    start = time.perf_counter()
    results = await asyncio.gather(*(client() for _ in range(level.clients)))
    wall = time.perf_counter() - start
    tokens = [sum(o.tokens for o in outcomes) for outcomes in results]
    level.aggregate.append(sum(tokens) / wall)
    level.per_client.append(statistics.median(
        t / sum(o.seconds for o in outcomes) for t, outcomes in zip(tokens, results, strict=True)
    ))  # fmt: skip
    level.firsts += [o.first for outcomes in results for o in outcomes if o.first is not None]
    if any(o.kind != "ok" for outcomes in results for o in outcomes):
        raise SystemExit(f"a request failed: {[o.kind for outs in results for o in outs]}")


def measure(server: Server, args) -> list[Level]:
    levels = [Level(clients) for clients in args.clients]
    asyncio.run(one_round(server, Level(1), 1, 8))  # warm-up
    for _ in range(args.rounds):
        for level in levels:  # interleaved: 1, 4, 16, 1, 4, 16, ...
            asyncio.run(one_round(server, level, args.requests, args.max_tokens))
    return levels


def report(name: str, levels: list[Level]) -> None:
    one = statistics.median(levels[0].aggregate)
    print(f"\n{name}")
    print(
        "| clients | aggregate tokens/s | x 1 client | TTFT p50 | TTFT p95 | per-client tokens/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for level in levels:
        aggregate = statistics.median(level.aggregate)
        firsts = sorted(level.firsts)
        p50, p95 = firsts[len(firsts) // 2], firsts[min(len(firsts) - 1, int(len(firsts) * 0.95))]
        print(f"| {level.clients} | {aggregate:.1f} | {aggregate / one:.2f} | {p50 * 1000:.0f} ms "
              f"| {p95 * 1000:.0f} ms | {statistics.median(level.per_client):.1f} |")  # fmt: skip


# ------------------------------------------------------------------- the soak
async def soak(server: Server, total: int, clients: int) -> tuple[dict[str, int], dict]:
    """`total` requests served (to the end, or hung up on); 503s are retried, and counted."""
    counts: dict[str, int] = {}
    served, rss = [0], {}

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        while served[0] < total:
            hang_up = rng.randint(1, 4) if rng.random() < 0.2 else None
            try:
                outcome = await stream_one(server.port, server.chat, rng.randint(4, 48), hang_up)
                kind = outcome.kind
            except OSError as error:
                kind = f"connection error: {error}"
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "503":  # planned: wait about Retry-After (1 s), then try again
                await asyncio.sleep(rng.uniform(0.5, 1.0))
                continue
            served[0] += 1
            if served[0] == 200:
                rss["after warm-up"] = server.rss_mb()

    await asyncio.gather(*(client(seed) for seed in range(clients)))
    rss["end"] = server.rss_mb()
    return counts, rss


def run_soak(run: Path, args) -> None:
    server = Server(run, args.device, "--max-batch", "8", "--max-queue", "4")
    try:
        server.wait_ready()
        start = time.perf_counter()
        counts, rss = asyncio.run(soak(server, args.soak_requests, 16))
        minutes = (time.perf_counter() - start) / 60
    finally:
        server.stop()
    errors = {k: v for k, v in counts.items() if k not in ("ok", "hung up", "503")}
    print(f"\nsoak: {args.soak_requests} requests from 16 clients in {minutes:.1f} min: {counts}")
    warm, end = rss["after warm-up"], rss["end"]
    print(f"server RSS: {warm:.0f} MB after 200 requests, {end:.0f} MB at the end "
          f"({end - warm:+.0f} MB); errors: {errors or 'none'}")  # fmt: skip
    if errors:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="A chat run (default: a stand-in of its shape).")
    parser.add_argument("--models", nargs="+", default=["run", "smollm"], choices=["run", "smollm"])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=2, help="Requests per client per round.")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--soak", action="store_true")
    parser.add_argument("--soak-requests", type=int, default=2000)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, device "
          f"{args.device}, load average {os.getloadavg()[0]:.1f} at the start")  # fmt: skip
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        run = args.run or standin_chat_run(folder)
        if args.soak:
            return run_soak(run, args)
        for model in args.models:
            path = run if model == "run" else smollm_run(folder)
            server = Server(path, args.device, "--max-batch", str(max(args.clients)))
            try:
                server.wait_ready()
                levels = measure(server, args)
            finally:
                server.stop()
            report(f"{path.name} ({'given run' if args.run and model == 'run' else model})", levels)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
