"""Conversations for chat models: the data a chat fine-tuning reads and the scorecard it earns.

Where this sits: `slm_tokenizer.chat` turns a conversation (a list of
`{"role", "content"}` messages) into ids and a loss mask; `finetune/chat.py`
trains on conversations with the shared engine. This package supplies them:

- `conversations` users' files (OpenAI messages, ShareGPT, Alpaca JSONL);
- `builtin`    human-written exchanges from the `chatterbot-corpus` package;
- `identity`   generated conversations in which the model says truly who it is;
- `checkable`  generated tasks whose answers a program checks (arithmetic,
               counting letters, spelling, reversing a list);
- `mixture`    the three mixed into train / validation / test splits, so that
               `finetune chat` and `train --chat` work offline with no user data;
- `scoring`    the chat scorecard: greedy replies to the test split, measured.
"""

from .builtin import ChatterbotCorpus, read_chatterbot
from .checkable import TASKS, CheckableTask, Expected, Problem, constant_baseline, problems
from .conversations import ROLE_NAMES, load_conversations, parse_conversation
from .identity import IdentityCheck, ModelFacts, identity_conversations, model_facts
from .mixture import BuiltinConversations, Example, Mixture, builtin_conversations
from .scoring import Reply, Scorecard, TaskScore, score_chat

__all__ = [
    "ROLE_NAMES",
    "TASKS",
    "BuiltinConversations",
    "ChatterbotCorpus",
    "CheckableTask",
    "Example",
    "Expected",
    "IdentityCheck",
    "Mixture",
    "ModelFacts",
    "Problem",
    "Reply",
    "Scorecard",
    "TaskScore",
    "builtin_conversations",
    "constant_baseline",
    "identity_conversations",
    "load_conversations",
    "model_facts",
    "parse_conversation",
    "problems",
    "read_chatterbot",
    "score_chat",
]
