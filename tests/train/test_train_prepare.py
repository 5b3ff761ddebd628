"""Data preparation in worker processes: the same bytes as in one process, and the progress line."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import story
from slm_tokenizer import RESERVED_TOKENS, BPETokenizer, gpt2
from slm_tokenizer.gpt2 import tiktoken_gpt2
from slm_train import prepare
from slm_train.data import prepare as prepare_module

FILES = ("train.bin", "val.bin", "tokenizer.json")


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few documents, so that even a small corpus keeps two workers busy."""
    monkeypatch.setattr(prepare_module, "CHUNK_CHARS", 2_000)
    monkeypatch.setattr(prepare_module, "POOL_MIN_BYTES", 0)


@pytest.fixture
def long_corpus(tmp_path):
    """120 documents of varied text, with non-ASCII characters and a long document."""
    documents = [story(i) + f" Café №{i} — naïve ✓." for i in range(119)]
    documents.insert(50, " ".join(story(i) for i in range(30)))
    path = tmp_path / "corpus.txt"
    path.write_text("\n<|endoftext|>\n".join(documents) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("tokenizer", "workers"), [("bpe:320", 2), ("gpt2", 2), ("gpt2", 3)])
def test_workers_write_the_same_files_as_one_process(
    tmp_path, long_corpus, small_chunks, monkeypatch, tokenizer, workers
):
    pools = []

    class Pool(prepare_module.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "ProcessPoolExecutor", Pool)
    one = prepare(str(long_corpus), tmp_path / "one", tokenizer, workers=1)
    assert pools == []
    two = prepare(str(long_corpus), tmp_path / "two", tokenizer, workers=workers)
    assert [args[0] for args in pools] == [workers]
    for name in FILES:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert one.meta == two.meta
    assert one.meta["train_documents"] + one.meta["val_documents"] == 120
    assert len(one.tokens("val")) > 0


TRICKY_TEXTS = [
    "",
    "Hello world",
    "<|endoftext|> is text here",
    "naïve 東京 🙂",
    "lone \ud800 surrogate",
]


@pytest.mark.parametrize("kind", ["gpt2", "file"])
def test_documents_become_arrays_of_the_tokenizers_ids(tmp_path, kind):
    """tiktoken's encode_to_numpy, or slm's list made an array: encode_ordinary's ids."""
    if kind == "gpt2":
        tok, reference = gpt2(), tiktoken_gpt2().encode_ordinary
    else:
        tok = BPETokenizer.train([story(i) for i in range(40)], 300, RESERVED_TOKENS)
        tok.save(tmp_path / "tokenizer.json")
        reference = tok.encode_ordinary
    for given in (tok, None):  # in this process, and loaded by a spawned worker
        encode = prepare_module._fast_encoder(
            kind, str(tmp_path / "tokenizer.json"), given, np.dtype(np.uint16)
        )
        for text in TRICKY_TEXTS:
            ids = encode(text)
            assert ids.tolist() == reference(text)


def test_a_small_corpus_is_encoded_without_a_pool(tmp_path, long_corpus, monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("a corpus under POOL_MIN_BYTES started a pool")

    monkeypatch.setattr(prepare_module, "ProcessPoolExecutor", no_pool)
    assert long_corpus.stat().st_size < prepare_module.POOL_MIN_BYTES
    data = prepare(str(long_corpus), tmp_path / "data", "gpt2", workers=2)
    assert data.meta["train_documents"] + data.meta["val_documents"] == 120


def test_the_chunks_cover_the_documents_in_order(small_chunks):
    documents = [("train" if i % 3 else "val", f"document {i} " * (i * 10)) for i in range(50)]
    chunks = list(prepare_module._chunks(iter(documents)))
    assert len(chunks) > 5
    assert [item for chunk in chunks for item in chunk] == documents
    assert all(sum(len(text) for _, text in chunk[:-1]) < 2_000 for chunk in chunks)


def test_chunks_start_small_grow_and_shrink_near_the_end(monkeypatch):
    """Small at first (the workers start at once), large in the middle, small at the end."""
    monkeypatch.setattr(prepare_module, "FIRST_CHUNK_CHARS", 100)
    monkeypatch.setattr(prepare_module, "CHUNK_CHARS", 1_000)
    documents = [("train", "x" * 10)] * 2_000  # 20,000 characters
    chunks = prepare_module._chunks(iter(documents), total_chars=20_000, workers=2)
    sizes = [sum(len(text) for _, text in chunk) for chunk in chunks]
    assert sum(sizes) == 20_000
    assert sizes[:5] == [100, 200, 400, 800, 1_000]
    assert sizes.count(1_000) >= 10 and max(sizes[-4:]) == 100
    left = 20_000
    for size in sizes[1:]:
        left -= size
        # at most a quarter of what was left (two chunks per worker), but never under the first
        assert size <= max(100, (left + size) // 4)


def test_workers_must_be_positive(tmp_path, corpus_file):
    with pytest.raises(ValueError, match="workers must be at least 1"):
        prepare(str(corpus_file), tmp_path / "data", "gpt2", workers=0)


def test_progress_line_gives_the_rate_and_an_eta_when_the_size_is_known():
    bar = prepare_module._TokenizingProgress(enabled=False, total_bytes=10_000_000)
    bar.start = 0.0
    bar.advance(tokens=500, text_bytes=2_000_000)
    line = bar.describe(now=1.0)
    assert line == "2.0/10.0 MB, 2.0 MB/s, ETA 0:04, 500 tokens"
    unknown = prepare_module._TokenizingProgress(enabled=False)
    unknown.start = 0.0
    unknown.advance(tokens=1_234, text_bytes=1_000_000)
    assert unknown.describe(now=2.0) == "1.0 MB, 0.5 MB/s, 1,234 tokens"


def test_the_progress_bar_fits_80_columns(monkeypatch):
    from rich.console import Console

    monkeypatch.setattr(prepare_module.time, "perf_counter", lambda: 1_000.0)
    bar = prepare_module._TokenizingProgress(enabled=True, total_bytes=2_000_000_000)
    console = Console(width=80, record=True, force_terminal=True, color_system=None)
    with bar:
        bar.start = 900.0  # 100 seconds in
        bar.advance(tokens=512_345_678, text_bytes=1_234_000_000)
        console.print(bar.progress.make_tasks_table(bar.progress.tasks))
    line = console.export_text().rstrip("\n")
    assert "\n" not in line and len(line) <= 80
    assert line.startswith("tokenizing ━") and line.endswith(
        "1234.0/2000.0 MB, 12.3 MB/s, ETA 1:02, 512,345,678 tokens"
    )


def test_cli_prepare_passes_workers(tmp_path, corpus_file, monkeypatch):
    from slm_cli.main import app
    from slm_train.data import prepare as prepare_module
    from typer.testing import CliRunner

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs["workers"])
        return prepare(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "prepare", spy)
    out = tmp_path / "d"
    args = ["prepare", "--data", str(corpus_file), "--tokenizer", "gpt2", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert calls == [2] and (out / "train.bin").stat().st_size > 0


def test_spawned_workers_load_the_tokenizer_themselves(
    tmp_path, long_corpus, small_chunks, monkeypatch
):
    """macOS and Windows start workers with 'spawn': nothing is inherited, all is the same."""
    import functools
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    pool = functools.partial(prepare_module.ProcessPoolExecutor, mp_context=spawn)
    one = prepare(str(long_corpus), tmp_path / "one", "bpe:300", workers=1)
    monkeypatch.setattr(prepare_module, "ProcessPoolExecutor", pool)
    prepare(str(long_corpus), tmp_path / "two", f"file:{one.tokenizer_path}", workers=2)
    for name in ("train.bin", "val.bin"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
