"""Turning token streams into (input, target) batches.

A language model learns to predict token t+1 from tokens 0..t, so every window
of block_size + 1 consecutive tokens gives one training example: the first
block_size tokens are the input and the same window shifted by one is the
target.

- `RandomWindows` (nanoGPT) draws windows at random offsets of a memory-mapped
  token file. Each batch is a pure function of (seed, rank, step, micro-step),
  so a resumed run sees exactly the batches an uninterrupted run would.
- `SlidingWindowDataset` (the book's `GPTDatasetV1`) cuts a small text into
  windows `stride` tokens apart, for a `DataLoader` to shuffle and batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class DataTooSmallError(ValueError):
    """The data cannot fill one context window."""


class RandomWindows:
    def __init__(
        self,
        tokens: np.ndarray,
        block_size: int,
        batch_size: int,
        seed: int = 0,
        name: str = "data",
    ) -> None:
        if len(tokens) < block_size + 1:
            raise DataTooSmallError(
                f"the {name} split has {len(tokens):,} tokens, fewer than one window of "
                f"block_size + 1 = {block_size + 1:,}; use more text or a smaller block_size"
            )
        self.tokens = tokens
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed

    def batch(self, *key: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch for `key` (e.g. rank, step, micro-step): the same key, the same batch."""
        generator = np.random.default_rng([self.seed, *key])
        starts = generator.integers(0, len(self.tokens) - self.block_size, size=self.batch_size)
        windows = np.stack([self.tokens[s : s + self.block_size + 1] for s in starts]).astype(
            np.int64
        )
        windows = torch.from_numpy(windows)
        return windows[:, :-1], windows[:, 1:]


def sequential_windows(
    tokens: np.ndarray, block_size: int, batch_size: int, max_batches: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Non-overlapping windows from the start of `tokens`, batched: a fixed pass for evaluation."""
    starts = range(0, len(tokens) - block_size, block_size)
    batch: list[np.ndarray] = []
    emitted = 0
    for start in starts:
        batch.append(np.asarray(tokens[start : start + block_size + 1], dtype=np.int64))
        if len(batch) == batch_size:
            windows = torch.from_numpy(np.stack(batch))
            yield windows[:, :-1], windows[:, 1:]
            batch, emitted = [], emitted + 1
            if max_batches is not None and emitted >= max_batches:
                return
    if batch:
        windows = torch.from_numpy(np.stack(batch))
        yield windows[:, :-1], windows[:, 1:]


class SlidingWindowDataset(Dataset):
    """Windows of `max_length` tokens every `stride` tokens; stride < max_length overlaps them."""

    def __init__(self, token_ids: Sequence[int], max_length: int, stride: int) -> None:
        if max_length < 1 or stride < 1:
            raise ValueError("max_length and stride must be positive")
        if len(token_ids) < max_length + 1:
            raise DataTooSmallError(
                f"the text has {len(token_ids)} tokens, fewer than max_length + 1 = "
                f"{max_length + 1}; "
                "use more text or a smaller max_length"
            )
        ids = torch.as_tensor(list(token_ids), dtype=torch.long)
        starts = range(0, len(ids) - max_length, stride)
        self.inputs = [ids[s : s + max_length] for s in starts]
        self.targets = [ids[s + 1 : s + max_length + 1] for s in starts]

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]


def create_dataloader(
    text: str,
    tokenizer,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
) -> DataLoader:
    """The book's `create_dataloader_v1`: tokenize `text`, window it, batch it."""
    if getattr(tokenizer, "special_tokens", None):  # BPE: let <|endoftext|> in the text count
        ids = tokenizer.encode(text, allowed_special="all")
    else:
        ids = tokenizer.encode(text)
    dataset = SlidingWindowDataset(ids, max_length, stride)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
    )
