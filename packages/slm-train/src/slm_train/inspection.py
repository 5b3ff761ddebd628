"""Inspecting a trained run: the numbers behind `slm-cli inspect`, and its pictures.

`inspect_text` opens a run, encodes a text the way the model saw text in
training (an instruction-tuned run wraps it in its prompt format, as
`generate` does), and asks `slm_model.inspect` what the model made of it:
how surprised it was by each token, what it expects next, what each layer
would predict (the logit lens) and where each head looked (attention maps).
With `out`, it also draws the attention heatmaps and the next-token odds.

Classifier runs are refused: their output layer scores labels, not tokens, so
neither surprise nor next tokens mean anything there (`slm-cli classify`).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from slm_model import attention_maps, logit_lens, token_surprise, top_next_tokens
from slm_tokenizer import BPETokenizer

from .chat_template import ChatTemplate
from .plot import _new_figure, _save
from .prompts import encode_prompt
from .run import Run
from .runtime import resolve_device

LENS_TOP = 3  # guesses per layer and position in the logit lens


class Candidate(NamedTuple):
    """A possible next token and the probability the model gives it."""

    token: str
    id: int
    probability: float


@dataclass
class Inspection:
    """What `inspect_text` found. Positions index `tokens`; layers and heads count from 0.

    surprise[t] is the loss at tokens[t + 1] (the first token has no context).
    next_tokens follow tokens[at]. lens[r][t] are the best guesses for the token
    after tokens[t] read from residual row r: lens_rows[0] is the embeddings,
    lens_rows[L + 1] the stream after block L (the last row is the model's own).
    attention is (n_layer, n_head, tokens, tokens).
    """

    run: Path
    text: str
    token_ids: list[int]
    tokens: list[str]
    dropped: int  # tokens cut from the front to fit the context window
    surprise: list[float]
    at: int
    next_tokens: list[Candidate]
    lens_rows: list[str]
    lens: list[list[list[Candidate]]]
    attention: torch.Tensor
    layer: int | None = None
    head: int | None = None
    plots: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The same numbers as plain JSON types (attention: only the chosen layer/head)."""
        layers = slice(None) if self.layer is None else slice(self.layer, self.layer + 1)
        heads = slice(None) if self.head is None else slice(self.head, self.head + 1)
        return {
            "run": str(self.run),
            "text": self.text,
            "tokens": [
                {"token": t, "id": i} for t, i in zip(self.tokens, self.token_ids, strict=True)
            ],
            "dropped": self.dropped,
            "surprise": [round(s, 5) for s in self.surprise],
            "at": self.at,
            "next_tokens": [c._asdict() for c in self.next_tokens],
            "logit_lens": {
                row: [[c._asdict() for c in guesses] for guesses in positions]
                for row, positions in zip(self.lens_rows, self.lens, strict=True)
            },
            "attention": {
                "layers": list(range(self.attention.shape[0]))[layers],
                "heads": list(range(self.attention.shape[1]))[heads],
                "weights": self.attention[layers, heads].round(decimals=5).tolist(),
            },
            "plots": [str(p) for p in self.plots],
        }


def token_strings(tokenizer: BPETokenizer, ids: list[int]) -> list[str]:
    """Each token as text; a token holding part of a UTF-8 character shows as U+FFFD."""
    return [tokenizer.decode_bytes([i]).decode("utf-8", errors="replace") for i in ids]


def _check_index(name: str, value: int | None, count: int) -> None:
    if value is not None and not 0 <= value < count:
        raise ValueError(
            f"{name} {value} does not exist: this model has {count} {name}s, 0..{count - 1}"
        )


def _encode(
    run: Run, tokenizer: BPETokenizer, text: str, block_size: int
) -> tuple[str, list[int], int]:
    """The text as the model reads it, its ids, and how many ids were dropped to fit."""
    template = ChatTemplate.of(run.config)
    ids = encode_prompt(tokenizer, run.config.get("prompt_format"), text, template=template)
    text = tokenizer.decode(ids)  # a chat run's turns are special tokens, so shown from ids
    if not ids:
        raise ValueError("the text is empty; give some text to inspect")
    dropped = max(0, len(ids) - block_size)
    if dropped:
        warnings.warn(
            f"the text has {len(ids)} tokens, more than the model's context of {block_size}; "
            f"inspecting the last {block_size}",
            stacklevel=3,
        )
    return text, ids[dropped:], dropped


def inspect_text(
    run: Run | str | os.PathLike,
    text: str,
    *,
    at: int | None = None,
    top_k: int = 10,
    layer: int | None = None,
    head: int | None = None,
    out: str | os.PathLike | None = None,
    checkpoint: str = "best",
    device: str = "auto",
) -> Inspection:
    """Look inside a run's model as it reads `text` (see `Inspection`).

    `at` picks the token the next-token table follows (default: the last).
    `layer`/`head` narrow the attention heatmap (and `to_dict`) to one layer or
    head. With `out`, writes attention.png and next_tokens.png there.
    """
    run = run if isinstance(run, Run) else Run(run)
    config = run.model_config
    _check_index("layer", layer, config.n_layer)
    _check_index("head", head, config.n_head)
    tokenizer = run.tokenizer()
    model = run.load_model(checkpoint, resolve_device(device))
    text, ids, dropped = _encode(run, tokenizer, text, config.block_size)
    tokens = token_strings(tokenizer, ids)
    following = top_next_tokens(model, ids, top_k, at)
    lens = logit_lens(model, ids, LENS_TOP)
    result = Inspection(
        run=run.path,
        text=text,
        token_ids=ids,
        tokens=tokens,
        dropped=dropped,
        surprise=token_surprise(model, ids).tolist(),
        at=following.position,
        next_tokens=_candidates(tokenizer, following.token_ids, following.probabilities),
        lens_rows=["embeddings"] + [f"block {b}" for b in range(config.n_layer)],
        lens=[
            [
                _candidates(tokenizer, i.tolist(), p.tolist())
                for i, p in zip(row_ids, row_p, strict=True)
            ]
            for row_ids, row_p in zip(lens.token_ids, lens.probabilities, strict=True)
        ],
        attention=attention_maps(model, ids),
        layer=layer,
        head=head,
    )
    if out is not None:
        out = Path(out)
        result.plots = [
            plot_attention(result.attention, tokens, out / "attention.png", layer, head),
            plot_next_tokens(result.next_tokens, tokens[: result.at + 1], out / "next_tokens.png"),
        ]
    return result


def _candidates(tokenizer: BPETokenizer, ids: list[int], probabilities: list[float]):
    return [
        Candidate(token, i, p)
        for token, i, p in zip(token_strings(tokenizer, ids), ids, probabilities, strict=True)
    ]


# ---------------------------------------------------------------- pictures
def axis_label(token: str) -> str:
    """A token for an axis: spaces as '␣' and newlines as '↵', so each one is visible."""
    return token.replace(" ", "\u2423").replace("\n", "\u21b5").replace("\t", "\u2192")


def plot_attention(
    maps: torch.Tensor,
    tokens: list[str],
    path: str | os.PathLike,
    layer: int | None = None,
    head: int | None = None,
) -> Path:
    """Heatmaps of attention weights (n_layer, n_head, tokens, tokens), tokens on the axes.

    A grid of layers (rows) by heads (columns), or one row, column or map when
    `layer` and/or `head` is given. Row i of a map: where token i looked.
    """
    layers = range(maps.shape[0]) if layer is None else [layer]
    heads = range(maps.shape[1]) if head is None else [head]
    size = len(tokens)
    panel = min(max(2.4, 0.17 * size), 6.0) if len(layers) * len(heads) > 1 else 7.0
    figure = _new_figure(panel * len(heads) + 1.2, panel * len(layers) + 0.6)
    grid = figure.subplots(len(layers), len(heads), squeeze=False)
    step = max(1, math.ceil(size / (60 if panel >= 6 else 30)))  # at most ~30 labels a panel
    labels = [axis_label(t) for t in tokens]
    fontsize = 7 if len(layers) * len(heads) > 1 else 9
    # A square-root colour scale shows the small weights too; the future (always 0) stays blank.
    from matplotlib.colors import PowerNorm

    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    future = torch.ones(size, size, dtype=torch.bool).triu(diagonal=1)
    image = None
    for row, l in enumerate(layers):  # noqa: E741
        for col, h in enumerate(heads):
            axes = grid[row][col]
            weights = maps[l, h].masked_fill(future, float("nan")).numpy()  # NaN: not drawn
            image = axes.imshow(weights, cmap="viridis", norm=norm)
            axes.set_title(f"layer {l}, head {h}", fontsize=9)
            axes.set_xticks(range(0, size, step))
            axes.set_yticks(range(0, size, step))
            bottom, left = row == len(layers) - 1, col == 0
            axes.set_xticklabels(labels[::step] if bottom else [], rotation=90, fontsize=fontsize)
            axes.set_yticklabels(labels[::step] if left else [], fontsize=fontsize)
    figure.colorbar(image, ax=grid, shrink=0.6, label="attention weight (square-root scale)")
    figure.suptitle(
        "Attention weights: each row is a token, the columns what it looks at", fontsize=10
    )
    return _save(figure, path)


def plot_next_tokens(
    candidates: list[Candidate], context: list[str], path: str | os.PathLike
) -> Path:
    """A bar chart of the most likely next tokens after `context` (a list of tokens)."""
    figure = _new_figure(7, 0.35 * len(candidates) + 1.4)
    axes = figure.subplots()
    names = [axis_label(c.token) for c in candidates][::-1]
    values = [c.probability for c in candidates][::-1]
    bars = axes.barh(range(len(values)), values, color="tab:blue")
    axes.bar_label(bars, labels=[f"{v:.1%}" for v in values], padding=3, fontsize=8)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlim(0, min(1.0, max(values) * 1.25 + 0.02))
    axes.set_xlabel("probability")
    tail = "".join(context[-8:])
    axes.set_title(f"Next token after \u2026{axis_label(tail)[-40:]}", fontsize=10)
    return _save(figure, path)
