"""What a run was not trained on, and what it was: the text the offline tasks score it on.

A pre-trained run names its prepared data (config.json's `data.dir`):
`val.bin` is the held-out split, never trained on, and `train.bin` is what
the unigram baseline counts. A fine-tuned run (chat, instruct) has no token
files of its own, so it is measured on its base run's held-out text, found by
following `data.base`. A run imported from the hub has neither; the tasks
that need them say so.

The data's tokenizer and the run's usually agree; a chat run's may have
more special tokens (its markers), which does not change a single id of
plain text. Where they differ in more than that, the text is decoded and
encoded again with the run's tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from slm_tokenizer import END_OF_TEXT, BPETokenizer

from ..data.prepare import load_prepared
from ..run import Run, RunError

MAX_BASES = 8  # a chain of fine-tunings longer than this is a loop in the configs


class BenchmarkError(ValueError):
    """A task cannot run on this run (or does not exist); the message says what to do."""


@dataclass
class HeldOut:
    """The held-out split and the training tokens' counts, both in the run's tokenizer."""

    tokens: np.ndarray
    train_counts: np.ndarray  # occurrences of each token id in the training split
    source: str  # "builtin:bbe (validation split of runs/x)"
    tokenizer: BPETokenizer

    @cached_property
    def documents(self) -> list[str]:
        """The held-out text, one string per document (as they were split by <|endoftext|>)."""
        text = self.tokenizer.decode(self.tokens.tolist())
        return [document.strip() for document in text.split(END_OF_TEXT) if document.strip()]


def held_out(run: Run) -> HeldOut:
    """The run's held-out split (or its base run's), ready to score."""
    tokenizer = run.tokenizer()
    owner = data_run(run)
    prepared = load_prepared(owner.config["data"]["dir"])
    if prepared.meta["tokenizer"]["sha256"] != owner.config["tokenizer"]["sha256"]:
        raise BenchmarkError(
            f"the data in {prepared.directory} was prepared again with another tokenizer "
            f"than {owner.path}'s; prepare it again with that run's tokenizer"
        )
    val, train = prepared.tokens("val"), prepared.tokens("train")
    data_tokenizer = prepared.load_tokenizer()
    if not same_ids(data_tokenizer, tokenizer):
        val, train = (_reencode(t, data_tokenizer, tokenizer) for t in (val, train))
    counts = np.bincount(np.asarray(train, dtype=np.int64), minlength=tokenizer.vocab_size)
    source = f"{prepared.meta['source']} (validation split of {owner.path})"
    return HeldOut(np.asarray(val, dtype=np.int64), counts, source, tokenizer)


def data_run(run: Run) -> Run:
    """The run whose prepared data `run` was trained on: itself, or a base it was tuned from."""
    current = run
    for _ in range(MAX_BASES):
        data = current.config.get("data", {})
        if "val_tokens" in data and "dir" in data:
            return current
        base = data.get("base")
        if not base:
            break
        try:
            current = Run(base)
        except RunError as error:
            raise BenchmarkError(
                f"{run.path} was tuned from {base}, whose held-out text is needed: {error}"
            ) from None
    raise BenchmarkError(
        f"{run.path} has no held-out text of its own (it was not pre-trained here); the tasks "
        "bpb and cloze need a run trained with slm-cli train, or one tuned from such a run"
    )


def same_ids(data: BPETokenizer, run: BPETokenizer) -> bool:
    """Whether every id of `data` means the same bytes in `run`, with the same merges."""
    theirs = run.vocab
    return data.merges == run.merges and all(theirs.get(i) == b for i, b in data.vocab.items())


def _reencode(tokens: np.ndarray, source: BPETokenizer, target: BPETokenizer) -> np.ndarray:
    documents = source.decode(np.asarray(tokens).tolist()).split(END_OF_TEXT)
    eot = target.eot_id
    ids: list[int] = []
    for document in documents:
        if ids and eot is not None:
            ids.append(eot)
        ids.extend(target.encode_ordinary(document))
    return np.asarray(ids, dtype=np.int64)


def token_bytes(tokenizer: BPETokenizer) -> np.ndarray:
    """How many bytes of text each token id stands for; special tokens stand for none."""
    sizes = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    specials = set(tokenizer.special_tokens.values())
    for token, data in tokenizer.vocab.items():
        if token not in specials:
            sizes[token] = len(data)
    return sizes
