"""Byte-level BPE in the GPT-2 style.

Encoding a string takes three steps:
1. split it at special tokens such as `<|endoftext|>` (if the caller allows them),
2. split each ordinary stretch into pre-tokens with a regex (`GPT2_PATTERN`),
3. turn each pre-token into its UTF-8 bytes and apply the learned merges.

Steps 2 and 3 live in `encoding.PieceEncoder`, which caches each pre-token's
tokens; on real text nearly every look-up hits and encoding costs little more
than the regex. This module adds the special-token rules, streaming, the
constructors and the save format.

A tokenizer slm trains uses GPT-2's layout: ids 0..255 are the single bytes
(in any order), merge i creates id 256 + i, and special tokens come after, so
a merged id is also the merge's rank. A file from elsewhere may put any token
at any id (SmolLM2's special tokens come first); `layout` maps such ids onto
ranks, and the pre-token cache holds the file's ids, so encoding is as fast.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Iterator
from itertools import chain
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Literal

import regex

from .base import END_OF_TEXT, Tokenizer, replace_surrogates, require_str, unknown_id_error
from .bytelevel import bytes_to_text, text_to_bytes
from .counting import default_workers
from .encoding import PieceEncoder
from .files import write_text_atomically
from .gpt2_format import check_encoder_matches, read_gpt2_files
from .hf_format import HFTokenizerParts, is_hf_tokenizer, read_hf_tokenizer
from .layout import any_layout, gpt2_layout
from .normalizer import NFC, normalize, safe_cut
from .patterns import GPT2_PATTERN
from .training import learn_merges

FORMAT_NAME = "slm-tokenizer/bpe"
FORMAT_VERSION = 1  # GPT-2's layout (written whenever a tokenizer has it)
ANY_LAYOUT_VERSION = 2  # any layout: the file lists each token's id

AllowedSpecial = Literal["all"] | Collection[str]
DisallowedSpecial = Literal["all"] | Collection[str]

# encode_iterable gathers chunks (lines) into blocks of this many characters, so
# that per-block work (special-token checks, the regex call) is paid rarely.
_STREAM_BLOCK = 1 << 16


class BPETokenizer(Tokenizer):
    """A byte-level BPE tokenizer: trainable, and able to load GPT-2's vocabulary.

    Build one with `BPETokenizer.train`, `BPETokenizer.load`, `from_gpt2_files`
    or `from_vocab_and_merges`.
    """

    def __init__(
        self,
        merges: list[tuple[bytes, bytes]],
        *,
        byte_order: list[int] | None = None,
        special_tokens: dict[str, int] | None = None,
        pattern: str = GPT2_PATTERN,
        token_ids: dict[bytes, int] | None = None,
        ignore_merges: bool = False,
        normalizer: str | None = None,
    ) -> None:
        """Low-level constructor; prefer the named constructors.

        Without `token_ids`, GPT-2's layout: `byte_order[i]` is the byte value of
        token id i for i < 256 (GPT-2 permutes them; a trained tokenizer uses the
        identity) and merge i creates id 256 + i. With `token_ids` (each token's
        bytes -> its id), any layout (see `layout`); `ignore_merges` then makes
        a pre-token that is in the vocabulary that token without BPE.
        `normalizer` "NFC" normalizes text before pre-tokenization (Qwen's files).
        """
        if normalizer not in (None, NFC):
            raise ValueError(f"normalizer must be None or {NFC!r}, not {normalizer!r}")
        self._normalizer = normalizer
        if token_ids is None:
            layout = gpt2_layout(merges, list(range(256)) if byte_order is None else byte_order)
        else:
            layout = any_layout(merges, token_ids, ignore_merges)
        self._layout = layout
        self._ignore_merges = ignore_merges and token_ids is not None
        self._byte_order = layout.byte_order
        self._pattern = pattern
        self._merges = [(first, second) for first, second in merges]
        self._merge_table = layout.merge_table
        self._encoder = PieceEncoder(layout, pattern)
        self._byte_to_id = self._encoder._byte_to_id
        vocab = dict(layout.vocab)
        self._special_tokens = _checked_specials(special_tokens or {}, vocab)
        for text, token_id in self._special_tokens.items():
            vocab[token_id] = text.encode("utf-8")
        self._vocab = vocab
        self._special_regex_cache: dict[frozenset[str], regex.Pattern] = {}

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_vocab_and_merges(
        cls,
        vocab: dict[int, bytes],
        merges: list[tuple[bytes, bytes]],
        special_tokens: list[str] | dict[str, int] | None = None,
        pattern: str = GPT2_PATTERN,
        ignore_merges: bool = False,
        normalizer: str | None = None,
    ) -> BPETokenizer:
        """Build from an explicit vocabulary, e.g. one made by another BPE library.

        Any layout (see `layout`): merges are ranked by their order and each
        token keeps its id. Special tokens given as a list keep the ids `vocab`
        gives them, or get the ids after the largest. A vocabulary in GPT-2's
        layout encodes by the fastest path, as a trained tokenizer does.
        """
        if isinstance(special_tokens, dict):
            specials = dict(special_tokens)
        else:
            by_bytes = {token: i for i, token in vocab.items()}
            specials = {}
            for text in special_tokens or []:
                token_id = by_bytes.get(text.encode("utf-8"))
                if token_id is None:
                    token_id = max([*vocab, *specials.values(), -1]) + 1
                specials[text] = token_id
        special_ids = set(specials.values())
        token_ids: dict[bytes, int] = {}
        for token_id, token in vocab.items():
            if token_id in special_ids:
                continue
            if token in token_ids:
                raise ValueError(f"{token!r} has two ids, {token_ids[token]} and {token_id}")
            token_ids[token] = token_id
        return cls(
            merges,
            special_tokens=specials,
            pattern=pattern,
            token_ids=token_ids,
            ignore_merges=ignore_merges,
            normalizer=normalizer,
        )

    def with_special_tokens(self, special_tokens: dict[str, int]) -> BPETokenizer:
        """This tokenizer with other special tokens; every other token keeps its id."""
        if self._in_gpt2_layout():
            return type(self)(
                self._merges,
                byte_order=self._byte_order,
                special_tokens=special_tokens,
                pattern=self._pattern,
            )
        return type(self)(
            self._merges,
            special_tokens=special_tokens,
            pattern=self._pattern,
            token_ids={token: i for i, token in self._layout.vocab.items()},
            ignore_merges=self._ignore_merges,
            normalizer=self._normalizer,
        )

    @classmethod
    def from_gpt2_files(
        cls, vocab_bpe: str | os.PathLike, encoder_json: str | os.PathLike
    ) -> BPETokenizer:
        """Load OpenAI's GPT-2 `vocab.bpe` and `encoder.json` (ids identical to tiktoken's)."""
        files = read_gpt2_files(vocab_bpe, encoder_json)
        tokenizer = cls(
            files.merges,
            byte_order=files.byte_order,
            special_tokens=files.special_tokens,
            pattern=GPT2_PATTERN,
        )
        check_encoder_matches(files, tokenizer._vocab, vocab_bpe, encoder_json)
        return tokenizer

    @classmethod
    def train(
        cls,
        text: str | Iterable[str],
        vocab_size: int,
        special_tokens: Collection[str] = (),
        pattern: str = GPT2_PATTERN,
        workers: int | None = None,
    ) -> BPETokenizer:
        """Learn merges from `text` (a string, or an iterable of strings such as a file's lines).

        `vocab_size` counts the 256 bytes, the merges and the special tokens.
        Each string of an iterable is pre-tokenized on its own, so pass whole
        documents or lines. `workers` processes count the pre-tokens (default:
        one per CPU; a corpus of up to about a million characters is counted in
        this process). The
        corpus is shared between them at document and special-token boundaries
        only, so a single string without special tokens uses one process. The
        merges are the same for any number of workers. On platforms that start
        processes by spawning (macOS, Windows), call this under
        `if __name__ == "__main__":`. See `slm_tokenizer.training` for the algorithm.
        """
        special_tokens = list(special_tokens)
        workers = default_workers() if workers is None else workers
        merges = learn_merges(text, vocab_size, special_tokens, pattern, workers)
        first = 256 + len(merges)
        specials = {text: first + k for k, text in enumerate(dict.fromkeys(special_tokens))}
        return cls(merges, special_tokens=specials, pattern=pattern)

    # ------------------------------------------------------------- properties
    @property
    def vocab(self) -> dict[int, bytes]:
        """Every token id and its bytes, special tokens included (a copy)."""
        return dict(self._vocab)

    @property
    def merges(self) -> list[tuple[bytes, bytes]]:
        """The merges in the order they were learned (a copy)."""
        return list(self._merges)

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._special_tokens)

    @property
    def pattern(self) -> str:
        return self._pattern

    @property
    def normalizer(self) -> str | None:
        """ "NFC" if text is normalized before pre-tokenization, else None."""
        return self._normalizer

    @property
    def ignore_merges(self) -> bool:
        """Whether a pre-token that is in the vocabulary becomes that token without BPE."""
        return self._ignore_merges

    @property
    def vocab_size(self) -> int:
        return max(self._vocab) + 1

    @property
    def eot_id(self) -> int | None:
        """The id of `<|endoftext|>`, or None if this tokenizer has no such token."""
        return self._special_tokens.get(END_OF_TEXT)

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self._merges)}, "
            f"special_tokens={sorted(self._special_tokens)})"
        )

    # --------------------------------------------------------------- encoding
    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text, treating special-token text like any other text."""
        text = replace_surrogates(require_str(text))
        if self._normalizer is not None:
            text = normalize(text, self._normalizer)
        return self._encoder.encode(text)

    def encode(
        self,
        text: str,
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> list[int]:
        """Encode text with tiktoken's special-token rules.

        Special-token text becomes its special id only if it is in
        `allowed_special`. Text matching a special token in `disallowed_special`
        (by default every special token not allowed) raises ValueError, because
        it usually means untrusted input is smuggling in control tokens. Pass
        `disallowed_special=()` to encode such text as ordinary text.
        """
        text = require_str(text)
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        self._check_disallowed(text, disallowed)
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        start = 0
        for match in self._special_regex(allowed).finditer(text):
            ids += self.encode_ordinary(text[start : match.start()])
            ids.append(self._special_tokens[match.group()])
            start = match.end()
        ids += self.encode_ordinary(text[start:])
        return ids

    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> list[list[int]]:
        """Encode several texts (sequentially: pure Python gains nothing from threads)."""
        return [
            self.encode(
                text, allowed_special=allowed_special, disallowed_special=disallowed_special
            )
            for text in texts
        ]

    def encode_iterable(
        self,
        chunks: Iterable[str],
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> Iterator[int]:
        """Stream the ids of the concatenated chunks (e.g. an open file's lines).

        The result equals `encode("".join(chunks))`, but memory stays bounded:
        chunks are gathered into blocks of about 64 K characters, and of each
        block only the tail that later text could still change is held back,
        namely the last pre-token and any possible start of a special token.
        """
        return chain.from_iterable(self._encode_blocks(chunks, allowed_special, disallowed_special))

    def _encode_blocks(
        self,
        chunks: Iterable[str],
        allowed_special: AllowedSpecial,
        disallowed_special: DisallowedSpecial,
    ) -> Iterator[list[int]]:
        """The ids of `encode_iterable`, one list per block of text."""
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        held = ""
        for block in _blocks(chunks, _STREAM_BLOCK, self._normalizer):
            ids, held = self._encode_final_part(held + block, allowed, disallowed)
            yield ids
        yield self.encode(held, allowed_special=allowed, disallowed_special=disallowed)

    def _encode_final_part(
        self, text: str, allowed: frozenset[str], disallowed: frozenset[str]
    ) -> tuple[list[int], str]:
        """Encode what no later text can change; return its ids and the rest of `text`."""
        end = len(text) - self._partial_special_length(text, allowed | disallowed)
        ids: list[int] = []
        # Everything up to the last complete allowed special token is final.
        specials = self._special_regex(allowed).finditer(text, 0, end) if allowed else ()
        boundary = max((match.end() for match in specials), default=0)
        if boundary:
            options = {"allowed_special": allowed, "disallowed_special": disallowed}
            ids = self.encode(text[:boundary], **options)
            text, end = text[boundary:], end - boundary
        # Of the ordinary text that follows, every pre-token but the last is final.
        self._check_disallowed(text[:end], disallowed)
        final, cut = self._encoder.encode_all_but_last(text, end)
        return ids + final, text[cut:]

    @staticmethod
    def _partial_special_length(text: str, specials: frozenset[str]) -> int:
        """Length of the longest suffix of `text` that could begin one of `specials`."""
        longest = 0
        for special in specials:
            for k in range(min(len(special) - 1, len(text)), longest, -1):
                if text.endswith(special[:k]):
                    longest = k
                    break
        return longest

    def _check_disallowed(self, text: str, disallowed: frozenset[str]) -> None:
        if not any(special in text for special in disallowed):  # `in` is faster than a regex
            return
        match = self._special_regex(disallowed).search(text)
        if match:
            raise ValueError(
                f"text contains the special token {match.group()!r}, which is disallowed; "
                f"pass allowed_special={{{match.group()!r}}} to encode it as a special token "
                "or disallowed_special=() to encode it as ordinary text"
            )

    def _special_sets(
        self, allowed_special: AllowedSpecial, disallowed_special: DisallowedSpecial
    ) -> tuple[frozenset[str], frozenset[str]]:
        known = frozenset(self._special_tokens)
        if allowed_special == "all":
            allowed = known
        else:
            if isinstance(allowed_special, str):
                raise TypeError('allowed_special must be a set of special tokens or "all"')
            allowed = frozenset(allowed_special)
            unknown = allowed - known
            if unknown:
                raise ValueError(
                    f"allowed_special names {sorted(unknown)}, which are not special tokens of "
                    f"this tokenizer (it has {sorted(known)})"
                )
        if disallowed_special == "all":
            disallowed = known - allowed
        else:
            if isinstance(disallowed_special, str):
                raise TypeError('disallowed_special must be a set of special tokens or "all"')
            disallowed = frozenset(disallowed_special) - allowed
        return allowed, disallowed

    def _special_regex(self, specials: frozenset[str]) -> regex.Pattern:
        compiled = self._special_regex_cache.get(specials)
        if compiled is None:
            # Longest first, so overlapping special tokens match the longest one.
            ordered = sorted(specials, key=lambda s: (-len(s), s))
            compiled = regex.compile("|".join(regex.escape(s) for s in ordered))
            self._special_regex_cache[specials] = compiled
        return compiled

    # --------------------------------------------------------------- decoding
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The raw bytes of the tokens; may end mid-character."""
        vocab = self._vocab
        ids = ids if isinstance(ids, list) else list(ids)
        try:
            return b"".join([vocab[i] for i in ids])
        except (KeyError, TypeError):
            for i in ids:
                if isinstance(i, int) and 0 <= i < self.vocab_size and i not in vocab:
                    raise ValueError(
                        f"token id {i} names no token: this vocabulary leaves a gap there "
                        f"(its ids run 0..{self.vocab_size - 1} with gaps)"
                    ) from None
                if i not in vocab:
                    raise unknown_id_error(i, self.vocab_size) from None
            raise

    def decode(self, ids: Iterable[int]) -> str:
        """Decode to text; bytes that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as one human-readable, versioned JSON file (atomically).

        Merges are written as pairs of token strings in GPT-2's printable byte
        map ("Ġ" is a space), so `["Ġth", "e"]` is the merge that makes " the".
        """
        path = Path(path)
        gpt2 = self._in_gpt2_layout()
        header = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION if gpt2 else ANY_LAYOUT_VERSION,
            "about": (
                "Byte-level BPE tokenizer. Token bytes are shown with GPT-2's printable byte "
                "map (a space is 'Ġ', a newline 'Ċ'). "
                + (
                    "Ids 0..255 are the bytes in byte_order; merge i creates id 256 + i."
                    if gpt2
                    else "vocab gives each token's id; merges are ranked by their order."
                )
            ),
            "pattern": self._pattern,
            "special_tokens": self._special_tokens,
        }
        if not gpt2:
            header["ignore_merges"] = self._ignore_merges
            header["normalizer"] = self._normalizer
        lines = ["{"]
        for key, value in header.items():
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
        if gpt2:
            lines.append(f'  "byte_order": {json.dumps(self._byte_order)},')
        else:
            vocab = {bytes_to_text(token): i for i, token in sorted(self._layout.vocab.items())}
            lines.append(f'  "vocab": {json.dumps(vocab, ensure_ascii=False)},')
        # What json.dumps([a, b], ensure_ascii=False) writes, without its per-call set-up.
        quote = encode_basestring
        merge_lines = [
            f"    [{quote(bytes_to_text(a))}, {quote(bytes_to_text(b))}]" for a, b in self._merges
        ]
        lines.append(
            '  "merges": [' + ("\n" + ",\n".join(merge_lines) + "\n  " if merge_lines else "") + "]"
        )
        lines.append("}")
        write_text_atomically(path, "\n".join(lines) + "\n")
        return path

    def _in_gpt2_layout(self) -> bool:
        """Whether ids follow GPT-2's layout (bytes, merge i at 256 + i, then special tokens),
        with no normalizer: what a trained tokenizer is, and what format version 1 holds,
        which every slm-tokenizer reads."""
        layout = self._layout
        gpt2 = layout.is_gpt2 and len(layout.vocab) == 256 + len(self._merges)
        return gpt2 and self._normalizer is None

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a tokenizer file: slm's own (written by `save`) or a Hugging Face tokenizer.json.

        The second is how Hugging Face ships byte-level BPE tokenizers (GPT-2's,
        Llama 3's, Qwen's); `hf_format` says which ones slm can read. A damaged
        or foreign file raises ValueError naming the file.
        """
        path = Path(path)
        data = _read_json(path)
        if is_hf_tokenizer(data):
            return cls._from_hf(read_hf_tokenizer(data, path), path)
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise ValueError(
                f"{path} is not an slm BPE tokenizer file (no format {FORMAT_NAME!r}) nor a "
                "Hugging Face tokenizer.json (no model)"
            )
        fix = "re-create it with BPETokenizer.save()"
        if data.get("version") not in (FORMAT_VERSION, ANY_LAYOUT_VERSION):
            raise ValueError(
                f"{path} uses tokenizer format version {data.get('version')!r}; this slm-tokenizer "
                f"reads versions {FORMAT_VERSION} and {ANY_LAYOUT_VERSION}; upgrade slm-tokenizer "
                f"or {fix}"
            )
        try:
            return cls._from_saved(data)
        except KeyError as error:
            raise ValueError(
                f"{path} is damaged: the field {error.args[0]!r} is missing; {fix}"
            ) from None
        except (TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{path} is damaged: {error}; {fix}") from None

    @classmethod
    def _from_saved(cls, data: dict) -> BPETokenizer:
        """The tokenizer of a parsed slm file (version 1: GPT-2's layout; 2: any layout)."""
        merges = [(text_to_bytes(a), text_to_bytes(b)) for a, b in data["merges"]]
        options = {"special_tokens": data["special_tokens"], "pattern": data["pattern"]}
        if data["version"] == FORMAT_VERSION:
            return cls(merges, byte_order=data["byte_order"], **options)
        token_ids = {text_to_bytes(text): i for text, i in data["vocab"].items()}
        ignore_merges, normalizer = bool(data["ignore_merges"]), data["normalizer"]
        return cls(
            merges,
            token_ids=token_ids,
            ignore_merges=ignore_merges,
            normalizer=normalizer,
            **options,
        )

    @classmethod
    def _from_hf(cls, parts: HFTokenizerParts, path: Path) -> BPETokenizer:
        """Build a tokenizer.json's tokenizer, or say why slm cannot."""
        try:
            return cls.from_vocab_and_merges(
                parts.vocab,
                parts.merges,
                parts.special_tokens,
                parts.pattern,
                parts.ignore_merges,
                parts.normalizer,
            )
        except ValueError as error:
            raise ValueError(f"{path} is not a byte-level BPE slm can read: {error}") from None


def _checked_specials(special_tokens: dict[str, int], vocab: dict[int, bytes]) -> dict[str, int]:
    """The special tokens, each a non-empty string with an id of its own."""
    for text, token_id in special_tokens.items():
        if not isinstance(text, str) or not text:
            raise ValueError(f"special token {text!r} must be a non-empty string")
        if not isinstance(token_id, int) or token_id < 0:
            raise ValueError(f"special token {text!r} has id {token_id!r}; ids are integers >= 0")
        if token_id in vocab:
            raise ValueError(
                f"special token {text!r} has id {token_id}, which the vocabulary gives to "
                f"{vocab[token_id]!r}; give it an id of its own"
            )
    if len(set(special_tokens.values())) != len(special_tokens):
        raise ValueError("two special tokens share an id; each needs its own")
    return dict(special_tokens)


def _read_json(path: Path) -> object:
    """The parsed JSON of a tokenizer file; ValueError says what is wrong with it."""
    fix = (
        "give a file saved by BPETokenizer.save (slm-cli tokenizer train) or a Hugging Face "
        "tokenizer.json"
    )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text, so not a tokenizer file; {fix}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is damaged (invalid JSON: {error}); {fix}") from None


def _blocks(chunks: Iterable[str], size: int, normalizer: str | None = None) -> Iterator[str]:
    """Join chunks into strings of at least `size` characters (the last may be shorter).

    Lone surrogates become U+FFFD as in `encode`; a surrogate pair split between
    two chunks is kept together, so it becomes its character as it would there.
    With a normalizer, each block is normalized and ends before an ASCII
    character, so that it normalizes as it would within the whole text.
    """
    parts: list[str] = []
    length = 0
    for chunk in chunks:
        parts.append(require_str(chunk, "each chunk"))
        length += len(chunk)
        if length >= size:
            text = "".join(parts)
            parts, length = [], 0
            if normalizer is not None:
                cut = safe_cut(text)
                if not cut:  # no ASCII to cut before: wait for more text
                    parts, length = [text], len(text)
                    continue
                parts, length, text = [text[cut:]], len(text) - cut, text[:cut]
            elif "\ud800" <= text[-1] <= "\udbff":  # a high surrogate: its pair may come next
                parts, length, text = [text[-1]], 1, text[:-1]
            yield normalize(replace_surrogates(text), normalizer)
    if parts:
        yield normalize(replace_surrogates("".join(parts)), normalizer)
