"""MoCo's key encoder for any module: momentum copies of its trainable parameters, swapped in for key passes.

He et al.'s MoCo computes keys with a slowly moving copy of the query encoder, without gradients, and keeps
past keys in a queue (:mod:`recbole_galrec.layers.queue`). GALRec's keys pass through everything that produces its
queries (the backbone's adapters, the soft-token maps and embeddings, the projection heads), so the copy is of
every trainable parameter. Rather than a second model, :class:`MomentumParameters` holds one buffer per
trainable parameter and, inside :meth:`MomentumParameters.swapped`, lets the model run on those buffers; the
frozen backbone weights are shared, never copied.
"""

from contextlib import contextmanager

import torch
from torch import nn


class MomentumParameters(nn.Module):
    """Momentum copies ``k <- m k + (1 - m) q`` of the trainable parameters of ``model``.

    Args:
        model: the module whose parameters with ``requires_grad`` are tracked (read once, at construction;
            the copies start equal to them). It is not registered as a submodule.
        momentum: ``m`` in [0, 1); 0 makes the keys use the current parameters (still without gradients).

    The copies are buffers: they follow the model across devices and are saved with it.
    """

    def __init__(self, model: nn.Module, momentum: float):
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        for index, name in enumerate(self.names):
            self.register_buffer(f"copy_{index}", model.get_parameter(name).detach().clone())

    def _pairs(self, model: nn.Module):
        for index, name in enumerate(self.names):
            yield model.get_parameter(name), getattr(self, f"copy_{index}")

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One momentum step towards the current parameters."""
        for param, copy in self._pairs(model):
            copy.lerp_(param.detach(), 1.0 - self.momentum)

    @contextmanager
    def swapped(self, model: nn.Module):
        """Within the block, ``model`` computes with the momentum copies, without gradients."""
        pairs = list(self._pairs(model))
        originals = [param.data for param, _ in pairs]
        try:
            with torch.no_grad():
                for param, copy in pairs:
                    param.data = copy
                yield
        finally:
            for (param, _), original in zip(pairs, originals, strict=True):
                param.data = original
