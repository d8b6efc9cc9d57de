"""Representations drawn as densities on the circle: 2-D projection, angles, kernel density, the figure.

Each set of vectors ``[N, H]`` is L2-normalised, projected to 2-D, each projected point put on the unit circle
(its angle kept), and the angles' density estimated with a Gaussian kernel (Scott's bandwidth, as
:class:`scipy.stats.gaussian_kde` chooses it, but at least :data:`MIN_BANDWIDTH`, so that a collapsed set is a
visible peak rather than a spike between grid points), wrapped around the circle (an angle ``a`` also counts at
``a - 2 pi`` and ``a + 2 pi``), so that it integrates to 1 over ``[-pi, pi]``. The projections
(:data:`PROJECTIONS`):

- ``gaussian``: one fixed random Gaussian matrix ``[H, 2]`` drawn from the seed (the same for every set of a
  width, so sets and checkpoints are drawn through the same projection); the vectors are not centred, so a set
  gathered around one direction stays gathered on the circle (what uniformity measures);
- ``pca``: each set's own two principal axes, after centring (shows the spread around the set's mean direction,
  not the mean direction itself).

A uniform set gives the flat density ``1 / (2 pi)``; a collapsed one a peak.
"""

import math

import numpy as np
import torch

from recbole_galrec.analysis.measures import normalise
from recbole_galrec.running.files import save_png

PROJECTIONS = ("gaussian", "pca")
GRID_POINTS = 721  # angles from -pi to pi at which the density is evaluated (a step of 0.5 degree)
MIN_BANDWIDTH = 0.02  # radians: a collapsed set still shows as a peak wider than the grid's step
_ANGLES_PER_CHUNK = 2048


def project(x: torch.Tensor, method: str, seed: int) -> np.ndarray:
    """``[N, H]`` -> ``[N, 2]``: the normalised vectors through ``method`` (:data:`PROJECTIONS`)."""
    z = normalise(x)  # [N, H]
    if method not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {method!r}")
    if z.shape[0] == 0:
        return np.zeros((0, 2))
    if method == "gaussian":
        generator = torch.Generator().manual_seed(seed)
        matrix = torch.randn(z.shape[1], 2, generator=generator, dtype=torch.float64)  # [H, 2]
        return (z @ matrix).numpy()
    centred = z - z.mean(dim=0, keepdim=True)  # [N, H] (pca)
    _, _, axes = torch.linalg.svd(centred, full_matrices=False)  # axes: [min(N, H), H]
    points = centred @ axes[:2].T  # [N, <=2]
    if points.shape[1] < 2:
        points = torch.cat([points, points.new_zeros(points.shape[0], 2 - points.shape[1])], dim=1)
    return points.numpy()


def angles(points: np.ndarray) -> np.ndarray:
    """Angles in ``[-pi, pi]`` of 2-D points ``[N, 2]``, each put on the unit circle; points at the origin (no
    direction) are left out."""
    keep = np.hypot(points[:, 0], points[:, 1]) > 0
    return np.arctan2(points[keep, 1], points[keep, 0])


def angle_density(theta: np.ndarray, grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(grid, density)`` of the angles ``theta``: a Gaussian kernel density estimate with Scott's bandwidth
    (``std * n ** -0.2``, as :class:`scipy.stats.gaussian_kde` in one dimension), at least :data:`MIN_BANDWIDTH`,
    wrapped around the circle; ``density`` is None without any angle."""
    grid = np.linspace(-math.pi, math.pi, GRID_POINTS) if grid is None else grid
    if theta.size == 0:
        return grid, None
    bandwidth = max(float(np.std(theta, ddof=1)) * theta.size**-0.2 if theta.size > 1 else 0.0, MIN_BANDWIDTH)
    total = np.zeros_like(grid, dtype=np.float64)
    for start in range(0, theta.size, _ANGLES_PER_CHUNK):
        chunk = theta[start : start + _ANGLES_PER_CHUNK]
        for shift in (-2 * math.pi, 0.0, 2 * math.pi):  # the circle: an angle also counts one turn either way
            offsets = (grid[:, None] - chunk[None, :] - shift) / bandwidth  # [G, C]
            total += np.exp(-0.5 * offsets**2).sum(axis=1)
    return grid, total / (theta.size * bandwidth * math.sqrt(2 * math.pi))


def draw(rows: list[dict], path: str, projection: str) -> None:
    """One row of panels per checkpoint, one panel per representation set. ``rows``: ``{"label": str,
    "panels": [{"title": str, "grid": array, "density": array | None, "note": str}]}``. Written as PNG to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = max(len(row["panels"]) for row in rows)
    fig = Figure(figsize=(3.2 * columns, 2.6 * len(rows) + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), columns, sharex=True, squeeze=False)
    tops = [  # one density scale per column: the rows (checkpoints) compare at a glance
        max([1 / (2 * math.pi)] + [float(np.max(p["density"])) for p in _column(rows, c) if p["density"] is not None])
        for c in range(columns)
    ]
    for r, row in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            if c >= len(row["panels"]):
                ax.set_axis_off()
                continue
            panel = row["panels"][c]
            ax.axhline(1 / (2 * math.pi), color="gray", linestyle="--", linewidth=0.8)  # the uniform density
            if panel["density"] is not None:
                ax.fill_between(panel["grid"], panel["density"], alpha=0.35, color="tab:blue")
                ax.plot(panel["grid"], panel["density"], color="tab:blue", linewidth=1.2)
            else:
                ax.text(0.5, 0.5, "no density", transform=ax.transAxes, ha="center", va="center")
            ax.set_title(f"{panel['title']}\n{panel['note']}", fontsize=9)
            ax.set_xlim(-math.pi, math.pi)
            ax.set_xticks([-math.pi, -math.pi / 2, 0, math.pi / 2, math.pi], ["-π", "-π/2", "0", "π/2", "π"])
            ax.set_ylim(0, 1.05 * tops[c])
            if c == 0:
                ax.set_ylabel(f"{row['label']}\ndensity", fontsize=9)
            if r == len(rows) - 1:
                ax.set_xlabel("angle", fontsize=9)
    fig.suptitle(f"angle densities on the circle ({projection} projection; dashed: uniform)", fontsize=10)
    save_png(fig, path)


def _column(rows: list[dict], column: int) -> list[dict]:
    return [row["panels"][column] for row in rows if column < len(row["panels"])]


__all__ = ["PROJECTIONS", "angle_density", "angles", "draw", "project"]
