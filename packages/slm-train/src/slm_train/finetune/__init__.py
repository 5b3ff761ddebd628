"""Fine-tuning a pre-trained GPT (the book's chapters 6 and 7), on the shared training engine.

- `classify.py`: a class head read at the last real token (spam or not, ...).
- `instruct.py`: Alpaca-style instruction following, with prompt masking.
- `chat.py`: multi-turn conversations in ChatML, the loss on the assistant's turns.
- `dpo.py`: preference tuning (DPO) on pairs of replies (`preferences.py`, `dpo_loss.py`).
- `rl.py`: reinforcement learning on checkable tasks (`policy_gradient.py`).
- `base.py`: what they share: the base model, the run, epochs of shuffled batches.
- `data.py`: reading and checking the labelled files.
"""

from .chat import ChatResult, collate_conversations, finetune_chat, fit_to_window
from .classify import (
    ClassifyResult,
    GPTClassifier,
    classify,
    encode_texts,
    finetune_classifier,
    load_classifier,
    pad_batch,
    set_trainable,
)
from .dpo import DPOResult, finetune_dpo
from .dpo_loss import dpo_loss, sequence_logprobs
from .instruct import (
    InstructResult,
    collate_instructions,
    encode_instruction,
    finetune_instructions,
    respond,
    token_f1,
)
from .policy_gradient import advantages, policy_gradient_loss
from .rl import RLResult, finetune_rl

__all__ = [
    "ChatResult",
    "ClassifyResult",
    "DPOResult",
    "GPTClassifier",
    "InstructResult",
    "RLResult",
    "advantages",
    "classify",
    "collate_conversations",
    "collate_instructions",
    "dpo_loss",
    "encode_instruction",
    "encode_texts",
    "finetune_chat",
    "finetune_classifier",
    "finetune_dpo",
    "finetune_instructions",
    "finetune_rl",
    "fit_to_window",
    "load_classifier",
    "pad_batch",
    "policy_gradient_loss",
    "respond",
    "sequence_logprobs",
    "set_trainable",
    "token_f1",
]
