"""Datasets on the Hugging Face hub as corpora: `--data hf:OWNER/NAME[:CONFIG][@SPLIT]`.

slm uses the `datasets` library (the `hub` extra) to stream a dataset's rows,
so nothing is downloaded whole and a corpus of any size fits, and
`huggingface_hub` to learn the dataset's current revision. Everything here is
pinned to that revision: the rows streamed are the ones the fingerprint names,
and a dataset that changes on the hub is prepared again.

Without `@SPLIT`, the "train" split is the training data and the dataset's own
validation split ("validation", "valid", "val", "dev", or "test" as a last
resort) is the validation data, as its authors meant. With `@SPLIT`, or when
there is no validation split, that one split is the corpus and `prepare` keeps
every n-th document for validation, as for files.

Each resolution is also written down in slm's cache (`hf/*.json`), so that
offline (`HF_HUB_OFFLINE=1`) or with the hub out of reach, the same spec still
names the same revision and token files prepared earlier are reused; only
streaming new data needs the hub.

The libraries are imported inside the functions that use them, so that
`import slm_train` stays fast and works without the extra.
"""

from __future__ import annotations

import json
import os
import re
import socket
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import CorpusError, DataWarning
from .formats import require

PREFIX = "hf:"
# slm's own names for datasets on the hub.
ALIASES = {"tinystories": "hf:roneneldan/TinyStories"}
# A dataset's own validation split, by the names it goes by, most usual first.
VALIDATION_SPLITS = ("validation", "valid", "val", "dev", "test")
# Rows handed over by `datasets` at a time.
BATCH_ROWS = 1000

_SPEC = re.compile(r"^hf:(?P<name>[^:@\s]+)(?::(?P<config>[^@\s]+))?(?:@(?P<split>\S+))?$")


@dataclass(frozen=True)
class HubSpec:
    """What `hf:NAME[:CONFIG][@SPLIT]` asks for."""

    name: str
    config: str | None = None
    split: str | None = None


def is_hub_spec(spec: str) -> bool:
    return spec.startswith(PREFIX) or spec in ALIASES


def parse_spec(spec: str) -> HubSpec:
    """`hf:HuggingFaceFW/fineweb-edu:sample-10BT@train` -> its name, config and split."""
    match = _SPEC.match(ALIASES.get(spec, spec))
    if match is None:
        raise CorpusError(
            f"{spec!r} is not a hub dataset spec; write hf:OWNER/NAME, hf:OWNER/NAME:CONFIG or "
            "hf:OWNER/NAME@SPLIT, e.g. hf:roneneldan/TinyStories"
        )
    return HubSpec(match["name"], match["config"], match["split"])


def display_name(spec: str) -> str:
    """The name people know a dataset by: "TinyStories", "fineweb-edu"."""
    return parse_spec(spec).name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class HubDataset:
    """A dataset on the hub, pinned to one revision, and which of its splits slm reads."""

    name: str
    config: str | None
    revision: str
    train_split: str  # the corpus, or its training part when val_split is set
    val_split: str | None  # the dataset's own validation split

    def fingerprint(self, text_field: str) -> list:
        return ["hf", *asdict(self).values(), text_field]

    def documents(self, split: str, text_field: str) -> Iterator[str]:
        """The rows of one split, streamed; each non-blank `text_field` value is a document."""
        datasets = require("datasets", "datasets", "hub", "reading a Hugging Face dataset")
        try:
            rows = datasets.load_dataset(
                self.name, self.config, split=split, streaming=True, revision=self.revision
            )
            for texts, columns in self._text_batches(rows, text_field):
                for text in texts:
                    document = self._document(text, text_field, columns)
                    if document is not None:
                        yield document
        except CorpusError:
            raise
        except Exception as error:
            raise CorpusError(_streaming_failed(self.name, error)) from None

    def _text_batches(self, rows, text_field: str) -> Iterator[tuple[list, list[str]]]:
        """The text field's values, BATCH_ROWS at a time, with the dataset's columns.

        Reading only that column, in batches, moves text four times faster than
        row-by-row dictionaries of every column (40 against 10 MB/s on Parquet).
        """
        columns = rows.column_names  # None if the features are known only once read
        if columns is not None:
            self._check_field(text_field, columns)
            rows = rows.select_columns([text_field])
        for batch in rows.iter(batch_size=BATCH_ROWS):
            self._check_field(text_field, columns or list(batch))
            yield batch[text_field], columns or list(batch)

    def _check_field(self, text_field: str, columns: list[str]) -> None:
        if text_field not in columns:
            raise CorpusError(
                f"hf:{self.name} has no field {text_field!r}; its columns are "
                f"{', '.join(columns)}: name the one that holds the text with --text-field"
            )

    def _document(self, text: object, text_field: str, columns: list[str]) -> str | None:
        """A value as a document (without surrounding blank lines), or None if blank or null."""
        if text is None:
            return None
        if not isinstance(text, str):
            raise CorpusError(
                f"hf:{self.name}'s field {text_field!r} holds {type(text).__name__} values, not "
                f"text; name a text column with --text-field (columns: {', '.join(columns)})"
            )
        text = text.strip("\r\n")
        return text if text.strip() else None


def resolve_hub(spec: str, cache_dir: Path) -> HubDataset:
    """Ask the hub for the dataset's revision, configs and splits; pick the splits to read.

    Offline or out of reach, the answer recorded the last time this spec was
    resolved is used (a warning says so when the hub could not be reached);
    with none recorded, the error says how to get on line.
    """
    wanted = parse_spec(spec)
    record = cache_dir / "hf" / (re.sub(r"[^\w.-]+", "--", spec) + ".json")
    recorded = _read_record(record)
    info = _dataset_info(wanted.name, recorded is not None)
    if recorded is not None and (info is None or info.sha == recorded.revision):
        return recorded  # the same revision: its splits are what they were
    splits = _split_names(wanted, info.sha, bool(info.gated))
    train, val = _choose_splits(wanted, splits)
    dataset = HubDataset(wanted.name, wanted.config, info.sha, train, val)
    record.parent.mkdir(parents=True, exist_ok=True)
    temporary = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(dataset)) + "\n", encoding="utf-8")
    os.replace(temporary, record)  # atomic: DDP ranks resolve at the same time
    return dataset


def _read_record(record: Path) -> HubDataset | None:
    try:
        return HubDataset(**json.loads(record.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None  # none yet, or damaged (then resolved afresh and rewritten)


def _dataset_info(name: str, recorded: bool):
    """What the hub says of the dataset (its sha, whether it is gated); None when the hub
    cannot be asked but a record of an earlier answer can stand in."""
    require(
        "datasets", "datasets", "hub", "reading a Hugging Face dataset"
    )  # the hub extra brings huggingface_hub too
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import (
        HFValidationError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    try:
        return HfApi().dataset_info(name)
    except HFValidationError as error:
        raise CorpusError(f"hf:{name} is not a dataset name: {first_line(error)}") from None
    except RepositoryNotFoundError:
        raise CorpusError(
            f"no dataset hf:{name} on the hub ({constants.ENDPOINT}); check its name as in "
            "https://huggingface.co/datasets/OWNER/NAME (a private one needs `hf auth login`)"
        ) from None
    except OfflineModeIsEnabled:
        if recorded:
            return None
        raise CorpusError(_offline_message(name)) from None
    except Exception as error:
        if not is_network_error(error):
            raise
        if recorded:
            warnings.warn(
                f"cannot reach the hub ({network_reason(error)}); hf:{name} is taken at the "
                "revision resolved last time",
                DataWarning,
                stacklevel=4,
            )
            return None
        raise CorpusError(_unreachable_message(name, error)) from None


def _split_names(wanted: HubSpec, revision: str, gated: bool) -> list[str]:
    """The dataset's splits (in its chosen config), with one-line errors for what is wrong."""
    datasets = require("datasets", "datasets", "hub", "reading a Hugging Face dataset")
    try:
        return datasets.get_dataset_split_names(wanted.name, wanted.config, revision=revision)
    except ValueError as error:  # no config named, or an unknown one
        configs = datasets.get_dataset_config_names(wanted.name, revision=revision)
        raise CorpusError(_config_message(wanted, configs, error)) from None
    except Exception as error:
        if isinstance(error, datasets.exceptions.DatasetNotFoundError) and gated:
            raise CorpusError(_gated_message(wanted.name)) from None
        if is_network_error(error):
            raise CorpusError(_unreachable_message(wanted.name, error)) from None
        raise CorpusError(f"cannot read hf:{wanted.name}: {first_line(error)}") from None


def _config_message(wanted: HubSpec, configs: list[str], error: ValueError) -> str:
    name, listed = wanted.name, ", ".join(configs)
    if wanted.config is None and len(configs) > 1:
        return (
            f"hf:{name} has several configs; name one: hf:{name}:{configs[0]} (configs: {listed})"
        )
    if wanted.config is not None and wanted.config not in configs:
        return (
            f"hf:{name} has no config {wanted.config!r}; its configs: {listed} (hf:{name}:CONFIG)"
        )
    return f"cannot read hf:{name}: {first_line(error)}"


def _choose_splits(wanted: HubSpec, splits: list[str]) -> tuple[str, str | None]:
    """(the corpus's split, the dataset's own validation split or None)."""
    name = f"hf:{wanted.name}" + (f":{wanted.config}" if wanted.config else "")
    if wanted.split is not None:
        if wanted.split not in splits:
            raise CorpusError(
                f"{name} has no split {wanted.split!r}; its splits: {', '.join(splits)} "
                f"({name}@SPLIT)"
            )
        return wanted.split, None
    if "train" not in splits:
        raise CorpusError(
            f"{name} has no train split; name the one to read: {name}@{splits[0]} "
            f"(splits: {', '.join(splits)})"
        )
    return "train", next((split for split in VALIDATION_SPLITS if split in splits), None)


def _offline_message(name: str) -> str:
    return (
        f"hf:{name} cannot be streamed: offline mode is on (HF_HUB_OFFLINE) and it was not "
        "prepared here before; unset HF_HUB_OFFLINE to reach the hub"
    )


def _unreachable_message(name: str, error: BaseException) -> str:
    from huggingface_hub import constants

    return (
        f"cannot reach the Hugging Face hub at {constants.ENDPOINT} for hf:{name} "
        f"({network_reason(error)}); check your network, or set HF_ENDPOINT to a mirror "
        "(HF_HUB_OFFLINE=1 reuses data prepared before)"
    )


def _gated_message(name: str) -> str:
    from huggingface_hub import constants

    return (
        f"hf:{name} is a gated dataset: accept its terms at {constants.ENDPOINT}/datasets/{name}, "
        "then log in with `hf auth login` or set HF_TOKEN"
    )


def _streaming_failed(name: str, error: BaseException) -> str:
    """Why the rows stopped coming, as one line."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return _offline_message(name)
    if is_network_error(error):
        return _unreachable_message(name, error)
    return f"streaming hf:{name} failed: {first_line(error)}"


def _causes(error: BaseException | None) -> Iterator[BaseException]:
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


# What httpx (huggingface_hub's client) calls failing to reach a server, with no common base
# class slm could import without depending on httpx itself.
_NETWORK_ERRORS = frozenset(
    "ConnectError ConnectTimeout ReadTimeout ReadError WriteError RemoteProtocolError".split()  # noqa: SIM905
)


def is_network_error(error: BaseException) -> bool:
    """A failure to talk to the hub at all (refused, DNS, timeout), whatever library raised it."""
    for cause in _causes(error):
        if isinstance(cause, (ConnectionError, TimeoutError, socket.gaierror)):
            return True
        if type(cause).__name__ in _NETWORK_ERRORS:
            return True
    return False


def network_reason(error: BaseException) -> str:
    """The innermost cause, which names what happened (e.g. "Connection refused")."""
    *_, innermost = _causes(error)
    return first_line(innermost) or type(innermost).__name__


def first_line(error: BaseException) -> str:
    """The error's first line with text, for a message of one line ("" if it has none)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")
