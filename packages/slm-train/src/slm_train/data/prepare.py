"""Data preparation: text in, token files out.

Training reads random windows of tokens millions of times, so we tokenize
once, up front, into flat binary files (nanoGPT's approach):

    <data_dir>/train.bin   token ids, uint16 if the vocabulary fits, else uint32
    <data_dir>/val.bin
    <data_dir>/tokenizer.json
    <data_dir>/meta.json   tokenizer identity, counts, dtype, and what the files were made from

Documents are streamed: each is encoded, followed by `<|endoftext|>`, and
appended to the right file, so memory does not grow with the corpus. A pool of
worker processes (one per CPU) encodes them in chunks of up to a million
characters, two chunks per worker in flight, and the results are written in
the corpus's order, so the files are the same for any number of workers. Every
`round(1 / val_fraction)`-th document goes to validation (spread through the
corpus, no randomness). A corpus with too few documents for that is split
inside each document instead: the last `val_fraction` of its lines go to
validation. Running `prepare` again with the same inputs reuses the files.

On their way from the corpus to the split, the documents are cleaned
(cleaning.py: Unicode, short and non-text documents, duplicates); what each
step removed is printed and recorded in meta.json under "cleaning".

Speed: with a pool, the main process only reads, cleans, splits and writes,
and the workers encode; so that the main process keeps up and the fixed costs
stay small beside the encoding, nothing in the main process runs per token
(ids come back from the workers as file bytes), files are read in blocks, and
GPT-2's tiktoken Encoding is built from the tokenizer already loaded. Work
that is per document and costly could run in the workers too: it would go in
`_ChunkEncoder.__call__`, before `self.encode`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from slm_tokenizer import END_OF_TEXT, RESERVED_TOKENS, BPETokenizer, gpt2
from slm_tokenizer.counting import default_workers

from ..config import DataConfig, parse_tokenizer_spec, tokenizer_file
from ..files import sha256_file
from ..naming import setting
from .cleaning import Cleaner, Cleaning, CleaningReport
from .sources import Corpus, CorpusError, resolve

FORMAT = "slm-data"
VERSION = 3  # bumped when the same inputs would give other tokens (3: cleaning)


@dataclass(frozen=True)
class PreparedData:
    """Token files ready for training."""

    directory: Path
    meta: dict

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.meta["dtype"])

    @property
    def tokenizer_path(self) -> Path:
        return self.directory / "tokenizer.json"

    def tokens(self, split: str) -> np.ndarray:
        """The token ids of "train" or "val", memory-mapped (nothing is read until used)."""
        path = self.directory / f"{split}.bin"
        if self.meta[f"{split}_tokens"] == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(path, dtype=self.dtype, mode="r")

    def load_tokenizer(self) -> BPETokenizer:
        return BPETokenizer.load(self.tokenizer_path)

    @property
    def cleaning(self) -> CleaningReport:
        """What cleaning removed, step by step (`.lines()` says it in words)."""
        return CleaningReport.from_dict(self.meta["cleaning"])


def default_data_dir(data: str, tokenizer: str) -> Path:
    """data/<source>-<tokenizer>, e.g. data/builtin-bbe-bpe-4096: one folder per combination."""
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in f"{data}-{tokenizer}")
    return Path("data") / re.sub("-+", "-", slug).strip("-.")[:80]


def prepare(
    source: str | Corpus,
    out_dir: str | os.PathLike,
    tokenizer: str = "gpt2",
    val_fraction: float = 0.1,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
    workers: int | None = None,
    text_field: str = "text",
    cleaning: Cleaning | None = None,
    max_documents: int | None = None,
) -> PreparedData:
    """Tokenize a corpus into `out_dir`, or reuse what an identical earlier call wrote there.

    `workers` processes encode the documents (default: one per CPU; 1, or a
    corpus under POOL_MIN_BYTES, encodes in this process). The files are the
    same for any number of workers. `cleaning` says which cleaning steps run
    (default: `Cleaning()`; a DataConfig's `.cleaning` holds its options).
    `max_documents` caps the documents read (of each split, for a dataset that
    ships its own), before cleaning.
    """
    if not 0 < val_fraction < 0.5:
        raise ValueError(f"val_fraction must be between 0 and 0.5, got {val_fraction}")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    kind, _ = parse_tokenizer_spec(tokenizer)
    cleaning = cleaning or Cleaning()
    if isinstance(source, Corpus):
        corpus = source
    else:
        corpus = resolve(source, cache_dir, text_field, max_documents)
    out_dir = Path(out_dir)
    fingerprint = _fingerprint(corpus, tokenizer, val_fraction, cleaning)
    existing = _load_current(out_dir, fingerprint)
    if existing is not None:
        return existing
    say = progress or (lambda message: None)
    _check_not_empty(corpus, val_fraction, cleaning)
    # The tokenizer is made before any folder: a failure leaves nothing behind.
    tok = _make_tokenizer(corpus, tokenizer, val_fraction, workers, say, cleaning)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".prepare-"))
    try:
        tok.save(staging / "tokenizer.json")
        eot = tok.special_tokens[END_OF_TEXT]
        dtype = np.dtype(np.uint16 if tok.vocab_size <= 2**16 else np.uint32)
        encoder = _ChunkEncoder(kind, str(staging / "tokenizer.json"), dtype.name, eot, tok)
        size = corpus.size_bytes()
        workers = workers if size is None or size >= POOL_MIN_BYTES else 1
        plural = "es" * (workers != 1)
        say(f"tokenizing {corpus.spec} ({workers} process{plural})")
        cleaner = Cleaner(cleaning)
        with _TokenizingProgress(progress is not None, size) as bar:
            counts, documents = _write_tokens(
                _split_documents(corpus, val_fraction, cleaner), staging, encoder, workers, bar
            )
        for line in cleaner.report.lines():
            say(line)

        meta = {
            "format": FORMAT,
            "version": VERSION,
            "source": corpus.spec,
            "fingerprint": fingerprint,
            "tokenizer": {
                "spec": tokenizer,
                "vocab_size": tok.vocab_size,
                "eot_id": eot,
                "sha256": sha256_file(staging / "tokenizer.json"),
            },
            "dtype": dtype.name,
            "train_tokens": counts["train"],
            "val_tokens": counts["val"],
            "train_documents": documents["train"],
            "val_documents": documents["val"],
            "skipped_files": corpus.skipped,
            "cleaning": cleaner.report.to_dict(),
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        # meta.json goes first and comes back last, so a crash in between leaves no
        # meta.json describing files it did not make.
        (out_dir / "meta.json").unlink(missing_ok=True)
        for name in ("train.bin", "val.bin", "tokenizer.json", "meta.json"):
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PreparedData(out_dir, meta)


def _check_not_empty(corpus: Corpus, val_fraction: float, cleaning: Cleaning) -> None:
    """Stop early on a corpus with no text, or none that cleaning keeps, naming what removed it."""
    cleaner = Cleaner(cleaning)
    if next(_split_documents(corpus, val_fraction, cleaner), None) is not None:
        return
    report, settings = cleaner.report, cleaner.settings
    if report.documents == 0:
        raise CorpusError(f"the corpus {corpus.spec} contains no text; give it a non-empty source")
    # Duplicates cannot empty a corpus (the first copy stays): short or non-text documents did.
    raise CorpusError(
        f"cleaning removed all {report.documents:,} documents of {corpus.spec}: "
        f"{report.short.documents:,} shorter than {settings.min_chars:,} characters, "
        f"{report.non_text.documents:,} with less than {settings.min_text_fraction:.0%} text; "
        f"keep them with {setting('min_chars', 0)} or {setting('min_text_fraction', 0)}"
    )


def prepare_config(
    config: DataConfig,
    out_dir: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> PreparedData:
    """`prepare` with a DataConfig's settings, into `out_dir`, else the config's `data_dir`,
    else data/SOURCE-TOKENIZER: what `slm-cli prepare` and pre-training call."""
    folder = out_dir or config.data_dir or default_data_dir(config.data, config.tokenizer)
    return prepare(
        config.data,
        folder,
        config.tokenizer,
        config.val_fraction,
        progress=progress,
        workers=config.workers,
        text_field=config.text_field,
        cleaning=config.cleaning,
        max_documents=config.max_documents,
    )


def _make_tokenizer(
    corpus: Corpus,
    tokenizer: str,
    val_fraction: float,
    workers: int,
    say: Callable[[str], None],
    cleaning: Cleaning,
) -> BPETokenizer:
    """GPT-2's, one from a file, or one trained on the corpus's training documents."""
    kind, vocab_size = parse_tokenizer_spec(tokenizer)
    if kind == "gpt2":
        return gpt2()
    if kind == "file":
        path = tokenizer_file(tokenizer)
        tok = BPETokenizer.load(path)  # slm's file or a Hugging Face tokenizer.json
        if END_OF_TEXT not in tok.special_tokens:
            raise ValueError(
                f"{path} has no {END_OF_TEXT} token to separate documents; train one that has "
                "it (slm-cli tokenizer train adds it)"
            )
        return tok
    say(f"training a {vocab_size:,}-token BPE tokenizer on {corpus.spec}")
    return BPETokenizer.train(
        _training_text(corpus, val_fraction, cleaning), vocab_size, RESERVED_TOKENS, workers=workers
    )


# Characters of text per task sent to a worker. The first chunk is small, so the workers
# start at once; the sizes then double up to CHUNK_CHARS, where handing a chunk over costs
# little; near the end of a corpus of known size they shrink again, so that the workers
# finish together.
FIRST_CHUNK_CHARS = 1 << 15
CHUNK_CHARS = 1 << 20
# A smaller corpus is encoded in this process: starting workers would cost more than they save.
POOL_MIN_BYTES = 1 << 20


@dataclass
class _EncodedChunk:
    """One chunk's token ids as each split's file bytes, and what they count."""

    data: dict[str, bytes]
    documents: dict[str, int]
    text_bytes: int


def _write_tokens(
    split_documents: Iterable[tuple[str, str]],
    staging: Path,
    encoder: _ChunkEncoder,
    workers: int,
    bar: _TokenizingProgress,
) -> tuple[dict[str, int], dict[str, int]]:
    """Encode the documents in chunks and append them to train.bin / val.bin, in order."""
    itemsize = encoder.dtype.itemsize
    counts = {"train": 0, "val": 0}
    documents = {"train": 0, "val": 0}
    with open(staging / "train.bin", "wb") as train, open(staging / "val.bin", "wb") as val:
        files = {"train": train, "val": val}
        chunks = _chunks(split_documents, bar.total_bytes, workers)
        for chunk in _encode_chunks(chunks, encoder, workers):
            for split, data in chunk.data.items():
                files[split].write(data)
                counts[split] += len(data) // itemsize
                documents[split] += chunk.documents[split]
            tokens = sum(len(data) for data in chunk.data.values()) // itemsize
            bar.advance(tokens, chunk.text_bytes)
    return counts, documents


def _chunks(
    split_documents: Iterable[tuple[str, str]], total_chars: int | None = None, workers: int = 1
) -> Iterator[list[tuple[str, str]]]:
    """Consecutive documents, in chunks of the sizes described at FIRST_CHUNK_CHARS.

    `total_chars` is the corpus's size if known (an estimate will do); a long
    document makes a chunk on its own.
    """
    smallest = min(FIRST_CHUNK_CHARS, CHUNK_CHARS)
    target, done = smallest, 0
    chunk: list[tuple[str, str]] = []
    size = 0
    for split, text in split_documents:
        chunk.append((split, text))
        size += len(text)
        if size >= target:
            yield chunk
            done += size
            chunk, size = [], 0
            target = min(2 * target, CHUNK_CHARS)
            if total_chars is not None:
                target = max(smallest, min(target, (total_chars - done) // (2 * workers)))
    if chunk:
        yield chunk


def _encode_chunks(
    chunks: Iterator[list[tuple[str, str]]], encoder: _ChunkEncoder, workers: int
) -> Iterator[_EncodedChunk]:
    """Each chunk encoded, in order: here, or by a pool of processes, 2 x workers chunks in flight.

    A bounded window rather than `Pool.imap`, whose feeder thread would read the
    whole corpus ahead of the workers. Forked workers inherit the encoder;
    spawned ones (macOS, Windows) load the tokenizer themselves. Each worker
    keeps its own pre-token cache, so a word that several workers meet is
    merged by each of them: the price of not sharing memory, and the main
    reason two workers are less than twice as fast on text with many distinct
    words, such as code.
    """
    if workers == 1:
        yield from map(encoder, chunks)
        return
    global _worker_encoder
    _worker_encoder = encoder
    pool = ProcessPoolExecutor(workers, initializer=_start_worker, initargs=encoder.args)
    try:
        pending: deque[Future[_EncodedChunk]] = deque()
        for chunk in chunks:
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
            pending.append(pool.submit(_encode_in_worker, chunk))
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)
        _worker_encoder = None


class _ChunkEncoder:
    """Encodes chunks of documents, each followed by `<|endoftext|>`, into file bytes.

    Per token, nothing runs in Python: tiktoken hands its ids over as an array
    (no list of ints at all), and slm's list of ids becomes an array in one
    call per document; each split's arrays are joined into bytes once per chunk.
    """

    def __init__(
        self, kind: str, tokenizer_path: str, dtype: str, eot: int, tok: BPETokenizer | None = None
    ) -> None:
        """`tok`, if given, is the tokenizer saved at `tokenizer_path` (not loaded again)."""
        self.args = (kind, tokenizer_path, dtype, eot)
        self.dtype = np.dtype(dtype)
        self.encode = _fast_encoder(kind, tokenizer_path, tok, self.dtype)
        self.end = np.array([eot], dtype=self.dtype)

    def __call__(self, chunk: list[tuple[str, str]]) -> _EncodedChunk:
        arrays: dict[str, list[np.ndarray]] = {"train": [], "val": []}
        documents = {"train": 0, "val": 0}
        text_bytes = 0
        for split, text in chunk:
            arrays[split] += (self.encode(text), self.end)
            documents[split] += 1
            text_bytes += len(text) if text.isascii() else _utf8_length(text)
        data = {
            split: np.concatenate(parts, dtype=self.dtype, casting="unsafe").tobytes()
            for split, parts in arrays.items()
            if parts
        }
        return _EncodedChunk(data, documents, text_bytes)


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


# The encoder of this process: set by `_encode_chunks`, inherited by forked workers, loaded
# by spawned ones in `_start_worker`. Module-level functions, so any start method works.
_worker_encoder: _ChunkEncoder | None = None


def _start_worker(kind: str, tokenizer_path: str, dtype: str, eot: int) -> None:
    global _worker_encoder
    if _worker_encoder is None or _worker_encoder.args != (kind, tokenizer_path, dtype, eot):
        _worker_encoder = _ChunkEncoder(kind, tokenizer_path, dtype, eot)


def _encode_in_worker(chunk: list[tuple[str, str]]) -> _EncodedChunk:
    assert _worker_encoder is not None, "_start_worker runs first in each worker"
    return _worker_encoder(chunk)


def _fast_encoder(
    kind: str, tokenizer_path: str, tok: BPETokenizer | None, dtype: np.dtype
) -> Callable[[str], np.ndarray]:
    """Text -> an array of its ids.

    GPT-2 goes through tiktoken (the same ids, tested in slm-tokenizer, ~2x
    faster), whose `encode_to_numpy` skips the list of ints (a quarter faster
    again); other tokenizers through slm's BPE.
    """
    if kind == "gpt2":
        from slm_tokenizer.gpt2 import tiktoken_from_gpt2, tiktoken_gpt2

        encoding = tiktoken_gpt2() if tok is None else tiktoken_from_gpt2(tok)
        if hasattr(encoding, "encode_to_numpy"):  # not in the oldest tiktoken slm accepts
            return partial(_tiktoken_array, encoding)
        encode = encoding.encode_ordinary
    else:
        encode = (tok or BPETokenizer.load(tokenizer_path)).encode_ordinary

    def encode_to_array(text: str) -> np.ndarray:
        ids = encode(text)
        return np.fromiter(ids, dtype, count=len(ids))

    return encode_to_array


def _tiktoken_array(encoding, text: str) -> np.ndarray:
    """tiktoken's `encode_ordinary` as a uint32 array, with its fix for lone surrogates."""
    try:
        return encoding.encode_to_numpy(text, disallowed_special=())
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return encoding.encode_to_numpy(text, disallowed_special=())


class _TokenizingProgress:
    """A transient rich progress bar over the corpus's bytes, with MB/s, the ETA and tokens."""

    def __init__(self, enabled: bool, total_bytes: int | None = None) -> None:
        self.enabled = enabled
        self.total_bytes = total_bytes
        self.tokens = 0
        self.text_bytes = 0
        self.start = time.perf_counter()

    def __enter__(self) -> _TokenizingProgress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn

            self.progress = Progress(
                TextColumn("tokenizing"),
                BarColumn(bar_width=16),
                TextColumn("{task.description}"),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("tokenizing", total=self.total_bytes)
        self.start = time.perf_counter()
        return self

    def advance(self, tokens: int, text_bytes: int) -> None:
        self.tokens += tokens
        self.text_bytes += text_bytes
        if self.enabled:
            self.progress.update(
                self.task, completed=self.text_bytes, description=self.describe(time.perf_counter())
            )

    def describe(self, now: float) -> str:
        """E.g. "12.0/64.2 MB, 16.1 MB/s, ETA 0:03, 3,210,987 tokens" (80 columns with the bar)."""
        rate = self.text_bytes / max(now - self.start, 1e-9)
        done = f"{self.text_bytes / 1e6:.1f}"
        if not self.total_bytes or rate <= 0:
            return f"{done} MB, {rate / 1e6:.1f} MB/s, {self.tokens:,} tokens"
        left = max(0.0, self.total_bytes - self.text_bytes) / rate
        return (
            f"{done}/{self.total_bytes / 1e6:.1f} MB, {rate / 1e6:.1f} MB/s, "
            f"ETA {int(left // 60)}:{int(left % 60):02d}, {self.tokens:,} tokens"
        )

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()


def _training_text(corpus: Corpus, val_fraction: float, cleaning: Cleaning) -> Iterator[str]:
    """Training text for the tokenizer: the training documents only, so validation stays unseen,
    and cleaned, as the tokens will be."""
    for split, text in _split_documents(corpus, val_fraction, Cleaner(cleaning)):
        if split == "train":
            yield text


def _split_documents(
    corpus: Corpus, val_fraction: float, clean: Callable[[Iterable[str]], Iterator[str]]
) -> Iterator[tuple[str, str]]:
    """The corpus's documents, cleaned by `clean` (a Cleaner), each with its split."""
    if corpus.shipped_splits:  # the corpus ships its own split
        for split in ("train", "val"):
            for text in clean(corpus.documents(split)):
                yield split, text
        return
    every = round(1 / val_fraction)
    # Peek far enough to know whether there are enough documents to split whole.
    documents = clean(corpus.documents())
    head = []
    for text in documents:
        head.append(text)
        if len(head) >= 2 * every:
            break
    if len(head) < 2 * every:
        for text in head:
            yield from _split_inside(text, val_fraction)
        return
    for index, text in enumerate(_chain(head, documents)):
        yield ("val" if index % every == every - 1 else "train"), text


def _split_inside(text: str, val_fraction: float) -> Iterator[tuple[str, str]]:
    """Too few documents: each document's tail (whole lines if it has several) is validation."""
    lines = text.splitlines(keepends=True)
    if len(lines) >= 2:
        cut = min(len(lines) - 1, max(1, math.floor(len(lines) * (1 - val_fraction))))
        head, tail = "".join(lines[:cut]), "".join(lines[cut:])
    else:
        cut = math.floor(len(text) * (1 - val_fraction))
        head, tail = text[:cut], text[cut:]
    if head:
        yield "train", head
    if tail:
        yield "val", tail


def _chain(first: list[str], rest: Iterable[str]) -> Iterator[str]:
    yield from first
    yield from rest


def _fingerprint(corpus: Corpus, tokenizer: str, val_fraction: float, cleaning: Cleaning) -> str:
    """What the token files depend on: a tokenizer file counts by its content, not its path."""
    path = tokenizer_file(tokenizer)
    tokenizer_identity = tokenizer if path is None else sha256_file(path)
    identity = json.dumps(
        [VERSION, corpus.fingerprint(), tokenizer_identity, val_fraction, cleaning.to_dict()]
    )
    return hashlib.sha256(identity.encode()).hexdigest()


def _load_current(out_dir: Path, fingerprint: str) -> PreparedData | None:
    """The data already in `out_dir` if it was made from the same inputs and is intact."""
    try:
        meta = json.loads((out_dir / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT or meta.get("fingerprint") != fingerprint:
        return None
    data = PreparedData(out_dir, meta)
    for split in ("train", "val"):
        path = out_dir / f"{split}.bin"
        if (
            not path.is_file()
            or path.stat().st_size != meta[f"{split}_tokens"] * data.dtype.itemsize
        ):
            return None
    if (
        not data.tokenizer_path.is_file()
        or sha256_file(data.tokenizer_path) != meta["tokenizer"]["sha256"]
    ):
        return None
    return data


def load_prepared(directory: str | os.PathLike) -> PreparedData:
    """Open data that `prepare` wrote, with a clear error if it is missing or damaged."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    except OSError:
        raise CorpusError(
            f"{directory} holds no prepared data (no meta.json); run prepare first"
        ) from None
    except ValueError:
        raise CorpusError(f"{directory}/meta.json is damaged; run prepare again") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CorpusError(
            f"{directory}/meta.json is not slm data version {VERSION}; run prepare again"
        )
    return PreparedData(directory, meta)
