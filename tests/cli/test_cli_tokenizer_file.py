"""`--tokenizer PATH`: a tokenizer trained once, then used by prepare and train (issue 19, item 3).

The run keeps its own copy of the tokenizer, so generate and chat work after
the file is deleted or replaced.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from slm_cli.main import app
from slm_tokenizer import BPETokenizer


def invoke(runner, *args, input=None):
    result = runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def with_tokenizer(spec: str) -> list[str]:
    """Options for a two-step training run with `spec` as the tokenizer."""
    return ["--data", "corpus.txt", "--tokenizer", spec, "--preset", "tiny", "--model",
            "block_size=64", "--batch-size", "4", "--max-steps", "2", "--eval-interval", "2",
            "--eval-batches", "1", "--sample-tokens", "0", "--precision", "fp32"]  # fmt: skip


def test_a_trained_tokenizer_file_serves_prepare_train_and_the_run(workdir, runner):
    said = invoke(runner, "tokenizer", "train", "--data", "corpus.txt", "--vocab-size", "300",
                  "--out", "tok.json")  # fmt: skip
    assert "--tokenizer tok.json" in said
    tokenizer = BPETokenizer.load("tok.json")

    invoke(runner, "prepare", "--data", "corpus.txt", "--tokenizer", "tok.json", "--out", "d")
    assert json.loads(Path("d/meta.json").read_text())["tokenizer"]["vocab_size"] == 300
    assert BPETokenizer.load("d/tokenizer.json").merges == tokenizer.merges

    trained = invoke(runner, "train", *with_tokenizer("tok.json"), "--data-dir", "d", "--out", "t")
    assert "Training finished" in trained and "tokenizing" not in trained  # d/ is reused
    encoded = invoke(runner, "tokenizer", "encode", "the cat sat", "-t", "t")
    assert str(tokenizer.encode("the cat sat")) in encoded

    Path("tok.json").unlink()
    generated = invoke(runner, "generate", "The cat", "--run", "t", "--max-new-tokens", "4")
    assert generated.startswith("The cat")
    assert invoke(runner, "chat", "--run", "t", input="The dog\n/quit\n").count("model> ") == 1
    BPETokenizer.train("other words entirely", 260, ["<|endoftext|>"], workers=1).save("tok.json")
    assert str(tokenizer.encode("the cat sat")) in invoke(
        runner, "tokenizer", "encode", "the cat sat", "-t", "t"
    )
    invoke(runner, "generate", "The cat", "--run", "t", "--max-new-tokens", "4")


@pytest.mark.parametrize("command", ["prepare", "train"])
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing.json", "tokenizer file missing.json does not exist; save one with `slm-cli "
                         "tokenizer train --out missing.json`"),
        ("damaged.json", "damaged.json is damaged (invalid JSON"),
    ],
)  # fmt: skip
def test_a_missing_or_damaged_tokenizer_file_is_one_red_line(
    workdir, runner, command, spec, message
):
    Path("damaged.json").write_text('{"merges": [')
    options = with_tokenizer(spec) if command == "train" else ["--data", "corpus.txt",
                                                                "--tokenizer", spec]  # fmt: skip
    result = runner.invoke(app, [command, *options])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not Path("runs").exists() and not Path("data").exists()
