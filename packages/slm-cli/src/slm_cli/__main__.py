"""`python -m slm_cli` (and `torchrun ... -m slm_cli train`)."""

from .main import run

run()
