"""Chat fine-tuning: reading conversations, fitting them to the window, and training on them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from helpers import WORDS, StopAt, quick_config, story
from safetensors.torch import load_file, save_file
from slm_model import GPTModel, get_gpt_config
from slm_tokenizer import gpt2
from slm_tokenizer.chat import IM_END, IM_START, render_conversation
from slm_train import (
    ChatConfig,
    ConfigError,
    CorpusError,
    LoopConfig,
    Reporter,
    Run,
    apply_lora,
    finetune_chat,
    load_conversations,
    make_optimizer,
    read_checkpoint,
    train,
)
from slm_train.finetune import collate_conversations, fit_to_window
from slm_train.lora import train_rows

# ------------------------------------------------------------------ reading files
OPENAI = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
    ]
}
SHAREGPT = {
    "system": "Be kind.",
    "conversations": [
        {"from": "human", "value": "Who are you?"},
        {"from": "gpt", "value": "A model."},
        {"from": "Human", "value": "Sure?"},
        {"from": "chatgpt", "value": ""},
    ],
}
ALPACA = {"instruction": "Add.", "input": "2 + 2", "output": "4"}


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_reads_openai_sharegpt_and_alpaca_records(tmp_path):
    expected = [
        OPENAI["messages"],
        [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Who are you?"},
            {"role": "assistant", "content": "A model."},
            {"role": "user", "content": "Sure?"},
            {"role": "assistant", "content": ""},
        ],
        [{"role": "user", "content": "Add.\n\n2 + 2"}, {"role": "assistant", "content": "4"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
    ]
    records = [OPENAI, SHAREGPT, ALPACA, {"instruction": "Hi", "input": "", "output": "Yo"}]
    lines = write_jsonl(tmp_path / "chats.jsonl", records)
    lines.write_text(lines.read_text().replace("\n", "\n\n", 1))  # a blank line is skipped
    assert load_conversations(lines) == expected
    listed = tmp_path / "chats.json"
    listed.write_text(json.dumps(records))
    assert load_conversations(listed) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a", "b"]', "each record must be a JSON object with 'messages' (OpenAI)"),
        (
            '{"text": "hi"}',
            "no messages: give 'messages' (OpenAI), 'conversations' (ShareGPT), or "
            "'instruction' and 'output' (Alpaca) (fields present: text)",
        ),
        ('{"messages": []}', "'messages' must be a list of turns, and it is empty"),
        ('{"messages": ["hi"]}', "turn 1 must be an object with 'role' and 'content'"),
        (
            '{"conversations": [{"from": "human", "value": "x"}, {"from": "robot", "value": "y"}]}',
            "turn 2 has the role 'robot'; use system, user or assistant (ShareGPT: system, "
            "human or gpt)",
        ),
        (
            '{"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}',
            "turn 1's content is a list, not text; give the words as one string",
        ),
        ('{"messages": [{"role": "user"}]}', "turn 1's content is missing, not text"),
        (
            '{"messages": [{"role": "user", "content": "x"}]}',
            "no assistant turn, so nothing to learn; add the reply or drop the line",
        ),
        ('{"instruction": "x", "output": " "}', "Alpaca records need text in 'output'"),
        ('{"instruction": "x", "input": 3, "output": "y"}', "Alpaca's 'input' must be text"),
    ],
)
def test_a_bad_line_is_named_with_what_is_wrong(tmp_path, line, message):
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps(OPENAI) + "\n" + line + "\n")
    with pytest.raises(CorpusError) as error:
        load_conversations(path)
    assert str(error.value).startswith(f"{path}:2: {message}")
    assert "\n" not in str(error.value)


def test_other_files_are_refused(tmp_path):
    (tmp_path / "chats.csv").write_text("role,content\n")
    with pytest.raises(CorpusError, match=r"give conversations as a \.jsonl file"):
        load_conversations(tmp_path / "chats.csv")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(CorpusError, match="holds no conversations"):
        load_conversations(tmp_path / "empty.jsonl")


# ------------------------------------------------------------------ batches and the window
@pytest.fixture(scope="module")
def chat_gpt2():
    from slm_tokenizer.chat import with_chat_tokens

    return with_chat_tokens(gpt2())


def test_collate_masks_everything_but_the_replies(chat_gpt2):
    batch = [([1, 2, 3, 4, 5], [0, 0, 1, 1, 0]), ([6, 7, 8], [0, 1, 1])]
    inputs, targets = collate_conversations(batch, pad_id=0)
    assert inputs.tolist() == [[1, 2, 3, 4], [6, 7, 0, 0]]
    assert targets.tolist() == [[-100, 3, 4, -100], [7, 8, -100, -100]]


def turn_lengths(tokenizer, conversation) -> list[int]:
    return [len(render_conversation(tokenizer, [m])[0]) for m in conversation]


def test_a_long_conversation_loses_whole_turns_from_its_end(chat_gpt2):
    system = {"role": "system", "content": "Be brief."}
    conversation = [
        system,
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Red."},
        {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "Blue, or green, or a yellow like the sun at noon."},
        {"role": "user", "content": "Thanks."},
    ]
    lengths = turn_lengths(chat_gpt2, conversation)
    whole = render_conversation(chat_gpt2, conversation)
    assert len(whole[0]) == sum(lengths)  # rendering turn by turn is rendering the whole

    fits = fit_to_window(chat_gpt2, [conversation], sum(lengths) - 1)
    assert (fits.encoded, fits.trimmed, fits.dropped) == ([whole], 0, 0)

    # One id short of the whole: the trailing user turn goes, then nothing else.
    short = fit_to_window(chat_gpt2, [conversation], sum(lengths) - 2)
    assert short.encoded == [render_conversation(chat_gpt2, conversation[:5])]
    assert (short.trimmed, short.dropped) == (1, 0)

    # Too short for the second reply: back to the first, never to a user turn.
    first = sum(lengths[:3])
    cut = fit_to_window(chat_gpt2, [conversation], sum(lengths[:5]) - 2)
    assert cut.encoded == [render_conversation(chat_gpt2, conversation[:3])]
    assert fit_to_window(chat_gpt2, [conversation], first - 1).encoded == cut.encoded

    # Not even the first reply fits: the conversation is dropped, and counted.
    dropped = fit_to_window(chat_gpt2, [conversation, conversation[:3]], first - 2)
    assert (dropped.encoded, dropped.trimmed, dropped.dropped) == ([], 0, 2)


# ------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A tiny pre-trained run (its trained BPE reserves the chat markers)."""
    folder = tmp_path_factory.mktemp("chat-base")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n<|endoftext|>\n".join(story(i) for i in range(60)))
    config = quick_config(folder, corpus, max_steps=10, model={"block_size": 96})
    return train(config).run_dir


def echo_conversations(count: int, seed: int = 0) -> list[dict]:
    """Two turns each: repeat three words, then say them backwards (OpenAI layout)."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(3)]
        records.append(
            {
                "messages": [
                    {"role": "system", "content": "Repeat."},
                    {"role": "user", "content": " ".join(words)},
                    {"role": "assistant", "content": " ".join(words)},
                    {"role": "user", "content": "Backwards."},
                    {"role": "assistant", "content": " ".join(reversed(words))},
                ]
            }
        )
    return records


def same_reply_conversations(count: int, seed: int = 0) -> list[dict]:
    """Questions of any length, always the same reply: every conversation has as many
    target tokens as every other, so the mean of micro-batch means is the batch's mean."""
    rng = random.Random(seed)
    return [
        {
            "messages": [
                {"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(1, 9)))},
                {"role": "assistant", "content": "The cat sat."},
            ]
        }
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("chat-data")
    return {
        "echo": write_jsonl(folder / "echo.jsonl", echo_conversations(60)),
        "same": write_jsonl(folder / "same.jsonl", same_reply_conversations(48)),
    }


def chat_config(data: Path, out: Path, **overrides) -> ChatConfig:
    values = dict(data=str(data), out_dir=str(out), epochs=2, batch_size=8, learning_rate=3e-3)
    values |= dict(precision="fp32", log_interval=1, max_new_tokens=8, warmup_steps=2)
    return ChatConfig(**values | overrides)


class Recorder(Reporter):
    def __init__(self) -> None:
        self.started, self.samples = {}, []

    def start(self, info) -> None:
        self.started = info

    def evaluation(self, record, sample) -> None:
        self.samples.append(sample)


def step_losses(run_dir: Path) -> dict[int, float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if r["type"] == "step"}


def weights(run_dir: Path, which: str = "last") -> dict[str, torch.Tensor]:
    return read_checkpoint(run_dir / which).build_model().state_dict()


def test_chat_tuning_learns_the_replies_and_writes_a_chat_run(tmp_path, base_run, data_files):
    reporter = Recorder()
    config = chat_config(data_files["echo"], tmp_path / "chat", base_run=str(base_run))
    result = finetune_chat(config.replace(epochs=3, max_length=60), reporter=reporter)
    losses = [r["val_loss"] for r in result.history if r["type"] == "eval"]
    assert len(losses) == 3 and losses[-1] < losses[0] * 0.9, losses  # measured: 0.85
    assert result.test_loss is not None and result.test_loss < losses[0]
    assert len(reporter.samples) == 3 and all(isinstance(s, str) for s in reporter.samples)
    assert [set(s) for s in result.samples] == [{"question", "expected", "reply"}] * 5

    run = Run(result.run_dir)
    assert run.config["kind"] == "chat" and run.config["prompt_format"] == "chatml"
    tokenizer = run.tokenizer()
    assert {IM_START, IM_END} <= set(tokenizer.special_tokens)
    assert run.model_config == Run(base_run).model_config  # the base had the markers
    # 60 positions hold the first reply but not the second: every conversation was cut.
    data = run.config["data"]
    assert (data["trimmed"], data["dropped"], data["markers_added"]) == (60, 0, 0)
    assert (result.trimmed, result.dropped) == (60, 0)
    assert reporter.started["longer than the context"] == (
        "60 cut by whole turns, 0 dropped (window: 60 tokens)"
    )
    tests = [r for r in run.metrics() if r["type"] == "test"]
    assert tests == [{"type": "test", "test_loss": result.test_loss}]


def test_ctrl_c_then_resume_repeats_the_uninterrupted_losses(tmp_path, base_run, data_files):
    straight = tmp_path / "straight"
    finetune_chat(chat_config(data_files["echo"], straight, base_run=str(base_run)))
    config = chat_config(data_files["echo"], tmp_path / "stopped", base_run=str(base_run))
    stopped = finetune_chat(config, reporter=StopAt(3))
    assert stopped.interrupted
    assert read_checkpoint(tmp_path / "stopped" / "last").state["step"] == 3
    finetune_chat(config, resume=True)

    expected, got = step_losses(straight), step_losses(tmp_path / "stopped")
    assert sorted(got) == sorted(expected) == list(range(1, 13))  # 2 epochs of 6 steps
    assert got == expected
    a, b = weights(straight), weights(tmp_path / "stopped")
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_gradient_accumulation_equals_the_larger_batch(tmp_path, base_run, data_files):
    common = dict(base_run=str(base_run), test_fraction=0.0)
    finetune_chat(chat_config(data_files["same"], tmp_path / "whole", **common))
    halves = chat_config(data_files["same"], tmp_path / "halves", **common)
    finetune_chat(halves.replace(batch_size=4, grad_accum_steps=2))
    whole, split = step_losses(tmp_path / "whole"), step_losses(tmp_path / "halves")
    assert sorted(whole) == sorted(split) == list(range(1, 13))  # 2 epochs of 6 steps
    for step, loss in whole.items():
        assert split[step] == pytest.approx(loss, rel=1e-4, abs=1e-5), step
    # (Not the weights: the key bias has a gradient of exactly zero but for rounding, which
    # differs between the two, and Adam scales any gradient to a step of about the lr.)


@pytest.fixture(scope="module")
def gpt2_weights(tmp_path_factory) -> Path:
    """A tiny GPT-2 in transformers' layout: GPT-2's tokenizer, no chat markers."""
    folder = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    config = get_gpt_config("gpt2", n_layer=2, n_head=2, n_embd=32, block_size=64)
    save_file(GPTModel(config).to_gpt2_state_dict(), folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"n_head": 2}))
    return folder / "model.safetensors"


def test_lora_on_gpt2_grows_the_vocabulary_and_trains_the_markers_rows(
    tmp_path, gpt2_weights, data_files
):
    config = chat_config(
        data_files["echo"], tmp_path / "lora", gpt2_weights=str(gpt2_weights), lora_rank=2
    )
    reporter = Recorder()
    finetune_chat(config.replace(max_steps=3), reporter=reporter)
    run = Run(tmp_path / "lora")
    assert run.tokenizer().special_tokens == {
        "<|endoftext|>": 50256,
        IM_START: 50257,
        IM_END: 50258,
    }
    assert run.model_config.vocab_size == 50259 and run.config["data"]["markers_added"] == 2
    # Rank-2 adapters on each block's four linear layers (in x out: 32x96, 32x32, 32x128,
    # 128x32), and the two markers' rows of the tied embedding (width 32).
    adapters = 2 * sum(2 * (i + o) for i, o in ((32, 96), (32, 32), (32, 128), (128, 32)))
    assert reporter.started["trainable"].startswith(f"{adapters + 2 * 32:,} of ")

    base = GPTModel.from_gpt2_state_dict(load_file(gpt2_weights), n_head=2).state_dict()
    trained = load_file(run.path / "last" / "model.safetensors")  # adapters apart: X.base.weight
    embedding = trained.pop("tok_emb.weight", None)
    embedding = trained.pop("lm_head.weight") if embedding is None else embedding  # tied: one
    assert torch.equal(embedding[:50257], base["tok_emb.weight"])  # every old row as it was
    mean = base["tok_emb.weight"].mean(dim=0)
    for row in (50257, 50258):  # each marker row has moved away from the mean it started at
        assert (embedding[row] - mean).abs().max() > 1e-3
    adapters = {name: trained.pop(name) for name in list(trained) if "lora" in name}
    assert adapters and any(t.abs().max() > 0 for n, t in adapters.items() if "lora_b" in n)
    assert trained  # the rest of the base (norms, positions, the blocks' weights) is unchanged
    for name, tensor in trained.items():
        assert torch.equal(tensor, base[name.replace(".base.", ".")]), name


def test_two_processes_equal_one_process_with_accumulation(tmp_path, base_run, data_files):
    common = dict(base_run=str(base_run), batch_size=4, epochs=1)
    single = chat_config(data_files["echo"], tmp_path / "one", grad_accum_steps=2, **common)
    finetune_chat(single)
    finetune_chat(chat_config(data_files["echo"], tmp_path / "two", devices=2, **common))
    one, two = step_losses(tmp_path / "one"), step_losses(tmp_path / "two")
    assert sorted(one) == sorted(two) == list(range(1, 7))  # rank 0 alone logged
    for step, loss in one.items():
        assert two[step] == pytest.approx(loss, rel=1e-4, abs=1e-5), step
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=2e-5, rtol=1e-4, msg=name)
    assert Run(tmp_path / "two").config["train"]["devices"] == 2


def test_rows_that_train_alone_leave_every_other_row_exactly_as_it_was():
    """An untied head is a decayed matrix; its frozen rows must not shrink either."""
    torch.manual_seed(0)
    model = GPTModel(get_gpt_config("tiny", vocab_size=40, block_size=8, tie_weights=False))
    apply_lora(model, 2)
    for weight in (model.tok_emb.weight, model.lm_head.weight):
        train_rows(weight, [38, 39])
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora" not in n}
    config = LoopConfig(max_steps=3, weight_decay=0.1, learning_rate=1e-2)
    optimizer = make_optimizer(model, config, torch.device("cpu"))
    for step in range(3):
        ids = torch.randint(40, (4, 8), generator=torch.Generator().manual_seed(step))
        model(ids[:, :-1], ids[:, 1:])[1].backward()
        optimizer.step()
        optimizer.zero_grad()
    for name, parameter in model.named_parameters():
        if name in ("tok_emb.weight", "lm_head.weight"):
            assert torch.equal(parameter[:38], before[name][:38]), name
            assert not torch.equal(parameter[38:], before[name][38:]), name
        elif name in before:
            assert torch.equal(parameter, before[name]), name


def test_without_data_it_trains_on_the_builtin_mixture(tmp_path, base_run):
    config = ChatConfig(base_run=str(base_run), out_dir=str(tmp_path / "b"), max_steps=1)
    result = finetune_chat(config.replace(precision="fp32", max_new_tokens=4))
    data = Run(result.run_dir).config["data"]
    assert data["source"] == "builtin" and data["train"] > 1000 and data["test"] > 100
    assert data["trimmed"] + data["dropped"] > 0  # chatterbot's longest exceed 96 tokens
    assert result.test_loss is not None and len(result.samples) == 5


def test_builtin_data_needs_a_base_run(gpt2_weights):
    with pytest.raises(ConfigError, match="the built-in conversations describe the base run"):
        finetune_chat(ChatConfig(gpt2_weights=str(gpt2_weights)))
