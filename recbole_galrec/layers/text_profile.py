"""The text-profile score term: how close each item's text is to the text of the user's recent items.

``weight * z(p_u . t_i)``: ``t_i`` an item's text vector (L2-normalised), ``p_u`` the mean of the sample's history
items' vectors, each weighted ``decay ** age`` (age 0 for the most recent item; decay 0: that item alone, 1: the
plain mean), ``z`` the standardisation over all items of one user's scores (so ``weight`` is in units of the
user's own spread, whatever the text encoder). The user's own history items get 0, the user's mean: an item is
closest to itself, so they would otherwise be boosted most, and the term is to say what is close to them, not to
repeat them (nor to push them down: whether to recommend an item again is not the text's call). A function of the
sample's own history only, so training prefixes see nothing of their later items.

Items with few interactions are where collaborative vectors know least and text is worth most; measured on a
trained SASRec's Beauty validation ranking in docs/results/lm-tries.md.
"""

import torch
from torch import nn


class TextProfileTerm(nn.Module):
    """``[B, L]`` 0-padded histories (oldest first) -> ``[B, n_items]`` scores.

    Args:
        text_vectors: ``[n_items, D]`` the items' text vectors (row 0, padding, and items without text: zeros).
        weight: the term's weight, fixed (a setting chosen on validation, not a parameter).
        decay: how much each earlier history item counts relative to the next one, in [0, 1].
        moved_by: the width of the states that move the query (``forward``'s ``states``), through a linear map
            that starts at zero; 0: the profile alone.
    """

    def __init__(self, text_vectors: torch.Tensor, weight: float, decay: float, moved_by: int = 0):
        super().__init__()
        self.query_shift = nn.Linear(moved_by, text_vectors.shape[1], bias=False) if moved_by else None
        if self.query_shift is not None:
            nn.init.zeros_(self.query_shift.weight)  # the profile alone at the start
        unit = nn.functional.normalize(text_vectors.float(), dim=1)  # zero rows stay zero
        self.register_buffer("unit", unit, persistent=False)  # [n_items, D], rebuilt from the model's inputs
        self.weight = float(weight)
        self.decay = decay

    def profiles(self, history: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` -> ``[B, D]``: the decayed mean of the history items' text vectors."""
        real = history != 0  # [B, L]
        newer = real.flip(1).cumsum(1).flip(1) - real.long()  # [B, L] real items after each position
        weights = (self.decay**newer).masked_fill(~real, 0.0)  # decay 0: 0 ** 0 = 1, the last item alone
        weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-12)  # [B, L]
        return (weights[..., None] * self.unit[history]).sum(1)  # [B, D]

    def forward(self, history: torch.Tensor, states: torch.Tensor | None = None) -> torch.Tensor:
        """``states`` ``[B, moved_by]`` (ignored when ``moved_by`` is 0) move each profile by a learned map."""
        query = self.profiles(history)  # [B, D]
        if self.query_shift is not None:
            query = query + self.query_shift(states)
        scores = query @ self.unit.T  # [B, n_items]
        scores[:, 0] = 0.0  # padding: not an item (the model masks it)
        mean, std = scores.mean(1, keepdim=True), scores.std(1, keepdim=True).clamp(min=1e-6)  # [B, 1]
        scores = (scores - mean) / std  # [B, n_items]
        own = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, history, True)  # [B, n_items]
        own[:, 0] = True  # and padding
        return self.weight * scores.masked_fill(own, 0.0)
