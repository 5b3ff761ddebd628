"""slm-cli end to end with typer's CliRunner: tiny presets, a tiny corpus, seconds per command."""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakehub import hub_environment
from helpers import TINY
from slm_cli.main import app
from slm_train import read_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def invoke(runner, *args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def one_red_line(result) -> str:
    """The error output: one line starting with 'error:', no traceback."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def trained(workdir, runner) -> Path:
    result = invoke(runner, "train", *TINY, "--out", "runs/tiny")
    assert result.exit_code == 0, result.output
    assert "Training finished" in result.output and "slm-cli chat --run runs/tiny" in result.output
    return workdir / "runs" / "tiny"


def validation_loss_by_hand(run_dir: Path) -> tuple[int, float]:
    """(tokens, mean cross-entropy) over the validation split's whole windows, one window at
    a time, in the precision `eval` picks on this machine."""
    import torch
    import torch.nn.functional as F
    from slm_train import Run, load_prepared, resolve_device, resolve_precision
    from slm_train.runtime import autocast

    run = Run(run_dir)
    tokens = torch.as_tensor(load_prepared(run.config["data"]["dir"]).tokens("val").astype("int64"))
    block = run.model_config.block_size
    windows = (len(tokens) - 1) // block
    model, device = run.load_model("best"), resolve_device("cpu")
    total = 0.0
    with torch.no_grad(), autocast(device, resolve_precision("auto", device)):
        for start in range(0, windows * block, block):
            logits = model(tokens[start : start + block][None])[0].float()
            target = tokens[start + 1 : start + block + 1]
            total += F.cross_entropy(logits, target, reduction="sum").item()
    return windows * block, total / (windows * block)


def test_train_generate_eval_info(trained, runner):
    assert (trained / "best" / "model.safetensors").is_file() and (trained / "loss.png").is_file()

    generated = invoke(runner, "generate", "The cat", "--max-new-tokens", "12", "--seed", "1")
    assert generated.exit_code == 0, generated.output
    assert generated.output.startswith("The cat") and len(generated.output.strip()) > len("The cat")
    again = invoke(runner, "generate", "The cat", "--max-tokens", "12", "--seed", "1")
    assert again.output == generated.output  # --seed makes it repeatable; --max-tokens is an alias
    greedy = invoke(
        runner,
        "generate",
        "The dog",
        "--temperature",
        "0",
        "--num-samples",
        "2",
        "--max-new-tokens",
        "8",
        "--run",
        trained,
    )
    samples = [
        block.strip() for block in re.split(r"─+ sample \d ─+", greedy.output) if block.strip()
    ]
    assert len(samples) == 2 and samples[0] == samples[1]  # greedy: identical

    evaluated = invoke(runner, "eval", "--run", trained)
    assert evaluated.exit_code == 0, evaluated.output
    shown = re.search(r"validation split\)\s*│\s*([\d,]+)\s*│\s*([\d.]+)", evaluated.output)
    tokens, loss = validation_loss_by_hand(trained)
    assert int(shown.group(1).replace(",", "")) == tokens
    assert float(shown.group(2)) == pytest.approx(loss, abs=2e-3)
    (kept,) = (trained / "evals").glob("*-loss.json")
    record = json.loads(kept.read_text())
    assert record["kind"] == "loss" and record["scores"][0]["n"] == tokens
    assert record["scores"][0]["value"] == pytest.approx(loss, abs=2e-3)

    other = invoke(runner, "eval", "--data", "corpus.txt", "--max-batches", "2")
    assert other.exit_code == 0 and "corpus.txt" in other.output

    info = invoke(runner, "info")
    assert info.exit_code == 0
    assert (
        "parameters" in info.output
        and "validation loss" in info.output
        and "step 20" in info.output
    )
    assert re.search(r"speed .*[\d,]+ tokens/s, [\d.]+ GFLOP/s, MFU [\d.]+%", info.output)


def test_chat_through_a_pipe(trained, runner):
    lines = [
        "The cat",
        "/temperature 0",
        "/max_tokens 5",
        "The dog",
        "/max_new_tokens 3",
        "/reset",
        "/top_k x",
        "/nonsense",
        "/quit",
        "never read",
    ]
    script = "\n".join(lines) + "\n"
    result = invoke(runner, "chat", "--seed", "0", input=script)
    assert result.exit_code == 0, result.output
    output = result.output
    assert output.count("model> ") == 2
    assert "you> The cat" in output and "you> The dog" in output and "never read" not in output
    assert "(temperature 0.0)" in output and "(max_new_tokens 5)" in output
    assert "(max_new_tokens 3)" in output
    assert "(conversation reset)" in output
    assert "/top_k needs a non-negative number" in output and "unknown command /nonsense" in output


def test_resume_continues_the_latest_run(trained, runner):
    result = invoke(runner, "train", "--resume", "--max-steps", "30")
    assert result.exit_code == 0, result.output
    assert read_checkpoint(trained / "last").state["step"] == 30
    refused = invoke(runner, "train", *TINY, "--out", "runs/tiny")
    assert "already holds a run" in one_red_line(refused)


def test_tokenizer_commands(workdir, runner):
    trained = invoke(
        runner,
        "tokenizer",
        "train",
        "--data",
        "corpus.txt",
        "--vocab-size",
        "280",
        "--out",
        "t.json",
    )
    assert trained.exit_code == 0 and Path("t.json").is_file(), trained.output
    encoded = invoke(runner, "tokenizer", "encode", "Hello world", "-t", "gpt2")
    assert "[15496, 995]" in encoded.output and "2 tokens" in encoded.output
    decoded = invoke(runner, "tokenizer", "decode", "15496", "995")
    assert decoded.output.strip() == "Hello world"
    assert "tokens for" in invoke(runner, "tokenizer", "encode", "the cat", "-t", "t.json").output


def test_prepare_command(workdir, runner):
    result = invoke(
        runner, "prepare", "--data", "corpus.txt", "--tokenizer", "bpe:300", "--out", "d"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(Path("d/meta.json").read_text())["val_documents"] == 8  # every 10th of 80


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "hello"], "no runs under runs/ yet; train one with: slm-cli train"),
        (["chat", "--run", "nowhere"], "no run directory at nowhere"),
        (["info", "--run", "runs/a[1]"], "no run directory at runs/a[1];"),  # text, not markup
        (["info", "--run", "."], "is not an slm run"),
        (["train", "--preset", "huge", "--data", "corpus.txt"], "unknown model preset 'huge'"),
        (["train", "--precision", "fp8"], "unknown precision 'fp8'"),
        (["train", "--data", "missing.txt"], "not a file, folder or glob"),
        (["train", "--tokenizer", "bpe:12"], "unknown tokenizer 'bpe:12'"),
        (["train", "--config", "none.toml"], "config file none.toml does not exist"),
        (
            ["tokenizer", "encode", "x", "-t", "nope.json"],
            "not gpt2, a tokenizer file or a run directory",
        ),
    ],
)
def test_errors_are_one_red_line(workdir, runner, args, message):
    assert message in one_red_line(invoke(runner, *args))


def test_bad_flags_are_usage_errors(workdir, runner):
    for args in (
        ["train", "--max-time", "soon"],
        ["train", "--frobnicate"],
        ["train", "--max-steps", "x"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "is not a duration" in runner.invoke(app, ["train", "--max-time", "soon"]).output


def test_an_unreachable_hub_is_one_red_line(workdir, runner, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(workdir / "cache"))
    with hub_environment(
        HF_ENDPOINT="http://127.0.0.1:9",  # the discard port: nothing listens
        HF_HOME=str(workdir / "hf"),
        HF_HUB_OFFLINE=None,
        HF_TOKEN=None,
    ):
        line = one_red_line(invoke(runner, "train", "--data", "tinystories"))
    assert "cannot reach the Hugging Face hub at http://127.0.0.1:9" in line
    assert "HF_ENDPOINT" in line and "HF_HUB_OFFLINE" in line


def test_debug_shows_the_traceback(workdir, runner):
    result = runner.invoke(app, ["--debug", "generate", "hello"])
    assert result.exit_code == 1 and type(result.exception).__name__ == "RunError"


def test_help_and_version(runner):
    for command in (
        "train",
        "generate",
        "chat",
        "eval",
        "prepare",
        "info",
        "classify",
        "tokenizer train",
        "tokenizer encode",
        "tokenizer decode",
        "finetune classify",
        "finetune instruct",
        "finetune chat",
    ):
        result = runner.invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0 and "Example" in result.output, command
    version = runner.invoke(app, ["--version"]).output
    for package in ("slm-tokenizer", "slm-model", "slm-train", "slm-cli"):
        assert re.search(rf"{package} \d+\.\d+\.\d+", version)


def test_readme_commands_exist_as_written():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^uv run slm-cli train$", readme, re.MULTILINE)
    assert re.search(r"^uv run pytest\b", readme, re.MULTILINE)
    assert 'slm-cli = "slm_cli.main:run"' in (ROOT / "packages/slm-cli/pyproject.toml").read_text()
    # The console script installed next to this Python (PATH may lack the venv).
    script = shutil.which("slm-cli", path=str(Path(sys.executable).parent))
    assert script is not None, f"no slm-cli script next to {sys.executable}"
    assert subprocess.run([script, "train", "--help"], capture_output=True).returncode == 0


def test_ctrl_c_saves_a_checkpoint_and_exits(workdir):
    args = [a if a != "20" else "100000" for a in TINY]
    command = [sys.executable, "-m", "slm_cli", "train", *args, "--log-interval", "1"]
    log = workdir / "output.txt"
    with log.open("w") as output:  # a file, not a pipe: a full pipe would stall the child
        process = subprocess.Popen(
            [*command, "--out", "runs/stop"],
            stdout=output,
            stderr=subprocess.STDOUT,
            # A shell's background job starts with SIGINT ignored; Ctrl-C must reach this one.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        _wait_for_steps(process, workdir / "runs" / "stop" / "metrics.jsonl", 5, log)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=STALL_S)  # it stops within a step
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert process.returncode == 130, output
    assert "interrupted at step" in output and "--resume" in output and "Traceback" not in output
    state = read_checkpoint(workdir / "runs" / "stop" / "last").state
    assert state["step"] >= 5
    assert not any(p.name.startswith(".") for p in (workdir / "runs" / "stop").iterdir())


# Start-up and five tiny steps take seconds; five minutes without them is a stall.
STALL_S = 300


def _wait_for_steps(process: subprocess.Popen, metrics: Path, steps: int, log: Path) -> None:
    """Wait for an event (`steps` steps logged), not for a time: a loaded machine is only slower.

    The deadline is only there so that a stalled run fails the test instead of hanging
    the suite.
    """
    deadline = time.monotonic() + STALL_S
    while not metrics.exists() or len(metrics.read_text().splitlines()) < steps:
        assert process.poll() is None, f"training ended before step {steps}:\n{log.read_text()}"
        assert time.monotonic() < deadline, (
            f"no {steps} steps in {STALL_S} s: the training stalled\n{log.read_text()}"
        )
        time.sleep(0.2)


def write_rows(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in rows))
    return path


def sport_rows(count: int) -> list[tuple[str, str]]:
    rng = random.Random(1)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "the", "dog", "ran", "to", "the", "park"]
    rows = []
    for i in range(count):
        text = [rng.choice(words) for _ in range(5)]
        if i % 2:
            text.insert(rng.randrange(6), "goal")
        rows.append((" ".join(text), "sport" if i % 2 else "home"))
    return rows


def test_finetune_classify_then_classify(trained, runner):
    data = write_rows(Path("sport.csv"), sport_rows(120))
    result = invoke(
        runner,
        "finetune",
        "classify",
        "--data",
        data,
        "--run",
        trained,
        "--out",
        "runs/clf",
        "--train",
        "all",
        "--epochs",
        "3",
        "--lr",
        "1e-3",
        "--batch-size",
        "16",
    )
    assert result.exit_code == 0, result.output
    assert (
        "Test set: accuracy" in result.output
        and "precision" in result.output
        and "epoch 3" in result.output
    )
    labelled = invoke(runner, "classify", "a goal for the dog", "--run", "runs/clf")
    assert labelled.exit_code == 0 and labelled.output.split()[0] == "sport"  # it has "goal"
    other = invoke(runner, "classify", "the dog sat on a mat", "--run", "runs/clf")
    assert other.exit_code == 0 and other.output.split()[0] == "home"
    assert "%" in labelled.output
    refused = invoke(runner, "classify", "text", "--run", trained)
    assert "is not a classifier run" in one_red_line(refused)
    chat = invoke(runner, "chat", "--run", "runs/clf", input="hi\n")
    assert "is a classifier, not a text generator" in one_red_line(chat)


def test_finetune_instruct_then_generate_uses_the_prompt_format(trained, runner):
    records = [
        {"instruction": "Repeat the word.", "input": w, "output": w}
        for w in ["cat", "dog", "mat"] * 20
    ]
    Path("repeat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = invoke(
        runner,
        "finetune",
        "instruct",
        "--data",
        "repeat.jsonl",
        "--run",
        trained,
        "--out",
        "runs/inst",
        "--epochs",
        "1",
        "--max-new-tokens",
        "5",
        "--mask-prompt",
    )
    assert result.exit_code == 0, result.output
    assert "exact match" in result.output and "token F1" in result.output
    generated = invoke(
        runner, "generate", "Repeat the word.", "--run", "runs/inst", "--max-new-tokens", "5"
    )
    assert generated.exit_code == 0 and "### Instruction" not in generated.output
    assert "prompt format" in invoke(runner, "info", "--run", "runs/inst").output


def test_finetune_from_gpt2_weights(workdir, runner):
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2LMHeadModel(
        GPT2Config(vocab_size=50257, n_positions=128, n_embd=64, n_layer=1, n_head=1)
    )
    save_file(
        {k: v.contiguous() for k, v in hf.state_dict().items() if "lm_head" not in k},
        "model.safetensors",
    )
    hf.config.to_json_file("config.json")  # as save_pretrained leaves it: n_head is read there
    records = [{"instruction": "Say it.", "output": "yes"}] * 30
    Path("say.json").write_text(json.dumps(records))
    result = invoke(
        runner,
        "finetune",
        "instruct",
        "--data",
        "say.json",
        "--gpt2",
        "model.safetensors",
        "--out",
        "runs/g",
        "--epochs",
        "1",
        "--max-new-tokens",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert (workdir / "runs" / "g" / "best" / "model.safetensors").is_file()


def test_finetune_errors(trained, runner):
    Path("bad.csv").write_text("body,label\nhello,a\n")
    assert "no 'text' field" in one_red_line(
        invoke(runner, "finetune", "classify", "--data", "bad.csv", "--run", trained)
    )
    write_rows(Path("ok.csv"), sport_rows(20))
    Path("ok.json").write_text(json.dumps([{"instruction": "Say it.", "output": "yes"}] * 20))
    both = invoke(
        runner,
        "finetune",
        "classify",
        "--data",
        "ok.csv",
        "--run",
        trained,
        "--gpt2",
        "x.safetensors",
    )
    assert "exactly one of" in one_red_line(both)
    assert "cannot read GPT-2 weights" in one_red_line(
        invoke(runner, "finetune", "instruct", "--data", "ok.json", "--gpt2", "missing.safetensors")
    )


@pytest.mark.parametrize(
    ("command", "config_class"),
    [("train", "TrainConfig"), ("finetune classify", "ClassifyConfig"),
     ("finetune instruct", "InstructConfig"), ("finetune chat", "ChatConfig")],
)  # fmt: skip
def test_every_config_field_is_an_option(runner, command, config_class):
    import dataclasses

    import slm_train
    from slm_cli.options import ALIASES

    result = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "200"})
    for field in dataclasses.fields(getattr(slm_train, config_class)):
        names = [f"--{field.name.replace('_', '-')}", *ALIASES.get(field.name, [])]
        assert any(name in result.output for name in names), (command, field.name)


def test_options_reach_the_config(workdir, runner, monkeypatch):
    """What the command line says arrives in the TrainConfig; the rest keeps its defaults."""
    import slm_train

    seen = {}

    def fake_train(config, **kwargs):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(slm_train, "train", fake_train)
    args = ["train", "--lr", "5e-5", "--min-lr", "0", "--grad-accum", "3", "--max-time", "1m30s"]
    args += ["--model", "n_layer=3", "--model", "norm=rmsnorm", "--compile", "off"]
    args += ["--beta2", "0.99"]
    runner.invoke(app, args)
    config = seen["config"]
    assert (config.learning_rate, config.min_lr, config.grad_accum_steps) == (5e-5, 0.0, 3)
    assert config.max_time == 90 and config.model == {"n_layer": 3, "norm": "rmsnorm"}
    assert config.beta2 == 0.99 and config.compile == "off" and config.batch_size == 16
    runner.invoke(app, ["train"])
    assert seen["config"].max_time == slm_train.DEFAULT_MAX_TIME  # no budget given: 8 minutes


def test_finetune_grad_accum_from_the_command_line(trained, runner):
    write_rows(Path("acc.csv"), sport_rows(40))
    result = invoke(
        runner, "finetune", "classify", "--data", "acc.csv", "--run", trained, "--out", "runs/acc",
        "--epochs", "1", "--batch-size", "4", "--grad-accum", "2", "--precision", "fp32",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads(Path("runs/acc/config.json").read_text())["train"]
    assert config["grad_accum_steps"] == 2 and config["batch_size"] == 4


def test_word_wrap_breaks_at_spaces_only():
    from slm_cli.streaming import WordWrap

    text = "And the king said to them, Because you have done what the king made a request for."
    pieces = re.findall(r" ?\S+", text)  # how tokens arrive: words with their leading space
    wrap = WordWrap(30, column=7)
    lines = "".join(wrap(piece) for piece in pieces).split("\n")
    assert " ".join(line.strip() for line in lines) == text  # nothing lost, no word cut
    assert all(len(line) <= 30 for line in lines[1:]) and len(lines[0]) <= 30 - 7


def test_sampling_options_are_checked_before_any_work(workdir, runner):
    for args in (["--temperature", "-1"], ["--top-p", "1.5"], ["--top-k", "-2"]):
        result = runner.invoke(app, ["generate", "The", *args])
        assert result.exit_code == 2 and "Invalid value" in result.output, result.output
        assert not result.output.startswith("The")  # nothing printed, no model loaded
    result = runner.invoke(app, ["chat", "--temperature", "-0.5"])
    assert result.exit_code == 2 and "Invalid value" in result.output


def test_tokenizer_encode_treats_special_tokens_like_generate(trained, runner):
    plain = invoke(runner, "tokenizer", "encode", "a<|endoftext|>b")
    assert "tokenizer of runs/tiny" in plain.output  # the latest run's, said so
    special = invoke(runner, "tokenizer", "encode", "a<|endoftext|>b", "--special")
    count = lambda result: int(re.search(r"(\d+) tokens for", result.output).group(1))  # noqa: E731
    assert count(special) < count(plain)  # one id for the special token, several for the text
