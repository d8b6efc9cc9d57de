"""Centring of a batch of vectors by their mean over the data: :class:`RunningCentre`."""

import torch
from torch import nn


class RunningCentre(nn.Module):
    """``x - mean``: in training the batch's own mean (so no direction shared by all rows survives, and the
    gradient sees it), with a running average of those means kept for evaluation, where batches are not samples
    of the training distribution. Like batch normalisation without the scale; ``momentum`` weighs each batch."""

    def __init__(self, width: int, momentum: float = 0.01):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(width))  # [D], saved with the model

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, D] -> [B, D]
        if not self.training:
            return x - self.mean
        batch_mean = x.mean(0)  # [D]
        with torch.no_grad():
            self.mean.lerp_(batch_mean.detach().to(self.mean.dtype), self.momentum)
        return x - batch_mean
