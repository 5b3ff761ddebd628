"""A tokenizer file as the tokenizer spec: trained once, used for many runs (issue 19, item 3).

`prepare` takes the path of slm's tokenizer file or of a Hugging Face
tokenizer.json, as nanoGPT and nanochat reuse one tokenizer. The prepared
data's cache key follows the file's content, not its name.
"""

from __future__ import annotations

import json
import shutil

import pytest
from slm_tokenizer import END_OF_TEXT, BPETokenizer
from slm_tokenizer.hf_format import to_hf_tokenizer
from slm_train import parse_tokenizer_spec, prepare


@pytest.fixture
def tokenizer_file(tmp_path, corpus_file):
    tokenizer = BPETokenizer.train(corpus_file.read_text(), 300, [END_OF_TEXT], workers=1)
    return tokenizer.save(tmp_path / "tok.json")


def tokens(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ("train.bin", "val.bin")}


def test_a_path_is_a_tokenizer_spec(tmp_path, corpus_file, tokenizer_file):
    assert parse_tokenizer_spec(str(tokenizer_file)) == ("file", None)
    by_path = prepare(str(corpus_file), tmp_path / "by-path", str(tokenizer_file))
    prefixed = prepare(str(corpus_file), tmp_path / "prefixed", f"file:{tokenizer_file}")
    assert tokens(by_path.directory) == tokens(prefixed.directory)
    assert by_path.load_tokenizer().merges == BPETokenizer.load(tokenizer_file).merges


def test_a_hugging_face_tokenizer_json_prepares_the_same_tokens(
    tmp_path, corpus_file, tokenizer_file
):
    hf = tmp_path / "hf" / "tokenizer.json"
    hf.parent.mkdir()
    hf.write_text(json.dumps(to_hf_tokenizer(BPETokenizer.load(tokenizer_file))))
    ours = prepare(str(corpus_file), tmp_path / "ours", str(tokenizer_file))
    theirs = prepare(str(corpus_file), tmp_path / "theirs", str(hf))
    assert tokens(theirs.directory) == tokens(ours.directory)
    # The data keeps slm's own file, whatever the source's format.
    assert theirs.tokenizer_path.read_bytes() == ours.tokenizer_path.read_bytes()


def test_a_tokenizer_json_with_its_special_tokens_first_prepares_its_ids(
    tmp_path, corpus_file, tokenizer_file
):
    """SmolLM2's layout: 17 special tokens (<|endoftext|> at 0) before the vocabulary."""
    ours = BPETokenizer.load(tokenizer_file)
    first = {END_OF_TEXT: 0, **{f"<|extra_{i}|>": i + 1 for i in range(16)}}
    plain = {i + 17: token for i, token in ours.vocab.items() if i != ours.eot_id}
    moved = BPETokenizer.from_vocab_and_merges(plain, ours.merges, first)
    hf = tmp_path / "smollm2" / "tokenizer.json"
    hf.parent.mkdir()
    hf.write_text(json.dumps(to_hf_tokenizer(moved)))
    base = prepare(str(corpus_file), tmp_path / "ours", str(tokenizer_file))
    shifted = prepare(str(corpus_file), tmp_path / "shifted", str(hf))
    assert shifted.load_tokenizer().vocab == moved.vocab
    for split in ("train", "val"):
        expected = base.tokens(split).astype("int64") + 17
        expected[expected == ours.eot_id + 17] = 0
        assert shifted.tokens(split).tolist() == expected.tolist()


def test_the_prepared_data_follows_the_files_content(tmp_path, corpus_file, tokenizer_file):
    said: list[str] = []
    first = prepare(str(corpus_file), tmp_path / "data", str(tokenizer_file), progress=said.append)
    assert said  # it tokenized
    stamp = (tmp_path / "data" / "train.bin").stat().st_mtime_ns

    said.clear()
    moved = tmp_path / "elsewhere" / "same.json"
    moved.parent.mkdir()
    shutil.copyfile(tokenizer_file, moved)
    again = prepare(str(corpus_file), tmp_path / "data", str(moved), progress=said.append)
    assert said == [] and again.meta["fingerprint"] == first.meta["fingerprint"]
    assert (tmp_path / "data" / "train.bin").stat().st_mtime_ns == stamp

    other = BPETokenizer.train(corpus_file.read_text(), 280, [END_OF_TEXT], workers=1)
    other.save(tokenizer_file)  # the same path, another tokenizer
    changed = prepare(str(corpus_file), tmp_path / "data", str(tokenizer_file))
    assert changed.meta["fingerprint"] != first.meta["fingerprint"]
    assert changed.meta["tokenizer"]["vocab_size"] == 280
    assert changed.load_tokenizer().merges == other.merges


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing.json", r"tokenizer file missing\.json does not exist; save one with "),
        ("folder", r"folder is a folder, not a tokenizer file; give the file in it"),
        ("damaged.json", r"damaged\.json is damaged \(invalid JSON"),
        ("wordpiece.json", r"wordpiece\.json holds a 'WordPiece' tokenizer; slm reads"),
        ("no-eot.json", r"no-eot\.json has no <\|endoftext\|> token"),
    ],
)
def test_a_bad_tokenizer_file_is_named_with_the_fix(
    tmp_path, corpus_file, spec, message, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "damaged.json").write_text('{"format": ')
    (tmp_path / "wordpiece.json").write_text('{"model": {"type": "WordPiece"}}')
    BPETokenizer.train(corpus_file.read_text(), 260, workers=1).save(tmp_path / "no-eot.json")
    with pytest.raises(ValueError, match=message):
        prepare(str(corpus_file), tmp_path / "data", spec)
    assert not (tmp_path / "data").exists()  # nothing left behind
