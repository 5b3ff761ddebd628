"""slm runs measured by EleutherAI's lm-evaluation-harness.

    lm.py        the `slm` model type: an lm_eval LM over a run's model and generator
    evaluate.py  evaluate_tasks: lm-eval's simple_evaluate on a run, scores in slm's shape
    harness.py   python -m slm_eval.harness: lm-eval's own CLI with the model registered

A package of its own so that lm-eval's many dependencies stay out of the
training packages; slm-cli imports it only for `eval --tasks`.
"""

from .evaluate import HarnessResult, UnknownTaskError, evaluate_tasks
from .lm import ChatRunNeeded, SlmLM

__all__ = ["ChatRunNeeded", "HarnessResult", "SlmLM", "UnknownTaskError", "evaluate_tasks"]
