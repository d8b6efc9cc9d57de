"""Alignment and uniformity of representations (Wang and Isola, 2020), as pure functions of tensors.

Both are computed on L2-normalised vectors, in float64:

- alignment of row-aligned positive pairs ``(x_b, y_b)``: ``E ||f(x) - f(y)||^2`` (their ``alpha = 2``), between 0
  (each pair identical) and 4 (each pair opposite); lower is better aligned;
- uniformity of a set: ``log E exp(-2 ||f(x) - f(y)||^2)`` over pairs of distinct members (their ``t = 2``),
  between ``-4`` in the limit of points spread evenly over a high-dimensional sphere and 0 (every point the
  same); lower is more uniform. Up to :data:`ALL_PAIRS_UP_TO` members every unordered pair counts; above, a fixed
  random sample of :data:`SAMPLED_PAIRS` pairs of distinct members, drawn from the seed.

``f`` is the L2 normalisation; a zero vector stays zero.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

ALL_PAIRS_UP_TO = 5000  # members; 12.5 million pairs, computed in chunks of rows
SAMPLED_PAIRS = 1_000_000  # pairs drawn for larger sets
_ROWS_PER_CHUNK = 512
_PAIRS_PER_CHUNK = 50_000


@dataclass
class Uniformity:
    value: float | None  # None for a set of fewer than two members
    pairs: str  # "all" or "sampled"
    pair_count: int

    def to_dict(self) -> dict:
        return asdict(self)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """``[N, H]`` -> ``[N, H]`` float64 rows of unit length (zero rows stay zero)."""
    return F.normalize(x.detach().to(torch.float64), dim=-1)


def alignment(x: torch.Tensor, y: torch.Tensor) -> float | None:
    """``E ||f(x_b) - f(y_b)||^2`` over row-aligned pairs ``x``, ``y``: ``[N, H]`` each; None when N is 0."""
    if x.shape != y.shape:
        raise ValueError(f"alignment needs row-aligned pairs of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] == 0:
        return None
    return float((normalise(x) - normalise(y)).pow(2).sum(dim=1).mean())


def uniformity(x: torch.Tensor, seed: int = 2020, all_pairs_up_to: int = ALL_PAIRS_UP_TO) -> Uniformity:
    """``log E exp(-2 ||f(x_i) - f(x_j)||^2)`` over pairs ``i != j`` of ``x`` ``[N, H]``: every unordered pair
    when ``N <= all_pairs_up_to``, else :data:`SAMPLED_PAIRS` pairs drawn uniformly (``seed``)."""
    n = x.shape[0]
    if n < 2:
        return Uniformity(None, "all", 0)
    z = normalise(x)  # [N, H]
    if n <= all_pairs_up_to:
        return Uniformity(_log_mean_exp(_all_pair_terms(z)), "all", n * (n - 1) // 2)
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, SAMPLED_PAIRS)
    second = rng.integers(0, n - 1, SAMPLED_PAIRS)
    second = second + (second >= first)  # uniform over the members other than `first`
    return Uniformity(_log_mean_exp(_sampled_pair_terms(z, first, second)), "sampled", SAMPLED_PAIRS)


def _all_pair_terms(z: torch.Tensor):
    """``(log-sum-exp, count)`` of ``-2 ||z_i - z_j||^2`` over ``i < j``, one chunk of rows at a time."""
    n = z.shape[0]
    for start in range(0, n, _ROWS_PER_CHUNK):
        rows = z[start : start + _ROWS_PER_CHUNK]  # [C, H]
        # ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b (the norms are 1, or 0 for a zero row)
        squared = (rows.pow(2).sum(1)[:, None] + z.pow(2).sum(1)[None] - 2.0 * rows @ z.T).clamp(min=0.0)  # [C, N]
        index = torch.arange(start, start + rows.shape[0])[:, None]  # [C, 1]
        later = torch.arange(n)[None] > index  # [C, N]
        terms = -2.0 * squared[later]
        if terms.numel():
            yield float(torch.logsumexp(terms, dim=0)), terms.numel()


def _sampled_pair_terms(z: torch.Tensor, first: np.ndarray, second: np.ndarray):
    for start in range(0, len(first), _PAIRS_PER_CHUNK):
        a = z[torch.from_numpy(first[start : start + _PAIRS_PER_CHUNK])]  # [C, H]
        b = z[torch.from_numpy(second[start : start + _PAIRS_PER_CHUNK])]  # [C, H]
        terms = -2.0 * (a - b).pow(2).sum(dim=1)  # [C]
        yield float(torch.logsumexp(terms, dim=0)), terms.numel()


def _log_mean_exp(chunks) -> float:
    """``log((sum_c exp(lse_c)) / sum_c count_c)`` from ``(lse_c, count_c)`` chunks, computed stably."""
    lses, count = [], 0
    for lse, n in chunks:
        lses.append(lse)
        count += n
    return float(torch.logsumexp(torch.tensor(lses, dtype=torch.float64), dim=0)) - math.log(count)


__all__ = ["ALL_PAIRS_UP_TO", "SAMPLED_PAIRS", "Uniformity", "alignment", "normalise", "uniformity"]
