"""The built-in chat data (chatterbot, identity, checkable tasks, their mixture) and the scorecard.

The chatterbot reader is checked against the package's own YAML files read
here independently; identity replies against the facts of a real tiny run;
checkers against answers computed here; the scorecard against counts made by
hand for a model whose replies the test fixes.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter

import pytest
import torch
import yaml
from helpers import quick_config
from hypothesis import given, settings
from hypothesis import strategies as st
from slm_model import GPTModel, get_gpt_config
from slm_tokenizer import END_OF_TEXT, BPETokenizer
from slm_tokenizer.chat import IM_END, IM_START, check_messages, render_conversation
from slm_train import train
from slm_train.chat.builtin import data_directory, languages, persona_reason, read_chatterbot
from slm_train.chat.checkable import (
    TASKS,
    WORDS,
    Expected,
    constant_baseline,
    is_held_out,
    problems,
)
from slm_train.chat.identity import (
    HELD_OUT_QUESTIONS,
    TRAIN_QUESTIONS,
    IdentityCheck,
    ModelFacts,
    count_in_words,
    duration_in_words,
    identity_conversations,
    model_facts,
    source_name,
)
from slm_train.chat.mixture import Example, Mixture, builtin_conversations
from slm_train.chat.scoring import score_chat
from slm_train.run import Run

FACTS = ModelFacts("slm", 4_213_456, "The Bible in Basic English", 385.2)


def entries(language: str) -> dict[str, list]:
    """The package's conversations per file, read without the reader under test."""
    folder = data_directory() / language
    return {
        path.name: yaml.safe_load(path.read_text(encoding="utf-8"))["conversations"]
        for path in sorted(folder.glob("*.yml"))
    }


# ------------------------------------------------------------------ chatterbot
@pytest.fixture(scope="module")
def english():
    return read_chatterbot()


def test_chatterbot_accounts_for_every_entry(english):
    files = entries("english")
    total = sum(len(conversations) for conversations in files.values())
    assert len(english.conversations) + sum(english.dropped.values()) == total
    persona = len(files["botprofile.yml"]) + len(files["ai.yml"])
    assert english.dropped["persona file"] == persona
    as_tuples = {tuple(c) for cs in files.values() for c in cs if isinstance(c, list)}
    repeats = sum(isinstance(c, list) for cs in files.values() for c in cs) - len(as_tuples)
    assert english.dropped["repeat"] == repeats
    assert len({tuple(c) for c in files["tech_support.yml"]}) == 10  # 1,050 entries
    assert english.dropped["malformed"] == 1  # trivia's "In a game of bingo, ..." lost its dash
    assert 700 < len(english.conversations) < 800  # the docstring's count


def test_chatterbot_turns_alternate_and_end_with_the_assistant(english):
    for conversation in english.conversations:
        check_messages(conversation)
        assert [m["role"] for m in conversation] == ["user", "assistant"] * (len(conversation) // 2)
    assert len({json.dumps(c) for c in english.conversations}) == len(english.conversations)
    # conversations.yml's first entry has five turns: the user's last line is cut.
    first = entries("english")["conversations.yml"][0]
    assert len(first) == 5
    kept = next(c for c in english.conversations if c[0]["content"] == first[0])
    assert [m["content"] for m in kept] == first[:4]


def test_chatterbot_persona_is_left_out(english):
    replies = [m["content"] for c in english.conversations for m in c if m["role"] == "assistant"]
    questions = [m["content"] for c in english.conversations for m in c if m["role"] == "user"]
    for lie in ("I am written in Python.", "Actually I eat only electricity.", "A man in a mask."):
        assert lie not in replies
    assert not [q for q in questions if re.fullmatch(r"(who|what) are you\??", q, re.I)]
    assert "What is AI?" not in questions  # ai.yml is the bot on itself, so all of it goes
    # Facts and small talk stay, including those that mention computers in the third person.
    assert "Good morning, how are you?" in questions
    assert "What is a computer?" in questions
    assert "my favorite movie is lord of the rings" in " ".join(replies).lower()


@pytest.mark.parametrize(
    "turns, reason",
    [
        (["Who are you?", "A man in a mask."], "asks who the model is"),
        (["What is your name", "Bob."], "asks who the model is"),
        (["why don't you eat", "I'm a computer. I can't."], "persona claim"),
        (["have you ever read a book", "I have read many books."], "persona claim"),
        (["electricity", "Electricity is food for robots."], None),  # not about itself
        (["What are you trying to do?", "Relax."], None),
        (["sort?", "Sure:\n```\nfor i in range(3):\n    python(i)\n```"], None),  # code
    ],
)
def test_persona_rules(turns, reason):
    assert persona_reason(turns) == reason


def test_other_languages_read_and_unknown_ones_are_refused():
    assert "english" in languages() and "german" in languages()
    german = read_chatterbot("german")
    total = sum(len(cs) for cs in entries("german").values())
    assert len(german.conversations) + sum(german.dropped.values()) == total
    assert german.conversations and "persona claim" not in german.dropped
    with pytest.raises(ValueError, match=r"choose one of: .*english"):
        read_chatterbot("klingon")


# ------------------------------------------------------------------ identity
def _variants(question: str) -> set[str]:
    """Every wording training can give a phrasing (identity._vary), normalised."""
    return {" ".join(re.sub(r"[^\w\s']", "", question).lower().split())}


def test_held_out_phrasings_are_never_trained_on():
    trained = set().union(*(_variants(q) for q, _ in TRAIN_QUESTIONS))
    held_out = set().union(*(_variants(q) for q, _ in HELD_OUT_QUESTIONS))
    assert not trained & held_out
    assert {a for _, a in HELD_OUT_QUESTIONS} <= {a for _, a in TRAIN_QUESTIONS}  # kinds taught
    for conversation, _ in identity_conversations(FACTS, 200, seed=1):
        for message in conversation[0::2]:
            assert _variants(message["content"]) <= trained
    for conversation, _ in identity_conversations(FACTS, 50, seed=1, held_out=True):
        assert conversation[0]["content"] in {q for q, _ in HELD_OUT_QUESTIONS}


@settings(max_examples=40, deadline=None)
@given(
    parameters=st.integers(1, 10**11),
    seconds=st.floats(1, 10**6),
    name=st.sampled_from(["slm", "Ada", "tiny-bot"]),
    data=st.sampled_from(["The Bible in Basic English", "TinyStories", "corpus.txt"]),
    seed=st.integers(0, 1000),
)
def test_identity_replies_are_true_and_wrong_facts_fail(parameters, seconds, name, data, seed):
    facts = ModelFacts(name, parameters, data, seconds)
    words = facts.words()
    for conversation, check in identity_conversations(facts, 10, seed):
        reply = conversation[-1]["content"]
        assert check(reply)
        asked = {"name"} if check.asks == {"who"} else check.asks
        for fact in asked:
            assert words[fact] in reply
        wrong = ModelFacts("other", parameters * 3, "War and Peace", seconds * 4)
        for fact in check.asks:  # a reply about another model fails each fact it is asked
            assert not IdentityCheck(wrong, frozenset({fact}))(reply)


@pytest.mark.parametrize(
    "asks, reply, correct",
    [
        ({"size"}, "I have 4.2 million parameters.", True),
        ({"size"}, "About 4 million.", True),  # right to the precision stated
        ({"size"}, "4,213,456 parameters", True),
        ({"size"}, "I have 4.2M weights", True),
        ({"size"}, "4.3 million parameters", False),
        ({"size"}, "5 million parameters", False),
        ({"size"}, "I have many parameters.", False),
        ({"time"}, "6 minutes", True),
        ({"time"}, "385 seconds", True),
        ({"time"}, "6 minutes and 25 seconds", True),
        ({"time"}, "7 minutes", False),
        ({"time"}, "6 hours", False),
        ({"data"}, "I read the bible in basic english.", True),
        ({"data"}, "I read the Bible.", False),
        ({"name"}, "I'm SLM!", True),
        ({"name"}, "I'm slmx.", False),
        ({"who", "size"}, "I'm slm with 4.2 million parameters.", True),
        ({"who", "size"}, "I'm slm.", False),
    ],
)
def test_identity_check_by_hand(asks, reply, correct):
    assert IdentityCheck(FACTS, frozenset(asks))(reply) is correct


def test_facts_in_words():
    assert FACTS.words() == {
        "name": "slm",
        "size": "4.2 million parameters",
        "data": "The Bible in Basic English",
        "time": "6 minutes",
    }
    assert count_in_words(124_439_808) == "124 million"
    assert count_in_words(999) == "999"
    assert duration_in_words(1.2) == "1 second"
    assert duration_in_words(4000) == "67 minutes"
    assert duration_in_words(9000) == "2.5 hours"
    assert source_name("builtin:bbe") == "The Bible in Basic English"
    assert source_name("tinystories,books/moby.txt") == "TinyStories and moby.txt"


def test_model_facts_are_read_from_a_run(tmp_path, corpus_file):
    run = Run(
        train(
            quick_config(tmp_path, corpus_file, max_steps=4, warmup_steps=1, eval_interval=2)
        ).run_dir
    )
    facts = model_facts(run)
    model = run.load_model()
    tensors = {id(p): p.numel() for p in model.parameters()}  # tied weights once
    assert facts.parameters == sum(tensors.values())
    records = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert facts.training_time_s == max(r["elapsed"] for r in records) > 0
    assert (facts.name, facts.training_data) == ("slm", "corpus.txt")
    grown = model_facts(run, vocab_size=model.config.vocab_size + 2)
    assert grown.parameters - facts.parameters == 2 * model.config.n_embd  # tied: one table


# ------------------------------------------------------------------ checkable tasks
@pytest.mark.parametrize("name", sorted(TASKS))
def test_held_out_problems_never_appear_in_training(name):
    task = TASKS[name]
    trained = {p.key for seed in range(3) for p in problems(task, 300, seed)}
    held_out = [p for seed in range(3) for p in problems(task, 40, seed, held_out=True)]
    assert held_out and not trained & {p.key for p in held_out}
    assert all(is_held_out(name, p.key) for p in held_out)
    assert len({p.key for p in problems(task, 40, 0, held_out=True)}) == len(
        problems(task, 40, 0, held_out=True)
    )


@pytest.mark.parametrize("name", sorted(TASKS))
def test_problems_are_deterministic_and_replies_pass_their_checks(name):
    task = TASKS[name]
    first, again, other = problems(task, 50, 7), problems(task, 50, 7), problems(task, 50, 8)
    assert first == again and first != other
    for problem in first + problems(task, 40, 7, held_out=True):
        assert task.check(problem.reply, problem.answer)
        assert task.check(problem.answer, problem.answer)  # the bare answer
        assert task.check(f"Sure! The answer: {problem.answer}.", problem.answer)


@given(a=st.integers(0, 20), b=st.integers(0, 20), off=st.integers(1, 30))
def test_arithmetic_check(a, b, off):
    task, answer = TASKS["arithmetic"], str(a + b)
    assert task.check(f"{a} + {b} = {a + b}.", answer)
    assert not task.check(f"{a} + {b} = {a + b + off}.", answer)
    assert not task.check(f"It is {a + b}, or maybe {a + b + off}.", answer)
    assert not task.check("I don't know.", answer)


@given(word=st.sampled_from(WORDS), letter=st.sampled_from("abcdefghijklmnopqrstuvwxyz"))
def test_counting_check(word, letter):
    task, count = TASKS["counting"], word.count(letter)
    assert task.check(f"'{letter}' appears {count} times in {word}.", str(count))
    assert not task.check(f"'{letter}' appears {count + 1} times in {word}.", str(count))


@given(word=st.sampled_from(WORDS), sep=st.sampled_from(["-", " ", ", ", " - "]), data=st.data())
def test_spelling_check(word, sep, data):
    task, answer = TASKS["spelling"], "-".join(word)
    assert task.check(f"{word} is spelled {sep.join(word.upper())}.", answer)
    i = data.draw(st.integers(0, len(word) - 1))
    wrong = word[:i] + ("x" if word[i] != "x" else "y") + word[i + 1 :]
    assert not task.check(f"{word} is spelled {sep.join(wrong)}.", answer)
    assert not task.check(f"{word} is spelled {sep.join(word[:i] + word[i + 1 :])}.", answer)
    assert not task.check(f"It is {word}.", answer)


@given(items=st.lists(st.sampled_from(WORDS), min_size=3, max_size=5, unique=True))
def test_reversing_check(items):
    task, answer = TASKS["reversing"], ", ".join(reversed(items))
    assert task.check(f"Reversed: {answer}.", answer)
    assert task.check(", ".join(reversed(items[1:])) + ", and " + items[0], answer)
    assert not task.check(f"Reversed: {', '.join(items)}.", answer)
    assert not task.check(f"Reversed: {', '.join(reversed(items[1:]))}.", answer)


def test_constant_baseline_is_the_most_common_answer():
    checks = [Expected("arithmetic", a) for a in ["3", "12", "3", "7"]]
    assert constant_baseline(checks) == 0.5
    for name, task in TASKS.items():
        held_out = problems(task, 40, 0, held_out=True)
        answers = Counter(p.answer for p in held_out)
        expected = answers.most_common(1)[0][1] / len(held_out)
        assert constant_baseline([Expected(name, p.answer) for p in held_out]) == expected
    counts = Counter(p.answer for p in problems(TASKS["counting"], 40, 0, held_out=True))
    assert set(counts) == {"0", "1", "2", "3"} and max(counts.values()) <= 14  # about 25 %


# ------------------------------------------------------------------ the mixture
@pytest.fixture(scope="module")
def mixture():
    return builtin_conversations(FACTS, seed=3)


def test_mixture_is_deterministic_and_documented(mixture):
    train, val, test = mixture
    again = builtin_conversations(FACTS, seed=3)
    assert again.train == train and again.val == val
    assert [(e.messages, e.source) for e in again.test] == [(e.messages, e.source) for e in test]
    assert builtin_conversations(FACTS, seed=4).train != train
    sources = Counter(e.source for e in test)
    m = Mixture()
    assert sources["identity"] == m.identity_test
    assert all(sources[name] == m.task_test for name in TASKS)
    assert len(train) == pytest.approx(5600, rel=0.02)  # the docstring's table
    for conversation in train + val + [e.messages for e in test]:
        check_messages(conversation)
        assert conversation[-1]["role"] == "assistant"


def test_mixture_holds_out_each_kind(mixture):
    train, _, test = mixture
    openings = {c[0]["content"].lower() for c in train}
    chatterbot = [e for e in test if e.source == "chatterbot"]
    assert chatterbot and not {e.messages[0]["content"].lower() for e in chatterbot} & openings
    held_out_questions = {q for q, _ in HELD_OUT_QUESTIONS}
    trained = {m["content"] for c in train for m in c if m["role"] == "user"}
    assert not trained & held_out_questions
    tested = [e.messages[0]["content"] for e in test if e.source == "identity"]
    assert set(tested) <= held_out_questions
    for name in TASKS:
        tested = {e.messages[0]["content"] for e in test if e.source == name}
        assert tested and not tested & trained
    assert all(e.check(e.messages[-1]["content"]) for e in test if e.check)


# ------------------------------------------------------------------ the scorecard
@pytest.fixture(scope="module")
def chat_tokenizer(mixture):
    text = [m["content"] for c in mixture.train[:300] for m in c]
    return BPETokenizer.train(text, 320, [END_OF_TEXT, IM_START, IM_END], workers=1)


class NextToken(torch.nn.Module):
    """An output head that, given the last token as a one-hot, picks `table[token]`."""

    def __init__(self, table: dict[int, int], vocab_size: int, default: int) -> None:
        super().__init__()
        choice = torch.full((vocab_size,), default)
        for token, following in table.items():
            choice[token] = following
        self.register_buffer("logits", torch.nn.functional.one_hot(choice, vocab_size).float())

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.logits


def scripted_model(tokenizer: BPETokenizer, reply: str, *, end: bool) -> GPTModel:
    """A GPTModel that answers every chat prompt with `reply`, then <|im_end|> or `reply` again."""
    vocab, stop = tokenizer.vocab_size, tokenizer.special_tokens[IM_END]
    ids = tokenizer.encode_ordinary(reply)
    last_of_prompt = tokenizer.encode_ordinary("assistant\n")[-1]
    assert len(set(ids)) == len(ids) and last_of_prompt not in ids  # a chain, one way through
    table = {
        last_of_prompt: ids[0],
        **dict(itertools.pairwise(ids)),
        ids[-1]: stop if end else ids[0],
    }
    model = GPTModel(get_gpt_config("tiny", vocab_size=vocab, block_size=64))
    model.hidden_states = lambda idx, cache=None: torch.nn.functional.one_hot(idx, vocab).float()
    model.lm_head = NextToken(table, vocab, default=stop)
    return model


def test_scorecard_counts_a_fixed_reply_by_hand(mixture, chat_tokenizer):
    test = mixture.test
    card = score_chat(scripted_model(chat_tokenizer, " 12", end=True), chat_tokenizer, test)
    assert len(card.replies) == len(test) and {r.text for r in card.replies} == {" 12"}
    assert card.ended == 1.0 and card.identity == 0.0
    arithmetic = [e.check.answer for e in test if e.source == "arithmetic"]
    assert card.tasks["arithmetic"].accuracy == arithmetic.count("12") / len(arithmetic)
    assert card.tasks["arithmetic"].baseline == (
        Counter(arithmetic).most_common(1)[0][1] / len(arithmetic)
    )
    assert card.tasks["counting"].accuracy == 0.0  # counts are 0 to 3
    assert card.tasks["spelling"].count == Mixture().task_test


def test_scorecard_counts_a_reply_that_never_ends(mixture, chat_tokenizer):
    test = [e for e in mixture.test if e.source in ("identity", "chatterbot")]
    model = scripted_model(chat_tokenizer, "Hi, slm.", end=False)
    card = score_chat(model, chat_tokenizer, test, max_reply_tokens=20)
    assert card.ended == 0.0 and card.tasks == {}
    identity = [e for e in test if e.source == "identity"]
    only_the_name = sum(e.check.asks <= {"who", "name"} for e in identity)
    assert 0 < only_the_name < len(identity)
    assert card.identity == only_the_name / len(identity)
    assert all(r.text.startswith("Hi, slm.Hi, slm.") for r in card.replies)
    assert all(r.correct is None for r in card.replies if r.source == "chatterbot")


def test_scorecard_prompts_are_the_rendered_conversation(chat_tokenizer):
    """The model sees exactly render_conversation's generation prompt for the question."""
    seen = []
    model = scripted_model(chat_tokenizer, " 12", end=True)
    hidden = model.hidden_states
    model.hidden_states = lambda idx, cache=None: seen.append(idx.tolist()) or hidden(idx)
    messages = [
        {"role": "user", "content": "What is 7 + 5?"},
        {"role": "assistant", "content": "12"},
    ]
    card = score_chat(
        model, chat_tokenizer, [Example(messages, "arithmetic", Expected("arithmetic", "12"))]
    )
    prompt, _ = render_conversation(chat_tokenizer, messages[:1], add_generation_prompt=True)
    assert seen[0] == [prompt]
    assert card.tasks["arithmetic"].accuracy == 1.0
