"""Three lm-eval tasks on local JSONL files, one per kind of request an LM answers.

- `slm_choice`: multiple choice (loglikelihood), one context longer than the tiny
  model's 64-token window, so left truncation is exercised;
- `slm_rolling`: perplexity (loglikelihood_rolling) of documents several windows long;
- `slm_generate`: generate_until a full stop, scored by exact match.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import story

CHOICE = """\
task: slm_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/choice.jsonl
  cache_dir: {cache}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
  - metric: acc_norm
"""
ROLLING = """\
task: slm_rolling
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/rolling.jsonl
  cache_dir: {cache}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
"""
GENERATE = """\
task: slm_generate
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/generate.jsonl
  cache_dir: {cache}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["."]
  max_gen_toks: 12
  do_sample: false
metric_list:
  - metric: exact_match
"""
TASKS = ("slm_choice", "slm_rolling", "slm_generate")


def write_tasks(folder: Path, cache: Path) -> Path:
    """The three task YAMLs and their data in `folder`; datasets' cache in `cache`."""
    folder.mkdir(parents=True, exist_ok=True)
    animals = ["cat", "dog", "bird", "tree"]
    choice = [
        {"question": story(seed, 1) + " The", "choices": animals, "answer": seed % 4}
        for seed in range(6)
    ]
    choice[0]["question"] = story(99, 12) + " The"  # longer than the 64-token window
    rolling = [{"text": story(seed, 10)} for seed in range(10, 13)]
    generate = [{"prompt": story(seed, 1) + " The cat", "answer": " sat"} for seed in range(4)]
    for name, rows in (("choice", choice), ("rolling", rolling), ("generate", generate)):
        lines = "".join(json.dumps(row) + "\n" for row in rows)
        (folder / f"{name}.jsonl").write_text(lines, encoding="utf-8")
    for name, text in (("choice", CHOICE), ("rolling", ROLLING), ("generate", GENERATE)):
        yaml = text.format(data=folder, cache=cache)
        (folder / f"{name}.yaml").write_text(yaml, encoding="utf-8")
    return folder
