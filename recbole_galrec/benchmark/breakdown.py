"""Where a model gains or loses against the reference: the paired comparison over test users, per group.

Users are grouped by their test item's popularity (its number of training users: 0-4, then quintiles of the
rest, the edges taken over the users of those groups) and by their history length (the items before the test
item: quintiles). Per group: users, both means, the relative difference (model / reference - 1) and the p-value
of a two-sided Wilcoxon signed-rank test of the paired per-user values. A model that claims to help cold items
shows it in the first popularity group.

The group columns come from the per-user files (:mod:`recbole_galrec.running.per_user`): ``item_count`` and
``history_len`` are properties of the data and the split, the same for every model and seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

POPULARITY = "item_count"  # per-user column: training users of the test item
HISTORY = "history_len"  # per-user column: the user's items before the test item
GROUP_COLUMNS = (POPULARITY, HISTORY)
COLD_LIMIT = 4  # the first popularity group: test items with 0 to 4 training users
QUANTILES = 5


def _quantile_groups(values: np.ndarray, offset_label: str = "") -> list[tuple[str, np.ndarray]]:
    """Up to :data:`QUANTILES` groups of ``values`` between quantile edges (equal edges merge), labelled by
    their closed integer ranges."""
    if len(values) == 0:
        return []
    edges = np.unique(np.quantile(values, np.linspace(0, 1, QUANTILES + 1)))
    groups = []
    for i, low in enumerate(edges[:-1]):
        high = edges[i + 1]
        last = i == len(edges) - 2
        mask = (values >= low) & ((values <= high) if last else (values < high))
        if mask.any():
            top = int(values[mask].max())
            groups.append((f"{offset_label}{int(low)}-{top}", mask))
    if len(edges) == 1:  # every value equal
        groups.append((f"{offset_label}{int(edges[0])}-{int(edges[0])}", np.ones(len(values), dtype=bool)))
    return groups


def popularity_groups(counts: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """``[(label, mask)]``: test items with 0-:data:`COLD_LIMIT` training users, then quintiles of the rest."""
    counts = np.asarray(counts)
    cold = counts <= COLD_LIMIT
    groups = [(f"0-{COLD_LIMIT}", cold)] if cold.any() else []
    rest = np.flatnonzero(~cold)
    for label, mask in _quantile_groups(counts[rest]):
        full = np.zeros(len(counts), dtype=bool)
        full[rest[mask]] = True
        groups.append((label, full))
    return groups


def history_groups(lengths: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """``[(label, mask)]``: quintiles of the users' history lengths."""
    return _quantile_groups(np.asarray(lengths))


def paired_group(model: np.ndarray, reference: np.ndarray) -> dict:
    """Users, means, relative difference and Wilcoxon p of paired per-user values (no bootstrap: groups are many)."""
    from scipy import stats

    ref_mean, model_mean = float(reference.mean()), float(model.mean())
    if np.all(model == reference):
        p_value = 1.0
    else:
        p_value = float(stats.wilcoxon(model, reference, alternative="two-sided").pvalue)
    return {
        "users": int(len(model)),
        "mean": model_mean,
        "reference_mean": ref_mean,
        "relative_difference": model_mean / ref_mean - 1 if ref_mean else None,
        "p_value": p_value,
    }


def breakdown(model: pd.DataFrame, reference: pd.DataFrame, groups_from: pd.DataFrame, metrics: list[str]) -> dict:
    """``{"popularity": [...], "history": [...]}``, each a list of ``{"group", metric: paired_group}``.

    ``model`` and ``reference`` hold per-user metrics indexed by user (seed means), ``groups_from`` the users'
    :data:`POPULARITY` and :data:`HISTORY` columns; users of all three are compared. Empty without those columns."""
    if POPULARITY not in groups_from or HISTORY not in groups_from:
        return {}
    users = model.index.intersection(reference.index).intersection(groups_from.index)
    result = {}
    for name, column, grouping in (
        ("popularity", POPULARITY, popularity_groups),
        ("history", HISTORY, history_groups),
    ):
        values = groups_from.loc[users, column].to_numpy()
        rows = []
        for label, mask in grouping(values):
            chosen = users[mask]
            row = {"group": label}
            for metric in metrics:
                if metric in model and metric in reference:
                    row[metric] = paired_group(
                        model.loc[chosen, metric].to_numpy(float), reference.loc[chosen, metric].to_numpy(float)
                    )
            rows.append(row)
        result[name] = rows
    return result


GROUP_TITLES = {
    "popularity": "test item's training users",
    "history": "user's earlier items",
}


def breakdown_lines(comparisons: dict | None, order: list[str]) -> list[str]:
    """Markdown section: per model with a breakdown, one table per grouping (rows: groups; columns: users, the
    reference's and the model's mean NDCG@10, relative difference and p, under each protocol present)."""
    models = (comparisons or {}).get("models") or {}
    reference = (comparisons or {}).get("reference")
    chosen = [label for label in order if (models.get(label) or {}).get("breakdown")]
    if not chosen:
        return []
    lines = [
        "",
        f"## Where each model gains or loses against {reference}",
        "",
        "Test users grouped by their test item's training users (0-4, then quintiles of the rest) and by their "
        "number of earlier items (quintiles); per group the mean NDCG@10 of both models, the relative difference "
        "and the p-value of a two-sided Wilcoxon signed-rank test over the group's users (seed means).",
    ]
    for label in chosen:
        for grouping, rows in models[label]["breakdown"].items():
            metrics = [m for m in rows[0] if m != "group"] if rows else []
            header = [GROUP_TITLES[grouping], "users"]
            for metric in metrics:
                name = "NDCG@10 filtered" if metric.endswith("_filtered") else "NDCG@10"
                header += [f"{reference} {name}", f"{label} {name}", "difference", "p"]
            lines += ["", f"{label} by {GROUP_TITLES[grouping]}:", ""]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
            for row in rows:
                cells = [row["group"], f"{row[metrics[0]]['users']:,}" if metrics else ""]
                for metric in metrics:
                    entry = row[metric]
                    diff = entry["relative_difference"]
                    p = entry["p_value"]
                    cells += [
                        f"{entry['reference_mean']:.4f}",
                        f"{entry['mean']:.4f}",
                        f"{diff:+.1%}" if diff is not None else "n/a",
                        "< 0.0001" if p < 1e-4 else f"{p:.4f}",
                    ]
                lines.append("| " + " | ".join(cells) + " |")
    return lines
