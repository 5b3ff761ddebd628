"""Human-written conversations from the `chatterbot-corpus` package (BSD licence).

The package ships YAML files, `<DATA_DIRECTORY>/<language>/<topic>.yml`, each
with a `conversations:` list. A conversation is a list of statements, each the
reply to the one before; read as alternating user and assistant turns (the
user speaks first) they are chat data with no download: 2,025 English entries
in 21 topics, and smaller sets in 27 other languages. Only `yaml.safe_load`
reads them.

What is left out, and why (the English counts, from version 1.3.3):
- entries that are not a list of texts (1: a trivia question lost its dash and
  parsed as one string), and conversations with no reply. A trailing user turn
  is cut, so every conversation ends with the assistant.
- exact repeats (1,127): tech_support.yml says 10 exchanges 1,050 times, and
  coding.yml 98 in 184 entries. Kept, they would weigh two topics a hundredfold
  and put the same exchange in both the training and the held-out split.
- chatterbot's persona, which would make the model lie about itself. slm is a
  small language model trained on its run's text (identity.py says so, truly);
  chatterbot plays a Python program waiting for a robot body. So:
  - the files `botprofile.yml` and `ai.yml`, in every language (124 in
    English): the bot's age, home and family ("Where are you? I am on the
    Internet."), and the bot on itself ("I am written in Python.", "Not until
    my body is finished.", "I am the original chat bot. Did you know that I am
    incapable of error?");
  - (English) a conversation in which the user asks who or what the assistant
    is, or its name ("Who are you?" "A man in a mask."): identity.py answers
    those, with the facts of the run;
  - (English) a conversation in which the assistant says, in the first person,
    that it is or runs on a program, computer or robot, or claims a past it
    does not have ("Actually I eat only electricity.", "My mood reflects the
    current internal state of my conversation engine.", "I have read just
    about everything in Project Gutenberg.").
  Opinions and feelings in the small-talk register ("My favorite movie is lord
  of the rings") stay: that register is what a chat model learns here, and
  they are not facts about the model.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

Conversation = list[dict[str, str]]
DEFAULT_LANGUAGE = "english"
PERSONA_FILES = ("botprofile.yml", "ai.yml")

# A user turn that asks who the assistant is: identity.py's questions.
ASKS_IDENTITY = re.compile(
    r"^\W*(who|what) are you( then| really)?\W*$|\byour (own )?name\b|\babout your ?self\b"
    r"|\bare you an? (robot|bot|computer|program|machine)\b",
    re.IGNORECASE,
)
FIRST_PERSON = re.compile(r"\b(i|i'm|im|i've|me|my|myself|we|us|our)\b", re.IGNORECASE)
MACHINE = re.compile(
    r"\b(robots?|bots?|chat ?bots?|software|program(med)?|hardware|computer|electricity"
    r"|processor|power supply|source code|engine|server|immortal|python|online|internet"
    r"|construct|artificial)\b|\bi(?: have|'ve) (read|met)\b",
    re.IGNORECASE,
)
CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)  # code is not the assistant speaking of itself


@dataclass
class ChatterbotCorpus:
    """The conversations kept, and how many entries were left out for each reason."""

    language: str
    conversations: list[Conversation]
    dropped: Counter[str] = field(default_factory=Counter)


def data_directory() -> Path:
    from chatterbot_corpus.corpus import DATA_DIRECTORY

    return Path(DATA_DIRECTORY)


def languages() -> list[str]:
    """The languages the installed corpus holds (folder names, e.g. "english", "german")."""
    return sorted(path.name for path in data_directory().iterdir() if any(path.glob("*.yml")))


def read_chatterbot(language: str = DEFAULT_LANGUAGE) -> ChatterbotCorpus:
    """Every usable conversation in `language`, in a fixed order (files by name)."""
    folder = data_directory() / language
    if language not in languages():
        raise ValueError(
            f"chatterbot-corpus has no conversations in {language!r}; choose one of: "
            + ", ".join(languages())
        )
    corpus, seen = ChatterbotCorpus(language, []), set()
    for path in sorted(folder.glob("*.yml")):
        entries = yaml.safe_load(path.read_text(encoding="utf-8")).get("conversations") or []
        for entry in entries:
            reason = _left_out(path.name, entry, language, seen)
            if reason:
                corpus.dropped[reason] += 1
                continue
            seen.add(tuple(entry))
            corpus.conversations.append(as_messages(entry))
    return corpus


def as_messages(turns: list[str]) -> Conversation:
    """Alternating user and assistant messages, ending with the assistant's."""
    turns = turns[: len(turns) // 2 * 2]
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": turn.strip()} for i, turn in enumerate(turns)]


def _left_out(file: str, entry: object, language: str, seen: set) -> str | None:
    """Why an entry is not used ("malformed", "persona", ...), or None to keep it."""
    if not isinstance(entry, list) or not all(isinstance(turn, str) for turn in entry):
        return "malformed"
    if len(entry) < 2:
        return "no reply"
    if tuple(entry) in seen:
        return "repeat"
    if file in PERSONA_FILES:
        return "persona file"
    if language == "english":
        return persona_reason(entry)
    return None


def persona_reason(turns: list[str]) -> str | None:
    """ "asks who the model is", "persona claim", or None: the English persona rules."""
    if any(ASKS_IDENTITY.search(turn) for turn in turns[0::2]):
        return "asks who the model is"
    for reply in turns[1::2]:
        prose = CODE_BLOCK.sub("", reply)
        if FIRST_PERSON.search(prose) and MACHINE.search(prose):
            return "persona claim"
    return None
