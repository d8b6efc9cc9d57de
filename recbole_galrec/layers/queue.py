"""A MoCo-style FIFO queue of past keys: many negatives for the contrastive terms despite small batches."""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class KeyQueue(nn.Module):
    """A fixed-size FIFO of detached, L2-normalised key vectors, kept in registered buffers.

    The queue and its write pointer are buffers, so they follow the module across devices and are saved in
    checkpoints. :meth:`negatives` returns only the slots written so far (an empty queue gives no negatives).
    When ``torch.distributed`` is initialised, :meth:`enqueue` gathers the keys of every process first, so all
    processes hold the same queue.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size < 0:
            raise ValueError(f"queue size must be >= 0, got {size}")
        self.size = size
        self.register_buffer("keys", torch.zeros(size, dim))  # [K, D]
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))  # next slot to write
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))  # slots written so far, <= K

    def negatives(self) -> torch.Tensor:
        """The keys written so far, ``[min(filled, K), D]``, oldest slot order not guaranteed."""
        return self.keys[: int(self.filled)]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Append ``keys`` ``[B, D]`` (any B, also one larger than the queue), overwriting the oldest slots."""
        if self.size == 0:
            return
        keys = F.normalize(_gather_across_processes(keys.detach()), dim=-1).to(self.keys.dtype)  # [B', D]
        keys = keys[-self.size :]  # a batch larger than the queue keeps its newest keys
        n = keys.shape[0]
        slots = (self.pointer + torch.arange(n, device=self.keys.device)) % self.size  # [n], wraps around
        self.keys[slots] = keys
        self.pointer.copy_((self.pointer + n) % self.size)
        self.filled.copy_(torch.clamp(self.filled + n, max=self.size))


def _gather_across_processes(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` ``[B, D]`` from every process in rank order (batches may differ in size, as a
    ragged last batch does); the tensor itself when not running distributed."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    world = dist.get_world_size()
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.empty_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, *tensor.shape[1:], dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(s.item())] for g, s in zip(gathered, sizes, strict=True)], dim=0)
