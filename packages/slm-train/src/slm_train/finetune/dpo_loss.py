"""DPO's loss on one screen (Rafailov et al., 2023: "Direct Preference Optimization").

A preference pair is a prompt x with a chosen reply y_c and a rejected one y_r.
DPO never trains a reward model. It reads an implicit reward off the policy
pi being trained and a frozen reference ref (the model DPO started from):

    reward(x, y) = beta * (log pi(y | x) - log ref(y | x))

where log pi(y | x) is the sum of the log-probabilities of the reply's tokens
only (the prompt and the padding are not the reply, so they do not count).
The loss is the logistic loss of the Bradley-Terry model that the chosen reply
wins:

    loss = -log sigmoid(reward(x, y_c) - reward(x, y_r))
         = -log sigmoid(beta * ((log pi_c - log ref_c) - (log pi_r - log ref_r)))

Why this shape: the reward is relative to the reference, so the policy is only
pushed where it differs from where it started, and beta sets how far it may
move (a small beta tolerates a large drift before the loss saturates). At the
start pi = ref, every reward is 0 and the loss is log 2. The reference's
log-probabilities are constants (no gradient reaches them), so `dpo_loss`
takes them as plain numbers: whoever calls it computes them without grad.

DPO only asks that the chosen reply become likelier *than the rejected one*.
Both may fall, and when the two share most of their tokens (the same words, a
different number) the shared tokens fall with them: the reward accuracy rises
while the model's own answers get worse. RPO (Pang et al., 2024; Llama 3 did
the same) adds the plain fine-tuning loss on the chosen reply, which keeps it
likely in absolute terms:

    loss = DPO + sft_weight * (-mean over the chosen replies' tokens of log pi)

(TRL's `loss_type=["sigmoid", "sft"]` with `loss_weights=[1, sft_weight]`).

What the evaluation reports, as TRL does: the reward accuracy (the share of
pairs whose chosen reward exceeds the rejected one: the policy moved towards
the chosen reply more than towards the rejected one, relative to where it
started; 0 at the start, where they tie) and the reward margin (the mean of
reward_c - reward_r).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # a target that is not part of a reply


def sequence_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per row, the sum of log p(target) over the targets that are not -100.

    logits: (rows, tokens, vocab), targets: (rows, tokens) -> (rows,).
    """
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    counted = targets != IGNORE_INDEX
    picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * counted).sum(dim=-1)


def dpo_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair losses, and the chosen and rejected rewards (detached), from summed log-probs.

    The reference's log-probs are detached: gradients reach the policy only.
    """
    chosen_ratio = chosen - ref_chosen.detach()
    rejected_ratio = rejected - ref_rejected.detach()
    losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def chosen_nll(chosen: torch.Tensor, chosen_tokens: torch.Tensor | int) -> torch.Tensor:
    """RPO's extra term: the mean negative log-probability per token of the chosen replies,
    from their summed log-probs and how many tokens they have in all."""
    return -chosen.sum() / chosen_tokens


def reward_metrics(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> dict:
    """Reward accuracy and mean reward margin over pairs."""
    return {
        "reward_accuracy": (chosen_rewards > rejected_rewards).float().mean().item(),
        "reward_margin": (chosen_rewards - rejected_rewards).mean().item(),
    }
