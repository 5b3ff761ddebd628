"""Parquet, Arrow and Feather tables: one document per row, through pyarrow.

Most published corpora (FineWeb, nanochat's shards, datasets saved by
`datasets`) are tables with a column of text and columns of metadata. Each row
is a document, taken from the column `--text-field` names ("text" unless told);
rows where it is null or empty are left out.

A file is read one record batch at a time and only its text column, so a shard
of several gigabytes never sits in memory whole: Parquet row groups through
`ParquetFile.iter_batches`, Arrow IPC files (Feather v2 is one) memory-mapped
batch by batch, Arrow IPC streams batch by batch as they are read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..errors import CorpusError
from . import SkippedFile, require

# Rows per batch: small enough that a batch of long documents stays small in memory.
BATCH_ROWS = 1024


def read(path: Path, text_field: str = "text") -> Iterator[str]:
    """The non-empty values of column `text_field`, row by row."""
    pa = require("pyarrow", "pyarrow", "documents")
    try:
        for batch in _batches(path, text_field):
            for value in batch.column(0).to_pylist():
                if value is not None:
                    value = value.strip("\r\n")
                    if value.strip():
                        yield value
    except (pa.ArrowException, OSError) as error:  # pyarrow's I/O errors are OSErrors
        raise SkippedFile(f"not a readable {_kind(path)} file ({error})") from None


def _batches(path: Path, text_field: str):
    """Record batches holding only the text column, after checking the column is text."""
    import pyarrow as pa

    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as parquet:
            _check_column(path, parquet.schema_arrow, text_field)
            yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=[text_field])
        return
    with pa.memory_map(str(path)) as source:
        if source.read(4) == b"FEA1":
            raise SkippedFile(
                "a Feather version 1 file, which slm does not read; rewrite it as version 2: "
                "pyarrow.feather.write_feather(pyarrow.feather.read_table(old), new)"
            )
        source.seek(0)
        try:
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:  # not the file format: perhaps the stream format
            source.seek(0)
            reader = pa.ipc.open_stream(source)
            batches = iter(reader)
        _check_column(path, reader.schema, text_field)
        index = reader.schema.get_field_index(text_field)
        for batch in batches:
            yield batch.select([index])


def _check_column(path: Path, schema, text_field: str) -> None:
    """Stop, naming the columns there are, when the text column is missing or not text."""
    import pyarrow as pa

    if text_field not in schema.names:
        raise CorpusError(
            f"{path} has no column {text_field!r}; its columns are "
            f"{', '.join(schema.names)}: name the one holding the text with --text-field"
        )
    kind = schema.field(text_field).type
    value_kind = kind.value_type if pa.types.is_dictionary(kind) else kind
    if str(value_kind) not in ("string", "large_string", "string_view"):
        raise CorpusError(
            f"{path}: column {text_field!r} holds {kind}, not text; its columns are "
            f"{', '.join(f'{f.name} ({f.type})' for f in schema)}: name the one holding the "
            "text with --text-field"
        )


def _kind(path: Path) -> str:
    return {".parquet": "Parquet", ".feather": "Feather"}.get(path.suffix.lower(), "Arrow")
