"""slm runs measured by lm-evaluation-harness: see lm.py (the model) and harness.py."""
