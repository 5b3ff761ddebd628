"""`--data hf:NAME`: datasets streamed from a fake Hugging Face hub on loopback (fakehub.py).

The real `datasets` and `huggingface_hub` do the talking; the fake serves
Parquet files written here, so each test knows exactly which documents went in
and compares them with the text decoded from the token files.
"""

from __future__ import annotations

import io
import socket
import warnings

import pytest
from helpers import story
from slm_train import CorpusError, DataWarning, prepare, resolve
from slm_train.chat.identity import source_name

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("datasets")

EOT = "<|endoftext|>"
TRAIN = [story(i, sentences=2) for i in range(40)]
VALIDATION = [story(100 + i, sentences=2) for i in range(4)]


def parquet(texts: list[str], column: str = "text") -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({column: texts, "id": list(range(len(texts)))}), buffer)
    return buffer.getvalue()


def shards(train: list[str], validation: list[str] | None = None, column: str = "text") -> dict:
    """A dataset's files as the hub's Parquet conversion names them."""
    files = {"data/train-00000-of-00001.parquet": parquet(train, column)}
    if validation is not None:
        files["data/validation-00000-of-00001.parquet"] = parquet(validation, column)
    return files


def decoded(data, split: str) -> list[str]:
    """The documents in a split's token file, decoded."""
    text = data.load_tokenizer().decode(data.tokens(split).tolist())
    assert text.endswith(EOT)
    return text.removesuffix(EOT).split(EOT)


@pytest.fixture
def hub(fake_hub, tmp_path, monkeypatch):
    """The fake hub with slm's cache in tmp_path; fails a test whose client needed more."""
    import huggingface_hub.constants

    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "slm-cache"))
    assert fake_hub.url == huggingface_hub.constants.ENDPOINT  # never the real hub
    yield fake_hub
    assert fake_hub.unhandled == []


def test_a_dataset_with_a_validation_split_gives_exactly_its_documents(hub, tmp_path):
    hub.add_dataset("me/stories", shards(TRAIN, VALIDATION))
    data = prepare("hf:me/stories", tmp_path / "data", "gpt2")  # a size unknown: the pool
    assert decoded(data, "train") == TRAIN
    assert decoded(data, "val") == VALIDATION
    assert data.meta["train_documents"] == 40 and data.meta["val_documents"] == 4
    assert any(path.endswith("validation-00000-of-00001.parquet") for path in hub.downloads())


def test_a_named_split_or_one_without_validation_is_split_by_document(hub, tmp_path):
    hub.add_dataset("me/stories", shards(TRAIN, VALIDATION))
    hub.add_dataset("me/plain", shards(TRAIN))
    for spec in ("hf:me/stories@train", "hf:me/plain"):
        data = prepare(spec, tmp_path / spec[3:], "gpt2", 0.1, workers=1)
        assert decoded(data, "val") == TRAIN[9::10]
        assert decoded(data, "train") == [t for i, t in enumerate(TRAIN) if i % 10 != 9]
    assert list(resolve("hf:me/stories@validation").documents()) == VALIDATION


CARD = """---
configs:
- config_name: short
  data_files:
  - split: train
    path: short/*.parquet
- config_name: long
  data_files:
  - split: train
    path: long/*.parquet
---
# Two configs
"""


def test_a_config_is_chosen_and_a_missing_or_unknown_one_is_named(hub, tmp_path):
    hub.add_dataset(
        "me/multi",
        {
            "README.md": CARD,
            "short/0.parquet": parquet(TRAIN[:20]),
            "long/0.parquet": parquet(TRAIN),
        },
    )
    corpus = resolve("hf:me/multi:long")
    assert list(corpus.documents()) == TRAIN
    assert list(resolve("hf:me/multi:short").documents()) == TRAIN[:20]
    with pytest.raises(CorpusError, match=r"several configs; name one: hf:me/multi:short "):
        resolve("hf:me/multi")
    with pytest.raises(CorpusError, match=r"has no config 'tiny'; its configs: short, long"):
        resolve("hf:me/multi:tiny")


def test_text_field_names_the_column_and_a_missing_one_lists_the_columns(hub, tmp_path):
    hub.add_dataset("me/tales", shards(TRAIN, VALIDATION, column="story"))
    data = prepare("hf:me/tales", tmp_path / "data", "gpt2", workers=1, text_field="story")
    assert decoded(data, "train") == TRAIN and decoded(data, "val") == VALIDATION
    with pytest.raises(CorpusError) as error:
        prepare("hf:me/tales", tmp_path / "other", "gpt2", workers=1)
    assert str(error.value) == (
        "hf:me/tales has no field 'text'; its columns are story, id: name the one that holds "
        "the text with --text-field"
    )
    with pytest.raises(CorpusError, match=r"field 'id' holds int values, not text; name a text"):
        list(resolve("hf:me/tales", text_field="id").documents())


def test_blank_and_missing_values_are_not_documents(hub):
    texts = ["\nfirst\n\n", None, "  \n ", "", "second line one\nline two"]
    hub.add_dataset("me/gappy", {"data/train-00000-of-00001.parquet": parquet(texts)})
    assert list(resolve("hf:me/gappy").documents()) == ["first", "second line one\nline two"]


def test_unknown_dataset_split_and_spec_are_one_line_each(hub):
    hub.add_dataset("me/stories", shards(TRAIN, VALIDATION))
    with pytest.raises(CorpusError, match=r"^no dataset hf:me/nothing on the hub \(http://127"):
        resolve("hf:me/nothing")
    with pytest.raises(
        CorpusError,
        match=r"^hf:me/stories has no split 'tests'; its splits: train, validation",
    ):
        resolve("hf:me/stories@tests")
    with pytest.raises(CorpusError, match="not a hub dataset spec"):
        resolve("hf:me/stories@")
    with pytest.raises(CorpusError, match="give an hf: dataset on its own"):
        resolve("hf:me/stories,notes.txt")


def test_a_gated_dataset_asks_for_a_login_and_a_token_opens_it(hub):
    hub.add_dataset("me/secret", shards(TRAIN))
    hub.gated.add("me/secret")
    with pytest.raises(CorpusError) as error:
        resolve("hf:me/secret")
    message = str(error.value)
    assert message.startswith("hf:me/secret is a gated dataset: accept its terms at http://127")
    assert message.endswith("then log in with `hf auth login` or set HF_TOKEN")
    with hub.environment(HF_TOKEN=hub.token):
        assert list(resolve("hf:me/secret").documents()) == TRAIN


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_offline_or_unreachable_without_data_prepared_says_what_to_do(hub):
    hub.add_dataset("me/stories", shards(TRAIN, VALIDATION))
    with hub.environment(HF_HUB_OFFLINE="1"), pytest.raises(CorpusError) as error:
        resolve("hf:me/stories")
    assert "offline mode is on (HF_HUB_OFFLINE)" in str(error.value)
    with (
        hub.environment(HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}"),
        pytest.raises(CorpusError) as error,
    ):
        resolve("hf:me/stories")
    message = str(error.value)
    assert message.startswith("cannot reach the Hugging Face hub at http://127.0.0.1:")
    assert "Connection refused" in message and "HF_ENDPOINT" in message
    assert "HF_HUB_OFFLINE" in message and "\n" not in message
    assert hub.requests == []  # neither went to the fake, nor anywhere else it could see


def test_prepared_data_is_reused_while_the_revision_holds(hub, tmp_path):
    """A second prepare asks the hub for the revision only (one request) and streams nothing;
    a changed dataset (a new revision) is streamed and prepared again."""
    hub.add_dataset("me/stories", shards(TRAIN, VALIDATION))
    first = prepare("hf:me/stories", tmp_path / "data", "gpt2", workers=1)
    stamp = (tmp_path / "data" / "train.bin").stat().st_mtime_ns
    before = len(hub.requests)
    again = prepare("hf:me/stories", tmp_path / "data", "gpt2", workers=1)
    assert hub.paths()[before:] == ["/api/datasets/me/stories"]
    assert again.meta == first.meta
    assert (tmp_path / "data" / "train.bin").stat().st_mtime_ns == stamp

    hub.add_dataset("me/stories", shards(TRAIN[:30], VALIDATION))
    changed = prepare("hf:me/stories", tmp_path / "data", "gpt2", workers=1)
    assert decoded(changed, "train") == TRAIN[:30]
    assert changed.meta["fingerprint"] != first.meta["fingerprint"]


def test_offline_or_unreachable_reuses_what_was_prepared(hub, tmp_path):
    hub.add_dataset("me/stories", shards(TRAIN, VALIDATION))
    first = prepare("hf:me/stories", tmp_path / "data", "gpt2", workers=1)
    before = len(hub.requests)
    with hub.environment(HF_HUB_OFFLINE="1"):
        assert prepare("hf:me/stories", tmp_path / "data", "gpt2").meta == first.meta
        with pytest.raises(CorpusError, match=r"cannot be streamed: offline mode is on"):
            prepare("hf:me/stories", tmp_path / "elsewhere", "gpt2", workers=1)
    with (
        hub.environment(HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}"),
        pytest.warns(DataWarning, match=r"cannot reach the hub .*resolved last time"),
    ):
        assert prepare("hf:me/stories", tmp_path / "data", "gpt2").meta == first.meta
    assert len(hub.requests) == before


def test_tinystories_is_an_alias_of_the_hub_dataset(hub, tmp_path):
    hub.add_dataset("roneneldan/TinyStories", shards(TRAIN, VALIDATION))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        data = prepare("tinystories", tmp_path / "data", "gpt2", workers=1)
    assert decoded(data, "train") == TRAIN and decoded(data, "val") == VALIDATION
    assert data.meta["source"] == "tinystories"
    assert hub.paths()[0] == "/api/datasets/roneneldan/TinyStories"


def test_a_hub_dataset_is_named_as_people_know_it():
    assert source_name("tinystories") == "TinyStories"
    assert source_name("hf:roneneldan/TinyStories") == "TinyStories"
    assert source_name("hf:HuggingFaceFW/fineweb-edu:sample-10BT@train") == "fineweb-edu"
    assert source_name("hf:stories") == "stories"


def test_max_documents_reads_only_the_first_documents_of_each_split(hub, tmp_path):
    """A dataset far larger than a run is read only as far as it is used."""
    hub.add_dataset("me/stories", shards(TRAIN, VALIDATION))
    data = prepare("hf:me/stories", tmp_path / "capped", "gpt2", max_documents=12)
    assert decoded(data, "train") == TRAIN[:12]
    assert decoded(data, "val") == VALIDATION  # 4, under the cap
    whole = prepare("hf:me/stories", tmp_path / "whole", "gpt2")
    assert data.meta["fingerprint"] != whole.meta["fingerprint"]
