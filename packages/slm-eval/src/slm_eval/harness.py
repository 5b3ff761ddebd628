"""lm-eval's own command line, with slm's model registered: for people who script lm-eval.

    python -m slm_eval.harness --model slm --model_args run=runs/x --tasks hellaswag
    python -m slm_eval.harness ls tasks

lm-eval's CLI has no plugin entry point for outside models, so this module
imports lm.py (whose `@register_model("slm")` adds the model type) and then
hands every argument, unchanged, to lm-eval's `cli_evaluate`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run lm-eval's CLI on `argv` (default: this process's arguments)."""
    from lm_eval.__main__ import cli_evaluate

    from . import lm  # noqa: F401  (registers the `slm` model type)

    saved = sys.argv
    if argv is not None:  # lm-eval's parser reads sys.argv itself
        sys.argv = [saved[0], *argv]
    try:
        cli_evaluate()
    finally:
        sys.argv = saved


if __name__ == "__main__":
    main()
