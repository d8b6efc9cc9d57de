"""Paired comparison over test users of each model with a reference model.

For each model and metric (:data:`~recbole_galrec.running.per_user.PER_USER_METRICS`), over the seeds both models
have per-user metrics for: each user's metric averaged over those seeds, users paired by their raw id; the
relative difference of the means (model / reference - 1) with a 95% percentile-bootstrap interval over users
(users resampled with their pairs kept, :data:`BOOTSTRAP_RESAMPLES` resamples, fixed seed), and the p-value of
a two-sided Wilcoxon signed-rank test of the paired per-user values (scipy; users with equal values on both
sides drop out, as in Wilcoxon's own procedure).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recbole_galrec.benchmark.breakdown import GROUP_COLUMNS, breakdown
from recbole_galrec.running.per_user import FILTERED_METRICS, PER_USER_METRICS, read_per_user

BREAKDOWN_METRICS = ("ndcg@10", "ndcg@10_filtered")  # compared per group of users (where a model helps)
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
METHOD = {
    "test": "two-sided Wilcoxon signed-rank test over users (scipy.stats.wilcoxon), each user's metric "
    "averaged over the seeds both models share",
    "interval": f"{CONFIDENCE:.0%} percentile bootstrap over users ({BOOTSTRAP_RESAMPLES} paired resamples, "
    f"seed {BOOTSTRAP_SEED}) of the relative difference of the means",
}


def per_user_runs(runs: list[dict], label: str, out: Path) -> dict[int, Path]:
    """Seed -> per-user file of the ok runs of ``label`` whose per-user metrics exist."""
    files = {}
    for run in runs:
        if run["model"] == label and run.get("status") == "ok" and run.get("per_user"):
            path = out / run["per_user"]
            if path.is_file():
                files[run["seed"]] = path
    return files


def seed_mean(files: list[Path]) -> pd.DataFrame:
    """Per-user metrics averaged over the given runs' files (users of all of them; the metric columns all of
    them have: runs recorded before the viewed-filtered protocol have none of its columns)."""
    frames = [read_per_user(path) for path in files]
    metrics = [m for m in PER_USER_METRICS + FILTERED_METRICS if all(m in frame for frame in frames)]
    return pd.concat([frame[metrics] for frame in frames]).groupby(level=0).mean()


def group_columns(files: list[Path]) -> pd.DataFrame:
    """The users' group columns (test item's popularity, history length) from the first file that has them;
    empty when none has (they are the data's, the same in every run of one split)."""
    for path in files:
        frame = read_per_user(path)
        if all(column in frame for column in GROUP_COLUMNS):
            return frame[list(GROUP_COLUMNS)]
    return pd.DataFrame()


def paired_test(model: np.ndarray, reference: np.ndarray) -> dict:
    """Relative difference of the means with its bootstrap interval, and the Wilcoxon p-value, of paired values."""
    from scipy import stats

    ref_mean, model_mean = float(reference.mean()), float(model.mean())
    if ref_mean == 0:
        relative, interval = None, None
    else:
        relative = model_mean / ref_mean - 1

        def ratio(m, r, axis):
            return m.mean(axis=axis) / r.mean(axis=axis) - 1

        boot = stats.bootstrap(
            (model, reference),
            ratio,
            paired=True,
            vectorized=True,
            n_resamples=BOOTSTRAP_RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            batch=100,
            random_state=np.random.default_rng(BOOTSTRAP_SEED),
        )
        interval = [float(boot.confidence_interval.low), float(boot.confidence_interval.high)]
    if np.all(model == reference):
        p_value = 1.0  # no user differs: nothing to test
    else:
        p_value = float(stats.wilcoxon(model, reference, alternative="two-sided").pvalue)
    return {
        "mean": model_mean,
        "reference_mean": ref_mean,
        "relative_difference": relative,
        "ci95": interval,
        "p_value": p_value,
    }


def compare(results: dict, out: Path, reference: str | None) -> dict | None:
    """The paired comparison of every model of ``results`` with ``reference`` (None: no comparison)."""
    labels = list(dict.fromkeys(run["model"] for run in results["runs"] if run.get("status") == "ok"))
    if reference is None or reference not in labels:
        return None
    ref_files = per_user_runs(results["runs"], reference, out)
    models = {}
    for label in labels:
        if label == reference:
            models[label] = {"reference": True}
            continue
        files = per_user_runs(results["runs"], label, out)
        shared = sorted(set(files) & set(ref_files))
        if not shared:
            missing = reference if files else label
            models[label] = {
                "note": f"no per-user metrics of {missing} for a shared seed (runs recorded before they were "
                "kept); run them again for a paired test",
            }
            continue
        mine = seed_mean([files[seed] for seed in shared])
        ref = seed_mean([ref_files[seed] for seed in shared])
        users = mine.index.intersection(ref.index)
        entry = {"seeds": shared, "users": len(users)}
        for metric in [m for m in PER_USER_METRICS + FILTERED_METRICS if m in mine and m in ref]:
            entry[metric] = paired_test(mine.loc[users, metric].to_numpy(float), ref.loc[users, metric].to_numpy(float))
        groups = group_columns([ref_files[seed] for seed in shared])
        entry["breakdown"] = breakdown(mine, ref, groups, [m for m in BREAKDOWN_METRICS if m in mine and m in ref])
        models[label] = entry
    metrics = [m for m in PER_USER_METRICS + FILTERED_METRICS if any(m in e for e in models.values())]
    return {"reference": reference, **METHOD, "metrics": metrics, "models": models}
