"""Cleaning: what happens to each document between reading and tokenizing.

    corpus.documents() -> Cleaner -> _split_documents -> chunks -> encode -> write
                          (here)     (prepare.py)

Real corpora carry junk that costs training time and teaches the model
nothing: the same page saved twice, a licence file in every folder of a
repository, a base64 image pasted into a note, a PDF page that came out as
replacement characters, Windows line endings, a byte-order mark. The steps,
in the order they run on each document (each can be turned off, `Cleaning`):

1. normalise: Unicode NFC (so "é" is one code point however it was typed),
   line breaks as "\\n", and invisible junk removed (see `_JUNK`);
2. short: documents under `min_chars` characters dropped (an empty
   `__init__.py`, a one-word page);
3. non-text: documents of which less than `min_text_fraction` is text dropped,
   judged on the first PREFIX_CHARS characters (see `text_fraction`);
4. exact duplicates: a set of 16-byte blake2b digests, the first copy kept;
5. near-duplicates (off by default): MinHash of word 5-grams in an LSH index
   (datasketch), the first copy kept.

Steps 1-4 are cheap (they run on every document, in the main process, in
front of the tokenizer workers) and safe: they change nothing in ordinary
text. Step 5 costs more time and memory that grows with the corpus, and what
counts as "near" is a judgement, so it waits for `--near-dedup 0.8`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..naming import setting

# The non-text step looks at most at this many characters of a document, so its cost per
# document is bounded however long the document is.
PREFIX_CHARS = 10_000
# Near-duplicates: MinHash over word shingles of this many words, with this many
# permutations and a fixed seed, so the same corpus always loses the same documents.
SHINGLE_WORDS = 5
NUM_PERM = 128
SEED = 1

# Line breaks other than "\n": Windows' "\r\n" (replaced first), old Macs' "\r", vertical
# tab and form feed (page breaks in old text files), NEL, and Unicode's line and paragraph
# separators. They become "\n", so that no two lines run together.
_BREAKS = re.compile("\r\n?|[\x0b\x0c\x85\u2028\u2029]")
# Removed: C0 and C1 control characters (but "\t" and "\n"), DEL, the byte-order mark
# U+FEFF, the soft hyphen U+00AD (an invisible hyphenation hint that splits words for the
# tokenizer), and the noncharacters U+FFFE and U+FFFF. Other format characters stay: the
# zero-width (non-)joiner spells Persian and Indic words and emoji, and the bidirectional
# marks order Arabic and Hebrew text.
_JUNK = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\xad\ufeff\ufffe\uffff]")
# Both of the above: one search finds whether a document needs this step at all. A regex
# reads about 200 MB/s, and single bytes or characters are found ten times faster, so these
# are asked first: deleting the ASCII ones from the UTF-8 changes its length, or a byte that
# starts the UTF-8 of U+0080-U+00BF (0xC2) or of U+F000-U+FFFF (0xEF) appears, or U+2028 or
# U+2029 does; only then does the regex have the last word.
_NEEDS_FIXING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u2028\u2029\ufeff\ufffe\uffff]")
_ASCII_NEEDS_FIXING = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])
# What cannot be text: control characters (C0 but the five line and tab characters, DEL,
# C1), surrogates, private-use characters, U+FFFD (bytes that were not UTF-8), U+FFFE/F.
_ASCII_NOT_TEXT = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
_WIDE_NOT_TEXT = re.compile("[\x80-\x9f\ud800-\uf8ff\ufffd-\uffff\U000f0000-\U0010ffff]")
# Base64 and hex blobs: 40 or more letters, digits, "+" and "/" in a row (words, code
# identifiers and numbers are shorter).
_BLOB = re.compile("[A-Za-z0-9+/]{40,}")
_BLOB_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BLOB_RUN = b"a" * 40
# The first bytes of the UTF-8 of every character _WIDE_NOT_TEXT matches (and of others).
_WIDE_STARTS = b"\xc2\xed\xee\xef\xf3\xf4"
# One pass of bytes.translate over a document's UTF-8 classifies each byte: 0 for ASCII's
# control characters, "a" for the blob alphabet, "w" for _WIDE_STARTS, " " for the rest.
# Counting the zeros, and looking for a "w" and a run of 40 "a"s, then take no regex in
# ordinary text.
_BYTE_CLASSES = bytes(
    0
    if byte in _ASCII_NOT_TEXT
    else 0x61
    if byte in _BLOB_ALPHABET
    else 0x77
    if byte in _WIDE_STARTS
    else 0x20
    for byte in range(256)
)


@dataclass(frozen=True)
class Cleaning:
    """Which cleaning steps run (`prepare(..., cleaning=Cleaning(...))`; DataConfig's fields).

    The defaults keep every chapter of builtin:bbe and ordinary prose, code and
    tables, and drop what no one means to train on.
    """

    normalize: bool = True  # NFC, line breaks as "\n", control characters removed
    min_chars: int = 32  # drop shorter documents (0: keep all)
    min_text_fraction: float = 0.5  # drop documents with less text than this (0: keep all)
    dedup: bool = True  # drop exact duplicates
    near_dedup: float | None = None  # drop documents this similar to an earlier one (MinHash)

    def __post_init__(self) -> None:
        if isinstance(self.min_chars, bool) or not isinstance(self.min_chars, int):
            raise ValueError(
                f"{setting('min_chars')} must be a whole number, got {self.min_chars!r}"
            )
        if self.min_chars < 0:
            raise ValueError(f"{setting('min_chars')} must be 0 or more, got {self.min_chars}")
        if not 0 <= self.min_text_fraction <= 1:
            raise ValueError(
                f"{setting('min_text_fraction')} must be between 0 and 1, got "
                f"{self.min_text_fraction}"
            )
        if self.near_dedup is not None and not 0 < self.near_dedup <= 1:
            raise ValueError(
                f"{setting('near_dedup')} must be in (0, 1] (e.g. 0.8), or unset to keep "
                f"near-duplicates; got {self.near_dedup}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class StepCount:
    """What one step did: documents removed (changed, for normalisation) and characters removed."""

    documents: int = 0
    characters: int = 0

    def add(self, characters: int) -> None:
        self.documents += 1
        self.characters += characters


@dataclass
class CleaningReport:
    """What cleaning did to a corpus, step by step; meta.json keeps it under "cleaning"."""

    settings: Cleaning = field(default_factory=Cleaning)
    documents: int = 0  # documents in
    normalized: StepCount = field(default_factory=StepCount)  # documents changed
    short: StepCount = field(default_factory=StepCount)
    non_text: StepCount = field(default_factory=StepCount)
    duplicates: StepCount = field(default_factory=StepCount)
    near_duplicates: StepCount = field(default_factory=StepCount)

    @property
    def kept(self) -> int:
        removed = (self.short, self.non_text, self.duplicates, self.near_duplicates)
        return self.documents - sum(step.documents for step in removed)

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        return {
            "settings": record.pop("settings"),
            "documents_in": record.pop("documents"),
            "documents_kept": self.kept,
            **record,
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> CleaningReport:
        steps = {name: StepCount(**record[name]) for name in _STEP_NAMES}
        return cls(Cleaning(**record["settings"]), record["documents_in"], **steps)

    def summary(self) -> str:
        return f"kept {self.kept:,} of {self.documents:,} documents"

    def steps(self) -> list[str]:
        """What each step that ran did, e.g. "exact duplicates: 1,127 documents removed (...)"."""
        s = self.settings
        steps = [
            (s.min_chars > 0, f"short (under {s.min_chars:,} characters)", self.short),
            (
                s.min_text_fraction > 0,
                f"non-text (under {s.min_text_fraction:.0%} text)",
                self.non_text,
            ),
            (s.dedup, "exact duplicates", self.duplicates),
            (
                s.near_dedup is not None,
                f"near-duplicates (MinHash similarity >= {s.near_dedup})",
                self.near_duplicates,
            ),
        ]
        lines = []
        if s.normalize:
            changed = self.normalized
            lines.append(
                f"Unicode NFC and control characters: {_documents(changed.documents)} changed"
                + (f" ({_characters(changed.characters)} removed)" if changed.characters else "")
            )
        for ran, name, step in steps:
            if ran:
                lines.append(
                    f"{name}: {_documents(step.documents)} removed"
                    + (f" ({_characters(step.characters)})" if step.documents else "")
                )
        return lines

    def lines(self) -> list[str]:
        """The summary and the steps, as `prepare` prints them."""
        return [f"cleaning {self.summary()}", *(f"  {line}" for line in self.steps())]


_STEP_NAMES = ("normalized", "short", "non_text", "duplicates", "near_duplicates")


def _documents(count: int) -> str:
    return f"{count:,} document{'s' * (count != 1)}"


def _characters(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1e6:.1f} M characters"
    return f"{count:,} character{'s' * (count != 1)}"


class Cleaner:
    """Cleans a stream of documents as `settings` say and counts what it did in `report`.

    One cleaner per pass over a corpus: it remembers the documents it has let
    through (to find duplicates), so a second pass needs a new one.
    """

    def __init__(self, settings: Cleaning | None = None) -> None:
        self.settings = settings or Cleaning()
        self.report = CleaningReport(self.settings)
        self._digests: set[bytes] = set()
        self._near = (
            None if self.settings.near_dedup is None else _NearDuplicates(self.settings.near_dedup)
        )

    def __call__(self, documents: Iterable[str]) -> Iterator[str]:
        for text in documents:
            cleaned = self.clean(text)
            if cleaned is not None:
                yield cleaned

    def clean(self, text: str) -> str | None:
        """The cleaned document, or None if a step removed it."""
        s, report = self.settings, self.report
        report.documents += 1
        if s.normalize:
            cleaned = normalize(text)
            if cleaned is not text and cleaned != text:
                report.normalized.add(len(text) - len(cleaned))
            text = cleaned
        if len(text.strip()) < s.min_chars:
            report.short.add(len(text))
            return None
        if s.min_text_fraction > 0 and text_fraction(text) < s.min_text_fraction:
            report.non_text.add(len(text))
            return None
        if s.dedup and self._is_duplicate(text):
            report.duplicates.add(len(text))
            return None
        if self._near is not None and self._near.seen(text):
            report.near_duplicates.add(len(text))
            return None
        return text

    def _is_duplicate(self, text: str) -> bool:
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if digest in self._digests:
            return True
        self._digests.add(digest)
        return False


def normalize(text: str) -> str:
    """NFC, every line break as "\\n", and control characters, BOMs and soft hyphens removed.

    Fast paths: ASCII text is already NFC, and a few fast scans tell whether
    anything needs replacing, so ordinary text is only read, never rewritten.
    """
    is_ascii = text.isascii()
    if not is_ascii and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if not _may_need_fixing(text, is_ascii):
        return text
    if not is_ascii and _NEEDS_FIXING.search(text) is None:
        return text
    return _JUNK.sub("", _BREAKS.sub("\n", text))


def _may_need_fixing(text: str, is_ascii: bool) -> bool:
    """Whether `text` may hold a character of _NEEDS_FIXING: exactly so for ASCII text."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data.translate(None, _ASCII_NEEDS_FIXING)) != len(data):
        return True
    if is_ascii:
        return False
    return b"\xc2" in data or b"\xef" in data or "\u2028" in text or "\u2029" in text


def text_fraction(text: str) -> float:
    """The share of text in the document's first PREFIX_CHARS characters.

    What is *not* text is counted, since text comes in every script (Devanagari's
    vowel signs are neither letters nor digits): control, surrogate and
    private-use characters, U+FFFD (bytes that were not UTF-8), and base64 or hex
    blobs of 40 or more characters. Code, tables, URLs and prose in any
    language are text.
    """
    prefix = text[:PREFIX_CHARS]
    if not prefix:
        return 1.0
    data = prefix.encode("utf-8", "surrogatepass")
    classes = data.translate(_BYTE_CLASSES)
    junk = classes.count(0)  # ASCII's control characters
    if b"w" in classes:
        junk += len(_WIDE_NOT_TEXT.findall(prefix))
    if _BLOB_RUN in classes:
        junk += sum(map(len, _BLOB.findall(prefix)))
    return max(0.0, 1 - junk / len(prefix))


class _NearDuplicates:
    """Documents seen so far, as MinHash signatures in an LSH index (datasketch).

    A document is a near-duplicate when the index holds one whose word
    5-grams overlap its own by about `threshold` (Jaccard similarity, as the
    LSH estimates it). The index grows with the corpus: about 1 KB a document.
    """

    def __init__(self, threshold: float) -> None:
        datasketch = _datasketch()
        self.index = datasketch.MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        # The permutations are made once and copied; the shingles come hashed (shingle_hashes),
        # so MinHash's own hash function is `int`, which leaves them as they are.
        self.empty = datasketch.MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=int)
        self.count = 0

    def seen(self, text: str) -> bool:
        """Whether a near-duplicate came before; if not, `text` is added to the index."""
        signature = self.empty.copy()
        signature.update_batch(shingle_hashes(text).tolist())
        if self.index.query(signature):
            return True
        self.index.insert(self.count, signature, check_duplication=False)
        self.count += 1
        return False


def shingle_hashes(text: str, size: int = SHINGLE_WORDS):
    """32-bit hashes of the document's runs of `size` consecutive words, lower-cased.

    datasketch would hash each shingle's text with SHA-1 in a Python loop; this
    hashes all words at once (`word_hashes`) and combines each run of them with
    numpy, over ten times faster. A document of fewer words is one shingle.
    """
    import numpy as np

    words = word_hashes(text.lower().encode("utf-8", "surrogatepass"))
    if len(words) == 0:
        words = np.zeros(1, dtype=np.uint64)
    count = max(1, len(words) - size + 1)
    hashes = np.zeros(count, dtype=np.uint64)
    for offset in range(min(size, len(words))):
        hashes = hashes * _PRIME + words[offset : offset + count]
    return (hashes >> np.uint64(32)) ^ (hashes & np.uint64(0xFFFFFFFF))


def word_hashes(data: bytes):
    """A 64-bit hash of each whitespace-separated word of `data`, all computed by numpy.

    With H[i] the sum of data[j] * P**j over j < i, the word from `start` to
    `end` hashes to (H[end] - H[start]) * P**-start, the same for the same bytes
    wherever they stand. numpy's uint64 arithmetic wraps, so this is all
    modulo 2**64, where the odd P has an inverse.
    """
    import numpy as np

    raw = np.frombuffer(data, dtype=np.uint8)
    space = np.concatenate(([True], np.frombuffer(_SPACE, dtype=np.bool_)[raw], [True]))
    edges = np.flatnonzero(space[1:] != space[:-1])  # where words start and end, in turn
    starts, ends = edges[0::2], edges[1::2]
    powers, inverses = _powers(_PRIME, len(raw)), _powers(_INVERSE, len(raw))
    sums = np.concatenate(([np.uint64(0)], np.cumsum(raw * powers, dtype=np.uint64)))
    return (sums[ends] - sums[starts]) * inverses[starts]


def _powers(base: int, count: int):
    """base**0, base**1, ... base**(count - 1), modulo 2**64."""
    import numpy as np

    factors = np.full(count, base, dtype=np.uint64)
    factors[:1] = 1
    return np.cumprod(factors, dtype=np.uint64)


_PRIME = 1_000_003  # odd, so it spreads hashes through 64 bits and has an inverse mod 2**64
_INVERSE = pow(_PRIME, -1, 2**64)
_SPACE = bytes(byte in b" \t\n\r\x0b\x0c" for byte in range(256))


def _datasketch():
    from .formats import require

    return require("datasketch", "datasketch", "dedup", setting("near_dedup"))
