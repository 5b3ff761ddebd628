"""Pre-trained runs made in a second, for the tests of the offline tasks and the report card.

`pretrained_run` prepares a tiny corpus with a 300-token BPE (as `slm-cli
train` would, in `data/`) and writes a run pointing at it, with a model whose
weights the test chooses and, if asked, the metrics a short training would
have logged. Its held-out split is every tenth document: the documents
`CLOZE_DOCUMENTS` at positions 9 and 19, whose sentences each end in a word
that the token before it decides (" a" -> " mat", " the" -> " park", ...),
so a scripted bigram model (chat_runs.scripted_model) knows every answer.
"""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import story
from slm_model import GPTModel, get_gpt_config
from slm_train import Run, prepare, save_checkpoint

# The held-out sentences: (the word before the last, the last word).
CLOZE_PAIRS = [("a", "mat"), ("the", "park"), ("old", "trees"), ("and", "sang")]
SENTENCES = [
    "The cat sat on a mat.",
    "The dog ran to the park.",
    "Birds sang in old trees.",
    "The cat ran and sang.",
]
CLOZE_DOCUMENTS = [" ".join(SENTENCES), " ".join(reversed(SENTENCES))]


def corpus_documents() -> list[str]:
    """20 documents; the 10th and the 20th (the held-out split) are CLOZE_DOCUMENTS."""
    documents = [story(seed) for seed in range(20)]
    documents[9], documents[19] = CLOZE_DOCUMENTS
    return documents


def pretrained_run(
    folder: Path,
    model: GPTModel | None = None,
    *,
    metrics: bool = False,
    block_size: int = 16,
    name: str = "run",
) -> Run:
    """A pre-trained run at `folder / name` over data in `folder / "data"`; `model` (default:
    a random tiny GPT-2 sized to the tokenizer) is its best/ checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n<|endoftext|>\n".join(corpus_documents()) + "\n", encoding="utf-8")
    data = prepare(str(corpus), folder / "data", "bpe:300", workers=1)
    tokenizer = data.load_tokenizer()
    if model is None:
        torch.manual_seed(0)
        config = get_gpt_config("tiny", vocab_size=tokenizer.vocab_size, block_size=block_size)
        model = GPTModel(config)
    run = Run.create(
        folder / name,
        model_config=model.config,
        train_config={
            "batch_size": 4,
            "grad_accum_steps": 1,
            "learning_rate": 1e-3,
            "precision": "fp32",
            "max_steps": 20,
        },
        tokenizer_file=data.tokenizer_path,
        tokenizer_info=data.meta["tokenizer"],
        data_info={
            "dir": str(data.directory),
            "source": data.meta["source"],
            "train_tokens": data.meta["train_tokens"],
            "val_tokens": data.meta["val_tokens"],
        },
    )
    save_checkpoint(run.path / "best", model, {"step": 20, "tokens": 1280, "elapsed": 2.0})
    if metrics:
        write_metrics(run)
    return run


def write_metrics(run: Run, steps: int = 20) -> None:
    """The metrics.jsonl of a 20-step run logged every step and evaluated every 10."""
    import json

    records = []
    for step in range(1, steps + 1):
        loss = 5.0 - step * 0.1
        records.append({"type": "step", "step": step, "tokens": step * 64, "loss": loss,
                        "lr": 1e-3, "tokens_per_s": 640.0, "flops_per_s": 1e9,
                        "elapsed": step * 0.1, "progress": step / steps})  # fmt: skip
        if step % 10 == 0:
            records.append({"type": "eval", "step": step, "tokens": step * 64,
                            "train_loss": loss, "val_loss": loss + 0.2,
                            "train_perplexity": 1.0, "val_perplexity": 1.0,
                            "elapsed": step * 0.1})  # fmt: skip
    text = "".join(json.dumps(record) + "\n" for record in records)
    (run.path / "metrics.jsonl").write_text(text, encoding="utf-8")
