"""Soft tokens: small maps from external vectors to the backbone's hidden size, and the norm that puts them on
the scale of its word embeddings."""

import torch
from torch import nn


class SoftTokenNorm(nn.Module):
    """Puts soft tokens on the scale of the backbone's word embeddings: ``x / rms(x) * gain``, the gain ``[H]``
    starting at the mean norm of the word embeddings over ``sqrt(H)``.

    Mapped external vectors start orders of magnitude smaller than word embeddings; the backbone's own position
    and type embeddings then drown them, every user and item looks alike to it, and the contrastive terms
    collapse. A zero vector (padding) stays zero."""

    def __init__(self, hidden: int, norm: float):
        super().__init__()
        self.gain = nn.Parameter(torch.full((hidden,), norm / hidden**0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-12) * self.gain


def two_layer_mlp(d_in: int, d_out: int) -> nn.Sequential:
    """``Linear(d_in, d_out) -> GELU -> Linear(d_out, d_out)`` (state-dict keys ``0.*`` and ``2.*``)."""
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))
