"""Interoperability: a run out to Hugging Face or GGUF (llama.cpp, Ollama), and a
Hugging Face folder in as a run.

- `hf.py`: `export_hf`, a folder that `transformers` loads without slm
- `gguf.py`: `export_gguf`, one file for llama.cpp, Ollama and LM Studio
- `import_hf.py`: `import_hf`, a transformers GPT-2, Llama or Qwen3 folder as an slm run
"""

# The tokenizer.json format itself belongs to slm-tokenizer; this name stays for old callers.
from slm_tokenizer.hf_format import to_hf_tokenizer

from .gguf import export_gguf
from .hf import export_hf
from .import_hf import import_hf, tokenizer_from_hf

__all__ = ["export_gguf", "export_hf", "import_hf", "to_hf_tokenizer", "tokenizer_from_hf"]
