"""Loss functions of GALRec, as pure functions of tensors (no RecBole, no model state)."""

import torch
import torch.nn.functional as F


def info_nce(
    query: torch.Tensor,
    key: torch.Tensor,
    queue: torch.Tensor | None = None,
    tau: float = 0.1,
) -> torch.Tensor:
    """InfoNCE of each query against its own key, with the other keys of the batch and the queue as negatives.

    ``logits[b] = [q_b . k_1, ..., q_b . k_B, q_b . n_1, ..., q_b . n_Q] / tau`` over L2-normalised vectors;
    the positive of row ``b`` is column ``b``. Computed as a cross-entropy (log-sum-exp, numerically stable)
    and averaged over the batch.

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
    return F.cross_entropy(logits / tau, labels)
