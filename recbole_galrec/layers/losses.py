"""Loss functions of GALRec, as pure functions of tensors (no RecBole, no model state)."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class InfoNCE:
    loss: torch.Tensor  # [] mean over the rows
    top1: torch.Tensor  # [] share of rows whose positive outscores every negative (chance: 1 / columns)
    columns: int  # candidates per row: the batch's keys plus the queue's


def info_nce(
    query: torch.Tensor,
    key: torch.Tensor,
    queue: torch.Tensor | None = None,
    tau: float = 0.1,
) -> InfoNCE:
    """InfoNCE of each query against its own key, with the other keys of the batch and the queue as negatives.

    ``logits[b] = [q_b . k_1, ..., q_b . k_B, q_b . n_1, ..., q_b . n_Q] / tau`` over L2-normalised vectors;
    the positive of row ``b`` is column ``b``. Computed as a cross-entropy (log-sum-exp, numerically stable)
    and averaged over the batch. ``top1`` is how often the positive ranks first: it shows at a glance whether
    a term learns (well above ``1 / columns``) or sits at chance (collapsed representations).

    Args:
        query: ``[B, D]``.
        key: ``[B, D]``, the positive of each query (row-aligned).
        queue: ``[Q, D]`` extra negatives (already normalised keys of earlier batches), or ``None``.
        tau: temperature, > 0.
    """
    query = F.normalize(query, dim=-1)  # [B, D]
    key = F.normalize(key, dim=-1)  # [B, D]
    logits = query @ key.T  # [B, B]
    if queue is not None and queue.numel():
        logits = torch.cat([logits, query @ queue.T], dim=1)  # [B, B + Q]
    labels = torch.arange(query.shape[0], device=query.device)  # [B]
    loss = F.cross_entropy(logits / tau, labels)
    top1 = (logits.detach().argmax(dim=1) == labels).float().mean()
    return InfoNCE(loss, top1, logits.shape[1])
