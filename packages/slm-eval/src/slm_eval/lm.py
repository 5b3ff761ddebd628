"""An slm run as an lm-evaluation-harness model: lm-eval's `slm` model type.

lm-eval asks a model three things, in text: the log-likelihood of a
continuation after a context (multiple choice), the log-likelihood of a whole
document (perplexity), and a greedy continuation up to a stop string
(generative tasks). `SlmLM` answers them with the run's own tokenizer, model
and KV-cache generator (slm_model.generate), so scores are of the model slm
trained, not of a conversion of it.

It follows lm-eval's Hugging Face model (`hf`) wherever the two could differ,
because the scores should compare with everyone else's: contexts and
continuations are split as `TemplateLM` splits them, inputs longer than the
context window lose tokens from the left, rolling windows are lm-eval's, and
an empty context is end-of-text. The tests check the per-example
log-likelihoods against `hf` on the run's exported transformers folder.

Special tokens in the text become special ids (as a transformers tokenizer
reads them), because lm-eval hands a chat run's prompt over as the rendered
template, markers included.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import (
    handle_stop_sequences,
    normalize_gen_kwargs,
    postprocess_generated_text,
)
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from slm_model import generate
from slm_train import Run, resolve_device
from slm_train.prompts import chat_template, reply_ends
from slm_train.runtime import autocast

# (context, continuation) text, context ids, continuation ids: what TemplateLM passes on.
Request = tuple[Any, list[int], list[int]]


class ChatRunNeeded(ValueError):
    """A chat template was asked of a run that holds no conversations."""


@register_model("slm")
class SlmLM(TemplateLM):
    """The run at `run` (its `checkpoint`), scored in batches of `batch_size` sequences.

    `precision` is fp32 by default: benchmark differences are small, and lm-eval's
    `hf` model scores in the checkpoint's dtype too.
    """

    def __init__(
        self,
        run: str,
        checkpoint: str = "best",
        device: str | None = None,
        batch_size: int | str | None = 16,
        max_gen_toks: int | str | None = None,
        precision: str = "fp32",
        **_: Any,  # lm-eval passes max_batch_size and others every model may ignore
    ) -> None:
        super().__init__()
        self.run = Run(run)
        self.tokenizer = self.run.tokenizer()
        self._device = _device(device)
        self.model = self.run.load_model(checkpoint, self._device)
        self.batch_size = _batch_size(batch_size)
        # lm-eval's hf model allows 256 new tokens unless a task says; a small model's window
        # may hold fewer, so by default at most half of it goes to the answer.
        self.max_gen_toks = int(max_gen_toks or min(256, self.max_length // 2))
        self.precision = precision
        self.ends = reply_ends(self.tokenizer, self.run.config.get("prompt_format"))
        self._specials = set(self.tokenizer.special_tokens.values())

    # ------------------------------------------------------------ what lm-eval asks of a model
    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eot_id

    @property
    def max_length(self) -> int:
        return self.model.config.block_size

    @property
    def tokenizer_name(self) -> str:
        return f"slm-{self.run.config['tokenizer']['sha256'][:16]}"

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_) -> list[int]:
        return self.tokenizer.encode(string, allowed_special="all")

    def get_model_info(self) -> dict[str, Any]:
        return {"run": str(self.run.path), "model_num_parameters": self.model.num_parameters()}

    # ------------------------------------------------------------------------- log-likelihood
    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, **_
    ) -> list[tuple[float, bool]]:
        """(log-probability, is it the greedy continuation) per request, longest first in
        batches padded on the right (a causal model's earlier positions never see padding)."""
        order = sorted(range(len(requests)), key=lambda i: -_length(requests[i]))
        answers: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        with _progress("log-likelihoods", len(requests), disable_tqdm) as advance:
            for batch in _chunks(order, self.batch_size):
                scored = self._score([requests[i] for i in batch])
                for index, answer in zip(batch, scored, strict=True):
                    answers[index] = answer
                advance(len(batch))
        return answers

    def _score(self, requests: list[Request]) -> list[tuple[float, bool]]:
        # Too long for the window: drop tokens from the left, as lm-eval's hf model does.
        window = self.max_length + 1
        inputs = [(context + more)[-window:][:-1] for _, context, more in requests]
        width = max(len(ids) for ids in inputs)
        padded = [ids + [0] * (width - len(ids)) for ids in inputs]
        padded = torch.tensor(padded, device=self.device)
        with torch.no_grad(), autocast(self.device, self.precision):
            logits = self.model(padded)
        log_probs = F.log_softmax(logits.float(), dim=-1)
        answers = []
        for row, ids, (_, _, continuation) in zip(log_probs, inputs, requests, strict=True):
            target = torch.tensor(continuation, device=self.device)
            scores = row[len(ids) - len(continuation) : len(ids)]
            greedy = bool((scores.argmax(dim=-1) == target).all())
            answers.append((float(scores.gather(1, target[:, None]).sum()), greedy))
        return answers

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Each document's log-likelihood over lm-eval's rolling windows (each token scored
        once, with as much context as the window holds), summed per document."""
        windows, owners = [], []
        for index, (text,) in enumerate(request.args for request in requests):
            pieces = get_rolling_token_windows(
                token_list=self.tok_encode(text),
                prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length,
                context_len=1,
            )
            for context, continuation in map(make_disjoint_window, pieces):
                windows.append((None, context, continuation))
                owners.append(index)
        totals = [0.0] * len(requests)
        for owner, (score, _) in zip(owners, self._loglikelihood_tokens(windows), strict=True):
            totals[owner] += score
        return totals

    # ----------------------------------------------------------------------------- generation
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Continuations, cut at the task's stop strings, from slm's KV-cache generator.

        Rows are batched when they share their settings and their length (slm's model
        takes no padding mask); each batch stops once every row has ended its reply.
        """
        groups: dict[tuple, list[int]] = defaultdict(list)
        prompts = []
        for index, (context, gen_kwargs) in enumerate(request.args for request in requests):
            settings = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
            ids = self._prompt(context, settings["max_gen_toks"])
            prompts.append((ids, settings))
            groups[(repr(sorted(settings.items())), len(ids))].append(index)
        replies = [""] * len(requests)
        with _progress("generations", len(requests), disable_tqdm) as advance:
            for indices in groups.values():
                for batch in _chunks(indices, self.batch_size):
                    texts = self._generate([prompts[i][0] for i in batch], prompts[batch[0]][1])
                    for index, text in zip(batch, texts, strict=True):
                        replies[index] = text
                    advance(len(batch))
        return replies

    def _prompt(self, context: str, max_gen_toks: int) -> list[int]:
        room = self.max_length - max_gen_toks
        if room < 1:
            raise ValueError(
                f"the task asks for {max_gen_toks} new tokens, but the model's context holds "
                f"{self.max_length}; set a smaller max_gen_toks in the task's generation_kwargs"
            )
        return self.tok_encode(context)[-room:]  # left-truncated, as hf does

    def _generate(self, prompts: list[list[int]], settings: dict[str, Any]) -> list[str]:
        sampling = settings.get("do_sample", False)
        tokens = generate(
            self.model,
            torch.tensor(prompts, device=self.device),
            settings["max_gen_toks"],
            temperature=float(settings.get("temperature", 1.0)) if sampling else 0.0,
            top_k=settings.get("top_k") if sampling else None,
            top_p=settings.get("top_p") if sampling else None,
            eos_id=self.ends[0] if self.ends else None,
        )
        stop = handle_stop_sequences(settings.get("until"), eos=None)
        return [
            postprocess_generated_text(self._decode(row[len(prompts[0]) :]), stop, None)
            for row in tokens.tolist()
        ]

    def _decode(self, ids: Sequence[int]) -> str:
        """The reply up to its end, without special tokens (hf decodes skipping them)."""
        reply = []
        for token in ids:
            if token in self.ends:
                break
            if token not in self._specials:
                reply.append(token)
        return self.tokenizer.decode(reply)

    # ---------------------------------------------------------------------------- chat runs
    def chat_template(self, chat_template: bool | str = False) -> str | None:
        template = template_of(self.run)
        return template if chat_template else None

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """The conversation as the run's template writes it; without a generation prompt the
        last (assistant) message stays open for the task's answer, as transformers'
        `continue_final_message` leaves it."""
        from slm_train import ChatTemplate

        # Rendered as transformers renders chat templates (slm_train.chat_template: sandboxed,
        # since an imported run's template is someone else's code, with its whitespace rules).
        config = self.run.config
        template = ChatTemplate(
            template_of(self.run), config.get("bos_token"), config.get("eos_token")
        )
        text = template.render(chat_history, add_generation_prompt)
        if add_generation_prompt or not chat_history:
            return text
        final = chat_history[-1]["content"]
        return text[: text.rindex(final) + len(final)] if final else text


def template_of(run: Run) -> str:
    template = chat_template(run.config)
    if template is None:
        raise ChatRunNeeded(
            f"{run.path} is not a chat run, so it has no chat template; drop "
            "--apply-chat-template, or evaluate a run made by finetune chat"
        )
    return template


def _device(requested: str | None) -> torch.device:
    """lm-eval's command line asks for cuda:0 unless told otherwise; where there is no
    CUDA, its hf model falls back to what there is, and so does this one (slm's "auto")."""
    if requested is None or (requested.startswith("cuda") and not torch.cuda.is_available()):
        return resolve_device("auto")
    return resolve_device(requested)


def _batch_size(value: int | str | None) -> int:
    """lm-eval passes its --batch_size through as text; "auto" means slm's default of 16."""
    if value in (None, "auto") or str(value).startswith("auto"):
        return 16
    size = int(value)
    if size < 1:
        raise ValueError(f"batch_size must be a positive number, got {value}")
    return size


@contextlib.contextmanager
def _progress(what: str, total: int, disable: bool = False) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over `total` requests; yields the function that advances it."""
    from rich.progress import Progress

    with Progress(transient=True, disable=disable) as progress:
        task = progress.add_task(f"slm: {what}", total=total)
        yield lambda done: progress.advance(task, done)


def _length(request: Request) -> int:
    return len(request[1]) + len(request[2])


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
