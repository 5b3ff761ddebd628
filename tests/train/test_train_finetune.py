"""Fine-tuning: classification and instruction following on synthetic tasks the tests generate."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import torch
from helpers import WORDS, StopAt, quick_config, story
from slm_model import GPTModel, get_gpt_config
from slm_tokenizer import gpt2
from slm_train import (
    ClassifyConfig,
    CorpusError,
    GPTClassifier,
    InstructConfig,
    LoRALinear,
    Run,
    RunError,
    apply_lora,
    classify,
    finetune_classifier,
    finetune_instructions,
    format_instruction,
    load_classifier,
    merge_lora,
    train,
)
from slm_train.finetune import collate_instructions, encode_texts, set_trainable, token_f1

SPORT = ["ball", "goal", "match"]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A tiny pre-trained run to fine-tune."""
    folder = tmp_path_factory.mktemp("base")
    corpus = folder / "corpus.txt"
    corpus.write_text(
        "\n<|endoftext|>\n".join(story(i) + " The ball and the goal." for i in range(60))
    )
    config = quick_config(folder, corpus, max_steps=20, model={"block_size": 256})
    return train(config).run_dir


def sport_or_nature(count: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        words = [rng.choice(WORDS) for _ in range(6)]
        if i % 2:
            words.insert(rng.randrange(7), rng.choice(SPORT))
        rows.append((" ".join(words), "sport" if i % 2 else "nature"))
    return rows


def write_csv(path: Path, rows) -> Path:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def test_classifier_learns_a_keyword_rule(tmp_path, base_run):
    data = write_csv(tmp_path / "sport.csv", sport_or_nature(300))
    config = ClassifyConfig(
        data=str(data),
        base_run=str(base_run),
        out_dir=str(tmp_path / "clf"),
        train="all",
        epochs=4,
        batch_size=16,
        learning_rate=1e-3,
    )
    result = finetune_classifier(config)
    assert result.labels == ["nature", "sport"]
    assert result.test_accuracy > 0.8, result.history  # chance is 0.5
    assert (
        sum(map(sum, result.confusion)) == 60 and len(result.precision) == len(result.recall) == 2
    )
    assert result.history[-1]["val_accuracy"] > 0.8
    records = [
        json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    # After the engine's step records: one evaluation per epoch, then the test scores.
    assert [r["type"] for r in records if r["type"] != "step"] == ["eval"] * 4 + ["test"]
    assert [r["epoch"] for r in records if r["type"] == "eval"] == [1, 2, 3, 4]
    assert (result.run_dir / "accuracy.png").read_bytes().startswith(b"\x89PNG")
    sport, nature = classify(result.run_dir, ["the dog ran to the goal", "the cat sat on a mat"])
    assert sport["sport"] > 0.5 > nature["sport"]
    assert abs(sum(sport.values()) - 1) < 1e-5
    with pytest.raises(Exception, match="is a classifier, not a text generator"):
        Run(result.run_dir).load_model()


def test_the_defaults_learn_a_keyword_task_in_their_epochs(tmp_path, base_run):
    # Issue 19: the book's settings for GPT-2 124M (lr 1e-4 decaying to a tenth, the
    # class read at the text's last token) left a tiny base at 55-68 % here (seeds 1-5);
    # the defaults reach 95-100 % (seeds 1-5). Chance is 50 %, the test set 60 texts.
    data = write_csv(tmp_path / "sport.csv", sport_or_nature(300))
    config = ClassifyConfig(data=str(data), base_run=str(base_run), out_dir=str(tmp_path / "c"))
    assert finetune_classifier(config).test_accuracy >= 0.85


def test_eot_reading_appends_end_of_text_within_max_length():
    tokenizer = gpt2()
    texts = ["the cat", "a dog ran to the park"]
    encoded, cut = encode_texts(tokenizer, texts, 4, "eot")  # cut to 3 tokens, then the end
    assert encoded == [[1169, 3797, 50256], [64, 3290, 4966, 50256]] and cut == 1
    assert encode_texts(tokenizer, texts, 4, "last") == ([[1169, 3797], [64, 3290, 4966, 284]], 1)


def test_resuming_with_another_reading_position_is_refused(tmp_path, base_run):
    data = write_csv(tmp_path / "sport.csv", sport_or_nature(40))
    config = ClassifyConfig(data=str(data), base_run=str(base_run), out_dir=str(tmp_path / "c"))
    assert finetune_classifier(config.replace(read_at="last"), reporter=StopAt(1)).interrupted
    with pytest.raises(RunError, match="reads its class with read_at='last'; resume with that"):
        finetune_classifier(config, resume=True)  # read_at="eot" would read the wrong place


@pytest.mark.parametrize("mode", ["last-block", "head"])
def test_frozen_parameters_do_not_change(tmp_path, base_run, mode):
    data = write_csv(tmp_path / "sport.csv", sport_or_nature(60))
    before = Run(base_run).load_model().state_dict()
    config = ClassifyConfig(
        data=str(data),
        base_run=str(base_run),
        out_dir=str(tmp_path / mode),
        train=mode,
        epochs=1,
        learning_rate=1e-2,
    )
    result = finetune_classifier(config)
    after = load_classifier(result.run_dir, "last")[0].gpt.state_dict()
    for name in (
        "blocks.0.attn.qkv.weight",
        "blocks.0.mlp.fc.bias",
        "tok_emb.weight",
        "pos_emb.weight",
    ):
        assert torch.equal(after[name], before[name]), name
    last_block_changed = not torch.equal(
        after["blocks.1.mlp.fc.weight"], before["blocks.1.mlp.fc.weight"]
    )
    assert last_block_changed == (mode == "last-block")


def test_lora_starts_at_the_base_model_and_merges_exactly():
    torch.manual_seed(0)
    model = GPTModel(get_gpt_config("tiny"))
    idx = torch.randint(0, 512, (2, 12))
    reference = model(idx).detach()
    wrapped = apply_lora(model, rank=4, alpha=8)
    assert wrapped == 4 * 2  # four linear layers in each of two blocks
    torch.testing.assert_close(model(idx), reference)  # B = 0: nothing changed yet
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    base_weight = model.blocks[0].attn.qkv.base.weight.clone()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(idx, idx)[1].backward()
    optimizer.step()
    assert torch.equal(model.blocks[0].attn.qkv.base.weight, base_weight)  # frozen
    tuned = model(idx).detach()
    assert not torch.allclose(tuned, reference)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(model(idx), tuned, atol=1e-5, rtol=1e-5)


def test_lora_classifier_trains_only_adapters_and_head():
    classifier = GPTClassifier(GPTModel(get_gpt_config("tiny")), 3)
    set_trainable(classifier, "last-block", lora_rank=2)
    names = [n for n, p in classifier.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("head.") for n in names)


def test_collate_matches_the_books_example():
    # The book's custom_collate_fn on inputs [0..4], [5, 6], [7, 8, 9] with pad 50256 prints these.
    pad = 50256
    batch = [([0, 1, 2, 3, 4, pad], 0), ([5, 6, pad], 0), ([7, 8, 9, pad], 0)]
    inputs, targets = collate_instructions(batch, pad)
    assert inputs.tolist() == [[0, 1, 2, 3, 4], [5, 6, pad, pad, pad], [7, 8, 9, pad, pad]]
    assert targets.tolist() == [
        [1, 2, 3, 4, pad],
        [6, pad, -100, -100, -100],
        [8, 9, pad, -100, -100],
    ]


def test_collate_masks_the_prompt_and_truncates():
    pad = 99
    batch = [([1, 2, 3, 4, pad], 3), ([5, 6, pad], 1)]
    inputs, targets = collate_instructions(batch, pad, mask_prompt=True)
    # Row 0: the prompt is [1, 2, 3]; targets 2 and 3 lie inside it and are masked.
    assert targets.tolist() == [[-100, -100, 4, pad], [6, pad, -100, -100]]
    assert inputs.tolist() == [[1, 2, 3, 4], [5, 6, pad, pad]]
    inputs, targets = collate_instructions(batch, pad, max_length=2)
    assert inputs.tolist() == [[1, 2], [5, 6]] and targets.tolist() == [[2, 3], [6, pad]]


def test_alpaca_prompt_is_the_books():
    assert format_instruction("Convert 45 kilometers to meters.") == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\nConvert 45 kilometers to meters."
        "\n\n### Response:\n"
    )
    assert "### Input:\nhappy\n\n### Response:\n" in format_instruction("Antonym?", "happy")


def reversal_records(count: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(3)]
        records.append(
            {
                "instruction": "Reverse the words.",
                "input": " ".join(words),
                "output": " ".join(reversed(words)),
            }
        )
    return records


def test_instruction_tuning_lowers_validation_loss_and_writes_responses(tmp_path, base_run):
    data = tmp_path / "reverse.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in reversal_records(240)))
    config = InstructConfig(
        data=str(data),
        base_run=str(base_run),
        out_dir=str(tmp_path / "inst"),
        epochs=3,
        batch_size=16,
        learning_rate=2e-3,
        max_new_tokens=12,
        mask_prompt=True,
    )
    result = finetune_instructions(config)
    losses = [r["val_loss"] for r in result.history if r["type"] == "eval"]
    assert losses[-1] < losses[0] * 0.8, losses
    responses = [json.loads(line) for line in result.responses_file.read_text().splitlines()]
    assert len(responses) == 24
    assert set(responses[0]) == {"instruction", "input", "output", "expected", "response"}
    assert all("###" not in r["response"] for r in responses)  # it answers, then stops
    assert 0 <= result.exact_match <= 1 and 0 <= result.token_f1 <= 1
    run = Run(result.run_dir)
    assert run.config["prompt_format"] == "alpaca"
    run.load_model()  # an ordinary generator run: generate and chat work on it


def test_token_f1():
    assert token_f1("the cat sat", "the cat sat") == 1.0
    assert token_f1("cat", "the cat sat") == pytest.approx(0.5)
    assert token_f1("dog", "the cat") == 0.0


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("text,kind\nhello,a\n", "no 'label' field"),
        ("text,label\nhello,a\nworld,a\n", "only one class"),
        ("text,label\n,a\nworld,b\n", "'text' is empty"),
    ],
)
def test_bad_classification_data(tmp_path, base_run, rows, message):
    path = tmp_path / "bad.csv"
    path.write_text(rows)
    with pytest.raises(CorpusError, match=message):
        finetune_classifier(
            ClassifyConfig(
                data=str(path),
                base_run=str(base_run),
                out_dir=str(tmp_path / "r"),
                val_fraction=0,
                test_fraction=0,
            )
        )


def test_labels_unknown_to_training_are_refused(tmp_path, base_run):
    train_file = write_csv(tmp_path / "train.csv", sport_or_nature(20))
    other = write_csv(tmp_path / "other.csv", [("a cat", "nature"), ("a car", "vehicle")])
    config = ClassifyConfig(
        data=str(train_file),
        val_data=str(other),
        test_data=str(other),
        base_run=str(base_run),
        out_dir=str(tmp_path / "r"),
    )
    with pytest.raises(CorpusError, match="labels the training data lacks: vehicle"):
        finetune_classifier(config)


def test_bad_instruction_data(tmp_path, base_run):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"instruction": "Say hi", "output": ""}]))
    with pytest.raises(CorpusError, match="'output' is empty"):
        finetune_instructions(InstructConfig(data=str(path), base_run=str(base_run)))
    path.write_text(json.dumps([{"prompt": "Say hi", "output": "hi"}]))
    with pytest.raises(CorpusError, match="no 'instruction' field"):
        finetune_instructions(InstructConfig(data=str(path), base_run=str(base_run)))
