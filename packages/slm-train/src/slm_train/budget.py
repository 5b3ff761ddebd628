"""The training budget: steps, tokens and wall-clock time, whichever runs out first.

A time budget is a promise to the person who set it, so it covers everything
the run does: preparing the data, training, evaluating and sampling. The
loop stops early enough for the final evaluation to fit: it reserves as much
time as the last evaluation (and the last step) took, and before the first
evaluation an estimate from the step time (`eval_steps`: what an evaluation
costs, in training steps). When the evaluations before the last are cheaper
(`final_eval_cost` times cheaper: pre-training's, on fewer batches), the
reserve is the last one's time scaled up by that factor. The learning-rate
schedule follows the same fraction, so the cosine ends where training ends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from .config import LoopConfig
from .task import TrainState


class Budget:
    def __init__(
        self,
        config: LoopConfig,
        spent_before: float = 0.0,
        preparation: float = 0.0,
        eval_steps: float = 1.0,
        final_eval_cost: float = 1.0,
    ) -> None:
        self.config, self.eval_steps, self.final_eval_cost = config, eval_steps, final_eval_cost
        self.started = time.perf_counter() - spent_before - preparation
        self.seconds = {"preparation": preparation, "training": 0.0, "evaluation": 0.0}
        self.last_step = self.last_evaluation = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def spent(self, state: TrainState) -> float:
        """The fraction spent (0..1): the largest of steps, tokens and time."""
        c, fractions = self.config, [0.0]
        if c.max_steps:
            fractions.append(state.step / c.max_steps)
        if c.max_tokens:
            fractions.append(state.tokens / c.max_tokens)
        if c.max_time:
            evaluation = self.last_evaluation * self.final_eval_cost
            evaluation = evaluation or self.last_step * self.eval_steps
            usable = c.max_time - evaluation - self.last_step
            fractions.append(self.elapsed() / max(usable, 1e-9))
        return min(1.0, max(fractions))

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a step ("training") or an evaluation, for the reserve and the final account."""
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.seconds[name] += seconds
            if name == "training":
                self.last_step = seconds
            else:
                self.last_evaluation = seconds
