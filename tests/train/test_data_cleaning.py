"""Cleaning (data/cleaning.py): each step against by-hand expectations, its report in
meta.json, its settings in the fingerprint, DataConfig's options, and what the CLI and
training print."""

from __future__ import annotations

import json
import random
import re
import sys
import unicodedata

import pytest
from helpers import story
from slm_train import Cleaning, ConfigError, CorpusError, DataConfig, TrainConfig, prepare, resolve
from slm_train.data import prepare as prepare_module
from slm_train.data.cleaning import (
    _PRIME,
    Cleaner,
    CleaningReport,
    normalize,
    text_fraction,
    word_hashes,
)

EOT = "\n<|endoftext|>\n"
# Random bytes as a text reader decodes them: mostly U+FFFD and control characters.
BINARY = bytes((i * 151 + 7) % 256 for i in range(3000)).decode("utf-8", "replace")
BASE64 = "data:image/png;base64," + "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4" * 40


def long_text(seed: int) -> str:
    """About 200 words, few of them repeated in the same order: a document worth keeping."""
    return story(seed, sentences=30)


def write_corpus(tmp_path, documents: list[str]):
    path = tmp_path / "corpus.txt"
    path.write_text(EOT.join(documents) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------- normalisation
def test_nfd_comes_back_nfc():
    decomposed = "Cafe\u0301 cre\u0300me, A\u030angstro\u0308m"
    assert normalize(decomposed) == "Caf\u00e9 cr\u00e8me, \u00c5ngstr\u00f6m"


def test_control_characters_go_and_line_breaks_become_newlines():
    text = "\ufeffOne\r\nTwo\rThree\x00\x07 four\x7f\x9b five"
    text += "\tsix\u00adseven\x0cEight\u2028nine\x85ten"
    assert normalize(text) == "One\nTwo\nThree four five\tsixseven\nEight\nnine\nten"


def test_text_that_is_already_clean_is_returned_as_it_is():
    ascii_text = "Plain text,\n\twith a tab and\nnewlines."
    assert normalize(ascii_text) is ascii_text
    # Joiners and direction marks spell words in some scripts: they stay.
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 \u200f\u05e9\u05dc\u05d5\u05dd"
    assert normalize(persian) is persian


# Characters each fast path must get right: line breaks, controls, C1, joiners, BOM,
# noncharacters, private use, a lone surrogate, decomposed accents, CJK and punctuation.
POOL = (
    "ab Z9+/\n\t\r\x0b\x0c\x00\x1f\x7f\x85\x9f\xa0\xad\xe9e\u0301\u2014\u2028\u2029\u200d"
    "\ufeff\ufffd\ufffe\uffff\ue000\ud800\U000f0000\u2713\u4e2d\uff0c"
)


def random_texts(count: int = 400):
    rng = random.Random(0)
    for _ in range(count):
        pieces = [rng.choice(POOL) for _ in range(rng.randint(0, 80))]
        if rng.random() < 0.3:
            pieces.insert(rng.randint(0, len(pieces)), "QUJD" * rng.randint(8, 15))
        plain = rng.random() < 0.3  # ASCII or Latin-1 only, for those fast paths
        yield "".join(p for p in pieces if not plain or p.isascii() or p == "\xe9")


def test_the_fast_paths_agree_with_the_plain_definitions():
    for text in random_texts():
        slow = unicodedata.normalize("NFC", text)
        slow = re.sub("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\xad\ufeff\ufffe\uffff]", "",
                      re.sub("\r\n?|[\x0b\x0c\x85\u2028\u2029]", "\n", slow))  # fmt: skip
        assert normalize(text) == slow, ascii(text)
        junk = sum(not_text(ch) for ch in text) + sum(
            len(run) for run in re.findall("[A-Za-z0-9+/]{40,}", text)
        )
        assert text_fraction(text) == pytest.approx(max(0.0, 1 - junk / max(len(text), 1))), text


def not_text(ch: str) -> bool:
    code = ord(ch)
    return (
        (code < 0x20 and ch not in "\t\n\r\x0b\x0c")
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xF8FF
        or 0xFFFD <= code <= 0xFFFF
        or code >= 0xF0000
    )


# ----------------------------------------------------------------------- non-text share
def test_text_fraction_counts_junk_and_blobs_not_scripts():
    assert text_fraction("Plain prose, with punctuation; and numbers 1, 2, 3.") == 1.0
    hindi = "हिन्दी भाषा सुंदर है।"
    assert text_fraction(hindi) == 1.0  # vowel signs are not letters, and still text
    code = "def f(x):\n    return x  # sha256 " + "ab12" * 16 + "\n" + "    y = x * 2\n" * 20
    assert text_fraction(code) > 0.8
    table = "| name | count |\n|------|-------|\n" + "| cat  |    12 |\n" * 30
    assert text_fraction(table) == 1.0
    assert text_fraction(BASE64) < 0.05
    assert text_fraction(BINARY) < 0.5
    half = "x " * 50 + "\ufffd" * 100
    assert text_fraction(half) == pytest.approx(0.5)


def test_text_fraction_looks_at_a_bounded_prefix():
    junk_after = "Readable text. " * 1000 + "\ufffd" * 50_000
    assert text_fraction(junk_after) == 1.0


# ----------------------------------------------------------------------- the cleaner
def test_each_step_removes_what_it_should_and_keeps_the_rest():
    kept = [long_text(1), long_text(2), "A short but real sentence of some length."]
    near = long_text(1).replace("cat", "hat", 1)
    assert near != long_text(1)
    documents = [kept[0], "__init__", kept[1], kept[0], BINARY, near, kept[2], BASE64]
    cleaner = Cleaner(Cleaning(near_dedup=0.8))
    assert list(cleaner(documents)) == kept
    report = cleaner.report
    assert (report.documents, report.kept) == (8, 3)
    assert (report.short.documents, report.short.characters) == (1, len("__init__"))
    assert report.non_text.documents == 2
    assert report.non_text.characters == len(normalize(BINARY)) + len(BASE64)
    assert (report.duplicates.documents, report.duplicates.characters) == (1, len(kept[0]))
    assert (report.near_duplicates.documents, report.near_duplicates.characters) == (1, len(near))
    assert report.normalized.documents == 1  # the binary one lost its control characters
    # Deterministic: the same corpus loses the same documents every time.
    assert list(Cleaner(Cleaning(near_dedup=0.8))(documents)) == kept


@pytest.mark.parametrize(
    ("off", "document"),
    [
        ({"normalize": False}, "Cafe\u0301 au lait\r\nwith a line break, long enough."),
        ({"min_chars": 0}, "__init__"),
        ({"min_text_fraction": 0}, BASE64),
    ],
)
def test_a_step_turned_off_keeps_the_document(off, document):
    assert list(Cleaner(Cleaning(**off))([document])) == [document]
    assert list(Cleaner()([document])) != [document]


def test_duplicates_stay_when_their_steps_are_off():
    text, near = long_text(3), long_text(3).replace("dog", "fox", 1)
    assert list(Cleaner(Cleaning(dedup=False))([text, text])) == [text, text]
    assert list(Cleaner()([text, near])) == [text, near]  # near-duplicates: off by default


def test_the_builtin_corpus_loses_nothing():
    cleaner = Cleaner()
    chapters = list(resolve("builtin:bbe").documents())
    assert list(cleaner(chapters)) == chapters
    assert cleaner.report.kept == cleaner.report.documents == 1190


def test_the_report_says_what_each_step_did_and_survives_json():
    cleaner = Cleaner(Cleaning(near_dedup=0.8))
    list(cleaner([long_text(1), long_text(1), "tiny", "x\r\ny " * 20]))
    report = cleaner.report
    assert report.lines() == [
        "cleaning kept 2 of 4 documents",
        "  Unicode NFC and control characters: 1 document changed (20 characters removed)",
        "  short (under 32 characters): 1 document removed (4 characters)",
        "  non-text (under 50% text): 0 documents removed",
        f"  exact duplicates: 1 document removed ({len(long_text(1)):,} characters)",
        "  near-duplicates (MinHash similarity >= 0.8): 0 documents removed",
    ]
    again = CleaningReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report


def test_word_hashes_are_the_polynomial_hash_of_each_word():
    """numpy's all-at-once hashes equal the plain definition, word by word."""
    data = "  the cat\tsat on\nthe  mat, naïve the\x0bend ".encode()
    expected = [
        sum(byte * pow(_PRIME, j, 2**64) for j, byte in enumerate(word)) % 2**64
        for word in data.split()
    ]
    assert word_hashes(data).tolist() == expected and len(expected) == 9
    assert word_hashes(b"").tolist() == word_hashes(b" \n ").tolist() == []


def test_near_dedup_without_datasketch_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasketch", None)  # import datasketch fails
    with pytest.raises(CorpusError, match=r"near_dedup needs datasketch: pip install datasketch"):
        Cleaner(Cleaning(near_dedup=0.8))


# ----------------------------------------------------------------------- prepare
def test_prepare_writes_the_cleaned_documents_and_records_the_report(tmp_path):
    documents = [long_text(i) for i in range(20)]
    documents[5] = "Cafe\u0301 " + documents[5]
    corpus = write_corpus(tmp_path, [*documents, documents[2], "Hi.", BASE64])
    messages = []
    data = prepare(str(corpus), tmp_path / "data", "gpt2", progress=messages.append)
    cleaned = [text.replace("Cafe\u0301", "Caf\u00e9") for text in documents]
    tok = data.load_tokenizer()
    train = tok.decode(data.tokens("train").tolist())
    val = tok.decode(data.tokens("val").tolist())
    eot = "<|endoftext|>"
    assert val == "".join(d + eot for i, d in enumerate(cleaned) if i % 10 == 9)
    assert train == "".join(d + eot for i, d in enumerate(cleaned) if i % 10 != 9)
    record = json.loads((tmp_path / "data" / "meta.json").read_text())["cleaning"]
    assert record["settings"] == Cleaning().to_dict()
    assert (record["documents_in"], record["documents_kept"]) == (23, 20)
    assert record["duplicates"] == {"documents": 1, "characters": len(documents[2])}
    assert record["short"]["documents"] == record["non_text"]["documents"] == 1
    assert record["normalized"] == {"documents": 1, "characters": 1}
    assert "  exact duplicates: 1 document removed" in "\n".join(messages)
    assert data.cleaning.lines()[0] == "cleaning kept 20 of 23 documents"


def test_the_cleaning_settings_are_part_of_the_fingerprint(tmp_path):
    corpus = write_corpus(tmp_path, [long_text(i) for i in range(20)] + [long_text(0)])
    first = prepare(str(corpus), tmp_path / "data", "gpt2")
    assert prepare(str(corpus), tmp_path / "data", "gpt2").meta == first.meta  # reused
    kept = prepare(str(corpus), tmp_path / "data", "gpt2", cleaning=Cleaning(dedup=False))
    assert kept.meta["fingerprint"] != first.meta["fingerprint"]
    assert kept.meta["train_documents"] + kept.meta["val_documents"] == 21
    assert first.meta["train_documents"] + first.meta["val_documents"] == 20


def test_the_tokenizer_is_trained_on_cleaned_text(tmp_path):
    documents = [long_text(i) for i in range(20)]
    corpus = resolve(str(write_corpus(tmp_path, [*documents, "Cafe\u0301 " + long_text(30)])))
    text = list(prepare_module._training_text(corpus, 0.1, Cleaning()))
    assert "Caf\u00e9 " + long_text(30) in text and not any("\u0301" in t for t in text)


def test_a_corpus_that_cleaning_empties_names_the_step(tmp_path):
    corpus = write_corpus(tmp_path, ["one", "two words", "three"])
    message = (
        r"^cleaning removed all 3 documents of .*corpus.txt: 3 shorter than 32 characters, 0 "
        r"with less than 50% text; keep them with min_chars=0 or min_text_fraction=0$"
    )
    with pytest.raises(CorpusError, match=message):
        prepare(str(corpus), tmp_path / "data", "gpt2")
    data = prepare(str(corpus), tmp_path / "data", "gpt2", cleaning=Cleaning(min_chars=0))
    assert data.meta["cleaning"]["documents_kept"] == 3


# ----------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"min_chars": -1}, r"^min_chars must be 0 or more, got -1$"),
        ({"near_dedup": 0.0}, r"^near_dedup must be in \(0, 1\]"),
        ({"near_dedup": 1.5}, r"^near_dedup must be in \(0, 1\]"),
        ({"min_text_fraction": 1.5}, r"^min_text_fraction must be between 0 and 1, got 1.5$"),
    ],
)
def test_out_of_range_cleaning_options_are_one_line_config_errors(values, message):
    for config_class in (DataConfig, TrainConfig):
        with pytest.raises(ConfigError, match=message):
            config_class(**values)


def test_train_config_carries_the_data_fields_and_old_configs_still_load(tmp_path):
    config = TrainConfig(near_dedup=0.9, min_chars=10)
    assert config.cleaning == Cleaning(near_dedup=0.9, min_chars=10)
    assert DataConfig().cleaning == Cleaning()
    old = TrainConfig().to_dict()
    for name in ("normalize", "min_chars", "min_text_fraction", "dedup", "near_dedup"):
        del old[name]  # a config.json written before cleaning existed
    assert TrainConfig.from_dict(old).cleaning == Cleaning()
    toml = tmp_path / "train.toml"
    toml.write_text('data = "notes/"\nnear_dedup = 0.8\ndedup = false\n')
    assert TrainConfig.from_toml(toml).cleaning == Cleaning(near_dedup=0.8, dedup=False)


def test_training_passes_the_cleaning_on_and_shows_its_lines(tmp_path):
    from slm_train import Reporter
    from slm_train.pretrain import prepare_data
    from slm_train.runtime import Distributed

    class Messages(Reporter):
        def __init__(self):
            self.lines = []

        def message(self, text):
            self.lines.append(text)

    corpus = write_corpus(tmp_path, [long_text(i) for i in range(20)] + ["Hi."])
    config = TrainConfig(data=str(corpus), tokenizer="gpt2", data_dir=str(tmp_path / "d"))
    reporter = Messages()
    data = prepare_data(config.replace(min_chars=0), Distributed(), reporter)
    assert data.meta["cleaning"]["settings"]["min_chars"] == 0
    assert (
        "  short: 0" not in reporter.lines and "cleaning kept 21 of 21 documents" in reporter.lines
    )


# ----------------------------------------------------------------------- the command line
def test_cli_prepare_takes_the_data_options_and_shows_the_cleaning(tmp_path, monkeypatch):
    import dataclasses

    from slm_cli.main import app
    from typer.testing import CliRunner

    runner = CliRunner()
    help_text = runner.invoke(app, ["prepare", "--help"], env={"COLUMNS": "200"}).output
    for field in dataclasses.fields(DataConfig):
        flag = f"--{field.name.replace('_', '-')}"
        assert (flag in help_text) == (field.name != "data_dir"), flag  # --out instead
    monkeypatch.chdir(tmp_path)
    documents = [long_text(i) for i in range(20)]
    near = documents[4].replace("cat", "hat", 1)
    write_corpus(tmp_path, [*documents, documents[3], near])
    args = ["prepare", "--data", "corpus.txt", "--tokenizer", "gpt2", "--near-dedup", "0.8"]
    result = runner.invoke(app, [*args, "--workers", "1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "  exact duplicates: 1 document removed" in result.output
    assert "  near-duplicates (MinHash similarity >= 0.8): 1 document removed" in result.output
    meta = json.loads((tmp_path / "data" / "corpus.txt-gpt2" / "meta.json").read_text())
    assert meta["cleaning"]["documents_kept"] == 20
    again = runner.invoke(app, args, env={"COLUMNS": "200"})  # reused: the table still says it
    assert "kept 20 of 22 documents" in again.output and "cleaning kept" not in again.output
    bad = runner.invoke(app, ["prepare", "--min-chars", "-1"])
    assert (
        bad.exit_code == 1 and bad.output.strip() == "error: --min-chars must be 0 or more, got -1"
    )
