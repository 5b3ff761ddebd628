"""The GGUF export loaded by llama.cpp itself (skipped unless llama-cpp-python is installed).

llama-cpp-python builds llama.cpp from source (minutes), so CI does without it;
bench/gguf_check.py is the longer version of this check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import quick_config, story
from slm_model import generate
from slm_train import Run, export_gguf, train

llama_cpp = pytest.importorskip("llama_cpp")


@pytest.mark.parametrize("preset", ["tiny", "llama-tiny"])
def test_llama_cpp_greedy_continuation_equals_slms(tmp_path, preset):
    torch.set_num_threads(1)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n<|endoftext|>\n".join(story(i) for i in range(40)) + "\n")
    config = quick_config(tmp_path, corpus, preset=preset, max_steps=10, warmup_steps=1)
    run = Run(train(config).run_dir)
    prompt = run.tokenizer().encode("The cat sat on")
    with torch.no_grad():
        ours = generate(run.load_model(), prompt, 12, temperature=0)[0, len(prompt) :].tolist()

    path = export_gguf(run, tmp_path / "m.gguf")
    llm = llama_cpp.Llama(str(path), n_ctx=32, logits_all=True, verbose=False)
    llm.eval(prompt)
    theirs = []
    for _ in range(12):
        theirs.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([theirs[-1]])
    assert theirs == ours


def test_llama_cpp_chat_completion_replies_as_slm_and_stops_at_im_end(tmp_path):
    """The file's chat template and end-of-turn, as llama.cpp's chat completion uses them:
    a scripted chat run (tests/chat_runs.py) answers, then <|im_end|> ends the reply."""
    from chat_runs import scripted_chat_run

    reply = "The dog ran to the park."
    run = scripted_chat_run(tmp_path / "chat", reply, block_size=128)
    llm = llama_cpp.Llama(str(export_gguf(run, tmp_path / "chat.gguf")), n_ctx=128, verbose=False)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who are you?"},
    ]
    response = llm.create_chat_completion(
        messages, temperature=0.0, top_k=1, repeat_penalty=1.0, max_tokens=30
    )
    choice = response["choices"][0]
    assert choice["message"]["content"] == reply and choice["finish_reason"] == "stop"


def test_llama_cpp_reads_q4_0_with_logits_near_slms(tmp_path):
    """llama.cpp runs the q4_0 file: its next-token logits stay near slm's unrounded ones.

    q4_0 moves each weight by up to a step of max|w| / 8 of its block; over a
    10-step model that moved these logits by about 2 % of their spread
    (measured); 10 % is allowed, and the logits must still rank alike.
    """
    torch.set_num_threads(1)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n<|endoftext|>\n".join(story(i) for i in range(40)) + "\n")
    config = quick_config(tmp_path, corpus, preset="llama-tiny", max_steps=10, warmup_steps=1)
    run = Run(train(config).run_dir)
    prompt = run.tokenizer().encode("The cat sat on")
    with torch.no_grad():
        ours = run.load_model()(torch.tensor([prompt]))[0, -1].numpy()
    llm = llama_cpp.Llama(
        str(export_gguf(run, tmp_path / "q4.gguf", dtype="q4_0")),
        n_ctx=32, logits_all=True, verbose=False,
    )  # fmt: skip
    llm.eval(prompt)
    theirs = np.asarray(llm.scores[llm.n_tokens - 1])
    spread = ours.max() - ours.min()
    assert np.abs(theirs - ours).max() < 0.1 * spread
    assert np.corrcoef(theirs, ours)[0, 1] > 0.99
