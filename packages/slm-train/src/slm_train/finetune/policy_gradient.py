"""RL's advantage and loss on one screen: nanochat's simplified GRPO.

For each prompt the policy samples k answers and a program checks each one:
reward r = 1 if right, 0 if wrong. The advantage of an answer is how much
better it did than its siblings:

    A_i = r_i - mean(r_1 .. r_k)            (per prompt; no division by the std)

and the loss pushes up the log-probability of answers that beat their
siblings and down those that did worse:

    loss = -mean over answers of A_i * log pi(answer_i | prompt)

where log pi(answer | prompt) is the sum over the answer's tokens only (the
prompt and the padding are not the policy's choice, so they do not count).

Why so plain (nanochat's choices, which the GRPO paper's extras do not pay for
at this size): the mean of the siblings' rewards is the baseline, so no critic
is trained; the samples are drawn from the current weights and used for one
step, so no importance ratio or clipping is needed; and there is no KL penalty
to a reference model, because the reward is a correctness check that cannot be
gamed by drifting, and one model in memory is cheaper than two. A prompt whose
answers are all right or all wrong has zero advantage everywhere: it teaches
nothing, as it should.
"""

from __future__ import annotations

import torch


def advantages(rewards: torch.Tensor) -> torch.Tensor:
    """(prompts, k) rewards -> (prompts, k) advantages: each minus its prompt's mean."""
    return rewards - rewards.mean(dim=1, keepdim=True)


def policy_gradient_loss(answer_logps: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """-mean(A * log pi(answer)) over answers; the advantages are constants (detached)."""
    return -(advantage.detach() * answer_logps).mean()


def pass_at(correct: torch.Tensor) -> dict[str, float]:
    """(problems, k) booleans -> pass@1 (mean over samples) and pass@k (any sample right)."""
    correct = correct.float()
    return {"pass_at_1": correct.mean().item(), "pass_at_k": correct.amax(dim=1).mean().item()}
