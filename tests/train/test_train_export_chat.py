"""A chat run exported and imported (issue 20): transformers and gguf read what we write.

The run's model is scripted (tests/chat_runs.py): its greedy reply to any
conversation is "The dog ran to the park." and then <|im_end|>, so whether a
reader stops where slm stops is visible in a few tokens.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from chat_runs import make_chat_run, scripted_chat_run
from slm_model import generate
from slm_tokenizer import END_OF_TEXT
from slm_tokenizer.chat import CHAT_TEMPLATE, IM_END, render_conversation
from slm_train import export_gguf, export_hf, import_hf
from slm_train.compare import sample_run

transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

REPLY = "The dog ran to the park."
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Who are you?"},
    {"role": "assistant", "content": "I am slm.\nA model."},
    {"role": "user", "content": "The cat sat.\n\n  ok"},
]


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory):
    torch.set_num_threads(1)
    return scripted_chat_run(tmp_path_factory.mktemp("chat") / "run", REPLY, block_size=128)


@pytest.fixture(scope="module")
def folder(chat_run, tmp_path_factory):
    return export_hf(chat_run, tmp_path_factory.mktemp("hf") / "chat")


def ids_of(rendered) -> list[int]:
    """apply_chat_template's ids (transformers 5 returns a BatchEncoding by default)."""
    return list(rendered["input_ids"] if hasattr(rendered, "keys") else rendered)


def test_the_hf_folder_has_the_template_and_stops_at_im_end(chat_run, folder):
    tok = chat_run.tokenizer()
    im_end = tok.special_tokens[IM_END]
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["chat_template"] == CHAT_TEMPLATE and config["eos_token"] == IM_END
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [im_end, tok.eot_id]

    theirs = transformers.AutoTokenizer.from_pretrained(folder)
    for messages in (MESSAGES[:2], MESSAGES[1:], MESSAGES):
        rendered = theirs.apply_chat_template(messages, add_generation_prompt=True)
        ours, _ = render_conversation(tok, messages, add_generation_prompt=True)
        assert ids_of(rendered) == ours
    assert theirs.eos_token_id == im_end


def test_transformers_greedy_reply_is_slms_and_stops_at_im_end(chat_run, folder):
    tok = chat_run.tokenizer()
    prompt, _ = render_conversation(tok, MESSAGES[:3], add_generation_prompt=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=30, do_sample=False)
        ours = generate(chat_run.load_model(), prompt, 30, temperature=0)
    theirs = out[0, len(prompt) :].tolist()
    reply = ours[0, len(prompt) :].tolist()
    end = reply.index(tok.special_tokens[IM_END])
    assert theirs == reply[: end + 1]  # stopped at <|im_end|>, by generation_config alone
    assert tok.decode(theirs[:-1]) == REPLY
    assert sample_run(chat_run, "Who are you?", temperature=0, max_new_tokens=30) == REPLY


def test_gguf_carries_the_template_and_the_end_of_turn(chat_run, tmp_path):
    tok = chat_run.tokenizer()
    fields = gguf.GGUFReader(export_gguf(chat_run, tmp_path / "chat.gguf")).fields
    assert _string(fields["tokenizer.chat_template"]) == CHAT_TEMPLATE
    assert _int(fields["tokenizer.ggml.eot_token_id"]) == tok.special_tokens[IM_END]
    assert _int(fields["tokenizer.ggml.eos_token_id"]) == tok.special_tokens[IM_END]
    assert _int(fields["tokenizer.ggml.bos_token_id"]) == tok.eot_id

    plain = make_chat_run(tmp_path / "plain", chat_run.load_model(), extra={})
    fields = gguf.GGUFReader(export_gguf(plain, tmp_path / "plain.gguf")).fields
    assert "tokenizer.chat_template" not in fields and "tokenizer.ggml.eot_token_id" not in fields
    assert _int(fields["tokenizer.ggml.eos_token_id"]) == tok.special_tokens[END_OF_TEXT]


def test_import_keeps_a_chat_template_and_exports_it_again(folder, tmp_path):
    run = import_hf(folder, tmp_path / "imported")
    assert (run.config["kind"], run.config["prompt_format"]) == ("chat", "chatml")
    assert run.config["chat_template"] == CHAT_TEMPLATE
    again = export_hf(run, tmp_path / "again")
    assert json.loads((again / "tokenizer_config.json").read_text())["chat_template"] == (
        CHAT_TEMPLATE
    )

    # A template of another format, as transformers 5 saves it (chat_template.jinja):
    # kept and exported again, and the run chats through it (chat_template.py).
    other = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
    saved = tmp_path / "other"
    shutil.copytree(folder, saved)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = other
    tokenizer.save_pretrained(saved)
    run = import_hf(saved, tmp_path / "imported-other")
    assert (run.config["kind"], run.config["prompt_format"]) == ("chat", "template")
    assert run.config["chat_template"] == other
    exported = transformers.AutoTokenizer.from_pretrained(export_hf(run, tmp_path / "out"))
    assert exported.chat_template == other


def _string(field) -> str:
    return bytes(field.parts[field.data[0]]).decode()


def _int(field) -> int:
    return int(field.parts[field.data[0]][0])
