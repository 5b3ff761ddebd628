"""Interoperability: a run out to Hugging Face or GGUF (llama.cpp, Ollama), and a
Hugging Face folder in as a run.

- `hf.py`: `export_hf`, a folder that `transformers` loads without slm
- `hf_tokenizer.py`: slm's BPE as a `tokenizers` tokenizer.json, and back
- `gguf.py`: `export_gguf`, one file for llama.cpp, Ollama and LM Studio
- `import_hf.py`: `import_hf`, a transformers GPT-2 or Llama folder as an slm run
"""

from .gguf import export_gguf
from .hf import export_hf
from .hf_tokenizer import to_hf_tokenizer, tokenizer_from_hf
from .import_hf import import_hf

__all__ = ["export_gguf", "export_hf", "import_hf", "to_hf_tokenizer", "tokenizer_from_hf"]
