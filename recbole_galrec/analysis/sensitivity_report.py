"""A sensitivity analysis's outputs, read from the benchmark's run records: ``sensitivity-<param>.json`` (validation
and test NDCG@10 and Hit@10 per value, mean and std over seeds, under both protocols; each run's validation score
at every validation of its training, and at the last) and its plot."""

from __future__ import annotations

import json
import logging
import math
import statistics
from pathlib import Path

from recbole_galrec.analysis.sweep import Sweep
from recbole_galrec.benchmark.store import atomic_write_text
from recbole_galrec.running.files import save_png

logger = logging.getLogger("recbole_galrec.analysis")

METRICS = ("ndcg@10", "hit@10")
# Protocol (as eval_protocol names it) -> split -> the run record's key of that split's metrics.
PROTOCOLS = {
    "recbole": {"valid": "valid", "test": "test"},
    "viewed_filtered": {"valid": "valid_viewed_filtered", "test": "test_viewed_filtered"},
}
LOG_SPAN = 10.0  # values spanning more than this factor (all positive) are drawn on a log-scale axis


def _mean_std(values: list[float]) -> dict | None:
    """Mean and sample std over seeds (std None for one seed; None without values)."""
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def point(runs: list[dict], value, label: str, seeds: list[int]) -> dict:
    """One value's entry: its label, its seeds with an ok run (and the failed ones) and, per protocol, split and
    metric, the mean and std over those runs (None where no run record holds the metric)."""
    mine = [run for run in runs if run["model"] == label and run["seed"] in seeds]
    ok = [run for run in mine if run.get("status") == "ok"]
    entry = {
        "value": value,
        "label": label,
        "seeds": sorted(run["seed"] for run in ok),
        "failed_seeds": sorted(run["seed"] for run in mine if run.get("status") != "ok"),
    }
    for protocol, splits in PROTOCOLS.items():
        entry[protocol] = {
            split: {
                metric: _mean_std([run[key][metric] for run in ok if metric in (run.get(key) or {})])
                for metric in METRICS
            }
            for split, key in splits.items()
        }
    with_curve = sorted((run for run in ok if run.get("valid_curve")), key=lambda run: run["seed"])
    entry["valid_curves"] = {str(run["seed"]): run["valid_curve"] for run in with_curve}
    last = [run["valid_curve"][-1] for run in with_curve]
    entry["last_valid"] = {
        "epochs": [validation["epoch"] for validation in last],
        **{protocol: _mean_std([v[protocol] for v in last if v[protocol] is not None]) for protocol in PROTOCOLS},
    }
    return entry


def mean_curve(curves: dict[str, list[dict]], protocol: str) -> tuple[list[int], list[float]]:
    """The epochs every seed validated at (in order) and the mean over seeds of the validation score there."""
    by_seed = [
        {v["epoch"]: v[protocol] for v in curve if v["epoch"] is not None and v[protocol] is not None}
        for curve in curves.values()
    ]
    if not by_seed:
        return [], []
    epochs = sorted(set.intersection(*(set(scores) for scores in by_seed)))
    return epochs, [statistics.fmean(scores[epoch] for scores in by_seed) for epoch in epochs]


def summary(results: dict, sweep: Sweep, seeds: list[int], command: str) -> dict:
    """The JSON of a sensitivity analysis from the benchmark's results."""
    return {
        "param": sweep.param,
        "values": sweep.values,
        "seeds": seeds,
        "dataset": results["dataset"],
        "profile": results.get("profile"),
        "settings": results.get("settings") or {},
        "external_models": sweep.providers,
        "command": command,
        "benchmark_results": f"{results['dataset']}.json",  # the run records, beside this file
        "points": [
            point(results["runs"], value, label, seeds) for value, label in zip(sweep.values, sweep.labels, strict=True)
        ],
    }


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def write_chart(data: dict, path: Path) -> None:
    """Three panels. NDCG@10 and Hit@10 against the value: validation and test (at the best validation), RecBole's
    protocol solid and viewed filtered dashed; error bars (std over seeds) with several seeds; a log-scale axis for
    positive values spanning more than 10x; values that are not numbers evenly spaced. Then the validation score
    against the epoch, a line per value (mean over seeds), the same two styles: what training with each value did,
    whichever epoch was picked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = data["values"]
    numeric = _numeric(values)
    xs = list(values) if numeric else list(range(len(values)))
    fig = Figure(figsize=(15.0, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    *panels, curves = fig.subplots(1, len(METRICS) + 1)
    several = len(data["seeds"]) > 1
    for panel, metric in zip(panels, METRICS, strict=True):
        for protocol, style in (("recbole", "-"), ("viewed_filtered", "--")):
            for split, color in (("valid", "tab:blue"), ("test", "tab:orange")):
                stats = [p[protocol][split][metric] for p in data["points"]]
                shown = [(x, s) for x, s in zip(xs, stats, strict=True) if s is not None]
                if not shown:
                    continue
                errors = [s["std"] or 0.0 for _, s in shown] if several else None
                name = f"{split}{' (filtered)' if protocol != 'recbole' else ''}"
                panel.errorbar(
                    [x for x, _ in shown],
                    [s["mean"] for _, s in shown],
                    yerr=errors,
                    fmt=f"o{style}",
                    color=color,
                    capsize=3,
                    label=name,
                )
        if numeric and min(values) > 0 and max(values) / min(values) > LOG_SPAN:
            panel.set_xscale("log")
        if numeric:
            panel.set_xticks(xs, [str(v) for v in values])
            panel.minorticks_off()
        else:
            panel.set_xticks(xs, [str(v) for v in values], rotation=30, ha="right")
        panel.set_xlabel(data["param"])
        panel.set_ylabel(f"{metric.upper().replace('HIT', 'Hit')}" + (" (mean ± std over seeds)" if several else ""))
        panel.legend(fontsize="small")
    _draw_curves(curves, data, several)
    profile = f", profile {data['profile']}" if data.get("profile") else ""
    seeds = ", ".join(map(str, data["seeds"]))
    fig.suptitle(f"GALRec on {data['dataset']}: {data['param']} (seeds {seeds}{profile})")
    save_png(fig, path)


def _draw_curves(panel, data: dict, several: bool) -> None:
    """The validation score at each validation, a color per value, RecBole's protocol solid, filtered dashed."""
    from matplotlib import colormaps

    colors = colormaps["viridis"]
    count = len(data["points"])
    for index, entry in enumerate(data["points"]):
        color = colors(index / max(count - 1, 1))
        for protocol, style in (("recbole", "-"), ("viewed_filtered", "--")):
            epochs, scores = mean_curve(entry.get("valid_curves") or {}, protocol)
            if epochs:
                label = f"{data['param']}={entry['value']}" if protocol == "recbole" else None
                panel.plot(epochs, scores, f"o{style}", color=color, markersize=3, label=label)
    panel.set_xlabel("epoch (-1: before training)")
    panel.set_ylabel("validation score (valid_metric)" + (", mean over seeds" if several else ""))
    panel.set_title("during training (dashed: viewed filtered)", fontsize="medium")
    if panel.has_data():
        panel.legend(fontsize="small")


def write_outputs(data: dict, out: Path) -> list[Path]:
    """Write ``sensitivity-<param>.json`` and its chart into ``out``; the paths written."""
    stem = out / f"sensitivity-{data['param']}"
    json_path, chart_path = stem.with_suffix(".json"), stem.with_suffix(".png")
    atomic_write_text(json_path, json.dumps(data, indent=2))
    try:
        write_chart(data, chart_path)
    except ImportError:
        logger.warning("matplotlib is not installed (pip install -e '.[bench]'): no chart written")
        return [json_path]
    return [json_path, chart_path]
