"""Prompt formats for fine-tuned models: Alpaca (the book's chapter 7), ChatML, and a
hub model's own chat template.

A fine-tuned run records its format name in config.json, so `generate` and
`chat` wrap what you type the way the model saw it in training. Alpaca is
text; ChatML's turns are marked by special tokens, so a chat run's prompt is
ids (slm_tokenizer.chat.render_conversation), never text to encode. A run
imported with another chat template ("template") renders it (chat_template.py).
"""

from __future__ import annotations

from slm_tokenizer import BPETokenizer
from slm_tokenizer.chat import CHAT_TEMPLATE, IM_END, render_conversation

from .chat_template import TEMPLATE, ChatTemplate

ALPACA = "alpaca"
CHATML = "chatml"
FORMATS = (ALPACA, CHATML, TEMPLATE)
CONVERSATIONAL = (CHATML, TEMPLATE)  # formats whose prompts are conversations

_ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)


def format_instruction(instruction: str, input_text: str | None = None) -> str:
    """The Alpaca prompt up to and including "### Response:" and its newline."""
    prompt = f"{_ALPACA_PREAMBLE}\n\n### Instruction:\n{instruction}"
    if input_text:
        prompt += f"\n\n### Input:\n{input_text}"
    return prompt + "\n\n### Response:\n"


def format_prompt(prompt_format: str | None, text: str) -> str:
    """Wrap `text` in the run's prompt format (unchanged for pre-trained runs)."""
    if prompt_format is None:
        return text
    if prompt_format == ALPACA:
        return format_instruction(text)
    if prompt_format in CONVERSATIONAL:
        raise ValueError("a conversation's prompt is token ids, not text; use encode_prompt")
    raise ValueError(f"unknown prompt format {prompt_format!r}; known: {', '.join(FORMATS)}")


def encode_prompt(
    tokenizer: BPETokenizer,
    prompt_format: str | None,
    text: str,
    system: str | None = None,
    template: ChatTemplate | None = None,
) -> list[int]:
    """The ids a run's model continues to answer `text`: a chat run gets one user turn
    (after `system`, if given) and the open assistant turn; the others `format_prompt`.
    What the user typed is always plain text, special tokens included.

    `template` is the run's own chat template (ChatTemplate.of(run.config)), which
    the "template" format needs."""
    if prompt_format in CONVERSATIONAL:
        messages = [{"role": "system", "content": system}] if system is not None else []
        messages.append({"role": "user", "content": text})
        return encode_messages(tokenizer, prompt_format, messages, template)
    if system is not None:
        raise ValueError(no_system_prompt(prompt_format))
    return tokenizer.encode(format_prompt(prompt_format, text), disallowed_special=())


def encode_messages(
    tokenizer: BPETokenizer,
    prompt_format: str,
    messages: list[dict[str, str]],
    template: ChatTemplate | None = None,
) -> list[int]:
    """A conversation's ids up to the open assistant turn, in a chat run's format."""
    if prompt_format == TEMPLATE:
        if template is None:
            raise ValueError("this run chats through its own template; pass ChatTemplate.of")
        return template.encode(tokenizer, messages)
    return render_conversation(tokenizer, messages, add_generation_prompt=True)[0]


def no_system_prompt(prompt_format: str | None) -> str:
    """Why a run that is not a chat run takes no system prompt (--system, /system)."""
    kind = f"uses the {prompt_format} format" if prompt_format else "continues text"
    return f"a system prompt needs a chat run (one made by finetune chat); this run {kind}"


def reply_ends(
    tokenizer: BPETokenizer, prompt_format: str | None, template: ChatTemplate | None = None
) -> tuple[int, ...]:
    """The ids that end a reply, the usual one first: a chat run's `<|im_end|>` (or its
    template's eos_token), then end-of-text (which a chat model may still produce)."""
    ends = [tokenizer.special_tokens[IM_END]] if prompt_format == CHATML else []
    if template is not None:
        ends += template.end_ids(tokenizer)
    if tokenizer.eot_id is not None and tokenizer.eot_id not in ends:
        ends.append(tokenizer.eot_id)
    return tuple(ends)


FORMAT_KEYS = ("prompt_format", "chat_template", "bos_token", "eos_token")


def prompt_settings(config: dict) -> dict:
    """The config.json entries that say how a run's prompts are written (its format and, for
    a hub model's own template, the template and the tokens it names): what a stage that
    keeps its starting run's format (DPO, RL) copies into its own run."""
    return {key: config[key] for key in FORMAT_KEYS if key in config}


def chat_template(config: dict) -> str | None:
    """The Jinja chat template that exports of a run carry: one an import found, or
    ChatML's for a chat run; None for a run that holds no conversations."""
    if config.get("chat_template"):
        return config["chat_template"]
    return CHAT_TEMPLATE if config.get("prompt_format") == CHATML else None
