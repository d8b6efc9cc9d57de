"""The benchmark's report: per-model summary, markdown tables and chart, written from the results dict."""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path

import pandas as pd

from recbole_galrec.benchmark.breakdown import breakdown_lines
from recbole_galrec.benchmark.plan import DEFAULT_MODELS, EXTERNAL_LABELS
from recbole_galrec.benchmark.stats import compare
from recbole_galrec.benchmark.store import atomic_write_text
from recbole_galrec.running.files import save_png
from recbole_galrec.running.per_user import PER_USER_METRICS

logger = logging.getLogger("recbole_galrec.benchmark")

# Test metrics of the main table, read from a run's "test" dict (RecBole's protocol) and "test_viewed_filtered".
METRIC_COLUMNS = ["ndcg@10", "hit@10", "mrr@10", "ndcg@20", "hit@20"]
FILTERED_COLUMNS = ["ndcg@10", "hit@10"]
PROTOCOLS_TEXT = (
    "Two protocols, from the same scores of the same evaluation pass: RecBole's full ranking ranks every item, "
    "the user's earlier items included (the columns without a suffix); *filtered* (viewed filtered, as in the "
    "S3-Rec line of work: S3-Rec, ICLRec, DuoRec, BSARec) excludes the user's training and validation items from "
    "the test ranking (training items from the validation ranking). `eval_protocol` names the one that picked the "
    "best epoch (RecBole's unless a run says otherwise)."
)
# Run-record columns of the main table: (key, header, decimals).
RUN_COLUMNS: list[tuple[str, str, int]] = [
    ("best_valid_epoch", "best epoch", 0),
    ("epochs_run", "epochs", 0),
    ("train_samples_per_second", "train samples / s", 0),
    ("time_to_best_seconds", "s to best", 0),
    ("wall_seconds", "wall s", 0),
    ("peak_rss_mib", "peak RSS MiB", 0),
    ("trainable_params", "trainable params", 0),
]
NA = "n/a"
DASH = "–"


def model_order(runs: list[dict]) -> list[str]:
    """The labels of ``runs``: the default models in their order, then others as they first appear."""
    seen = list(dict.fromkeys(run["model"] for run in runs))
    return [label for label in DEFAULT_MODELS if label in seen] + [
        label for label in seen if label not in DEFAULT_MODELS
    ]


def _mean_std(values: list[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (None for a single value: a deviation of one sample is undefined)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def summarize(runs: list[dict]) -> list[dict]:
    """One row per model label: seeds, failed seeds, mean and std per column (None where no run has a value),
    and how many runs ended at their epoch cap."""
    rows = []
    for label in model_order(runs):
        ok = [run for run in runs if run["model"] == label and run.get("status") == "ok"]
        row = {
            "model": label,
            "n_seeds": len(ok),
            "seeds": sorted(run["seed"] for run in ok),
            "failed_seeds": sorted(run["seed"] for run in runs if run["model"] == label and run.get("status") != "ok"),
            "at_cap": sum(1 for run in ok if _at_cap(run)),
        }
        for key in METRIC_COLUMNS:
            values = [run["test"][key] for run in ok if key in (run.get("test") or {})]
            row[key] = _mean_std(values) if values else None
        for key in FILTERED_COLUMNS:
            values = [run["test_viewed_filtered"][key] for run in ok if key in (run.get("test_viewed_filtered") or {})]
            row[f"{key} filtered"] = _mean_std(values) if values else None
        for key, _, _ in RUN_COLUMNS:
            values = [run[key] for run in ok if run.get(key) is not None]
            row[key] = _mean_std(values) if values else None
        rows.append(row)
    return rows


def _number(value: float, decimals: int) -> str:
    text = f"{value:,.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.,") else text  # -0.3 rounds to 0, not -0


def _cell(stat: dict | None, decimals: int, always_std: bool = False) -> str:
    """``mean ± std``; one seed: the value alone, or ``value ± n/a`` where a deviation is always shown."""
    if stat is None:
        return NA
    if stat["std"] is None:
        return _number(stat["mean"], decimals) + (f" ± {NA}" if always_std else "")
    return f"{_number(stat['mean'], decimals)} ± {_number(stat['std'], decimals)}"


def _percent(value: float) -> str:
    return f"{value:+.1%}"


def _difference(entry: dict) -> str:
    if entry["relative_difference"] is None:
        return NA
    text = _percent(entry["relative_difference"])
    if entry["ci95"]:
        low, high = entry["ci95"]
        text += f" [{_percent(low)}, {_percent(high)}]"
    return text


def _p(value: float) -> str:
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def _comparison_cells(comparisons: dict | None, label: str, metric: str) -> tuple[str, str]:
    """(relative difference [CI], p) of ``label`` against the reference, a dash for the reference itself."""
    entry = ((comparisons or {}).get("models") or {}).get(label)
    if entry is None:
        return NA, NA
    if entry.get("reference"):
        return DASH, DASH
    if "note" in entry:
        return NA, "no per-user metrics"
    if metric not in entry:
        return NA, NA
    return _difference(entry[metric]), _p(entry[metric]["p_value"])


def _seeds_cell(row: dict) -> str:
    text = ", ".join(map(str, row["seeds"])) or "none"
    if row["failed_seeds"]:
        text += f" ({', '.join(map(str, row['failed_seeds']))} failed)"
    return text


def _markdown(frame: pd.DataFrame) -> str:
    """A pipe table of text cells: the first two columns left-aligned, numbers right-aligned."""
    align = [":---", ":---"] + ["---:"] * (frame.shape[1] - 2)
    rows = [list(frame.columns), align, *frame.astype(str).to_numpy().tolist()]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main_table(results: dict) -> pd.DataFrame:
    """The main table as text cells, one row per model label."""
    comparisons = results.get("comparisons")
    reference = (comparisons or {}).get("reference")
    rows = []
    for row in summarize(results["runs"]):
        cells = {"model": row["model"], "seeds": _seeds_cell(row)}
        for key in METRIC_COLUMNS:
            cells[key] = _cell(row[key], 4, always_std=True)
        for key in FILTERED_COLUMNS:
            cells[f"{key} filtered"] = _cell(row[f"{key} filtered"], 4, always_std=True)
        if reference:
            difference, p = _comparison_cells(comparisons, row["model"], "ndcg@10")
            cells[f"ndcg@10 vs {reference} (95% CI)"] = difference
            cells[f"p vs {reference}"] = p
            difference, p = _comparison_cells(comparisons, row["model"], "ndcg@10_filtered")
            cells[f"filtered ndcg@10 vs {reference} (95% CI)"] = difference
            cells[f"p (filtered) vs {reference}"] = p
        for key, header, decimals in RUN_COLUMNS:
            cells[header] = _cell(row[key], decimals)
        if row["at_cap"]:
            cells["epochs"] += " (cap)" if row["n_seeds"] == 1 else f" (cap: {row['at_cap']} of {row['n_seeds']})"
        rows.append(cells)
    return pd.DataFrame(rows)


def comparison_table(results: dict) -> pd.DataFrame | None:
    """Per model with a paired test: paired seeds, users, and per metric the relative difference [CI] and p
    against the reference (None when no model has one)."""
    comparisons = results.get("comparisons")
    if not comparisons:
        return None
    rows = []
    for label in model_order(results["runs"]):
        entry = comparisons["models"].get(label) or {}
        if "users" not in entry:
            continue
        cells = {"model": label, "paired seeds": ", ".join(map(str, entry["seeds"])), "users": f"{entry['users']:,}"}
        for metric in comparisons["metrics"]:
            difference, p = _comparison_cells(comparisons, label, metric)
            cells[f"{metric} vs {comparisons['reference']} (95% CI)"], cells[f"p ({metric})"] = difference, p
        rows.append(cells)
    return pd.DataFrame(rows) if rows else None


def _unpaired(results: dict) -> list[str]:
    """Models that have no paired test for lack of per-user metrics."""
    models = ((results.get("comparisons") or {}).get("models")) or {}
    return [label for label in model_order(results["runs"]) if "note" in (models.get(label) or {})]


def _settings_text(settings: dict) -> str:
    if not settings:
        return "none"
    return " ".join(f"`--{key}={json.dumps(value)}`" for key, value in settings.items())


def _duration(seconds: float) -> str:
    """``12862.4`` -> ``"12,862 s (3 h 34 min)"``."""
    minutes = round(seconds / 60)
    return f"{seconds:,.0f} s ({minutes // 60} h {minutes % 60} min)"


def _commands_text(results: dict) -> str:
    """The command, or the commands of an interrupted and resumed benchmark, in order."""
    commands = results.get("commands") or [results["command"]]
    text = f"`{commands[0]}`"
    if len(commands) > 1:
        text += ", resumed by " + ", then ".join(f"`{c}`" for c in commands[1:])
    return text


def _at_cap(run: dict) -> bool:
    """Whether a run's training was ended by its budget (epochs or train_time_budget), not by early stopping."""
    return run.get("stopped_early") is False or bool(run.get("time_budget_spent"))


def _notes(results: dict) -> list[str]:
    """Sentences on what the table's cells need said: caps, external models, concurrency, missing values."""
    runs = [run for run in results["runs"] if run.get("status") == "ok"]
    notes = []
    if any(_at_cap(run) for run in runs):
        budget = " or its train_time_budget" if any(run.get("time_budget_spent") for run in runs) else ""
        notes.append(
            f"(cap): the run ended at its epoch cap{budget} rather than by early stopping; it may not have converged."
        )
    resumed = [f"{run['model']} seed {run['seed']}" for run in runs if run.get("resumed")]
    if resumed:
        notes.append(
            f"Interrupted with the benchmark and continued from the last epoch's checkpoint: {', '.join(resumed)}; "
            "wall s counts the continuing process only, the training times and counts the whole run."
        )
    for run in runs:
        if run.get("recbole_model", run["model"]) != "GALRec":
            continue
        used = run.get("external_checkpoints")
        if used:
            names = " and ".join(f"{name} seed {run['seed']} (`{path}`)" for name, path in used.items())
            rest = [name for name in EXTERNAL_LABELS if name not in used]
            notes.append(
                f"{run['model']} seed {run['seed']} used this benchmark's {names} as its external models"
                + (f"; it trained its own {' and '.join(rest)}." if rest else ".")
            )
        else:
            notes.append(
                f"{run['model']} seed {run['seed']} trained its own external models inside its run "
                "(its profile's `external_epochs`), not this benchmark's SASRec and LightGCN runs."
            )
    concurrent = sorted({run["jobs"] for run in runs if (run.get("jobs") or 1) > 1})
    if concurrent:
        notes.append(
            f"Timings were taken with {' or '.join(map(str, concurrent))} runs at once (--jobs): runs shared "
            "the machine's CPUs and GPU, so they are slower than a run alone would be."
        )
    missing = [key for key, _, _ in RUN_COLUMNS if any(run.get(key) is None for run in runs)]
    if missing:
        notes.append(f"{NA}: not recorded for runs made before the benchmark measured it ({', '.join(missing)}).")
    return notes


def markdown_table(results: dict) -> str:
    """The markdown report of a results dict: header, tables, notes, how it was produced."""
    profile = results.get("profile")
    files = results.get("config_files") or []
    comparisons = results.get("comparisons")
    data = (results.get("data") or {}).get("files") or {}
    seeds = sorted({run["seed"] for run in results["runs"]})
    start = results.get("galrec_start")
    lines = [
        f"# Benchmark on {results['dataset']}",
        "",
        f"- profile: {f'`{profile}` (results are stated as obtained under it)' if profile else 'none'}",
        f"- settings applied to every model: {_settings_text(results.get('settings') or {})}",
        f"- config files: {' '.join(f'`{f}`' for f in files) if files else 'none'}",
        f"- seeds: {', '.join(map(str, seeds)) or 'none'}",
        "- data: " + (", ".join(f"`{name}` (sha256 {digest[:12]})" for name, digest in data.items()) or NA),
        f"- reference for the paired tests: {comparisons['reference'] if comparisons else 'none'}",
        *([f"- GALRec's external SASRec: the same seed's {start} run"] if start not in (None, "SASRec") else []),
        "",
        "Test metrics of the best validation checkpoint; mean ± sample standard deviation over seeds (n/a with "
        "one seed). Epochs are numbered from 0, as RecBole logs them (best epoch -1: the validation before training, "
        "GALRec's start); train samples / s counts the training "
        "samples (prompts for GALRec) of all training passes over their time; s to best is the time from the "
        "start of training to the end of the best validation; wall s is the whole run (data, training, "
        "validation, test).",
        "",
        PROTOCOLS_TEXT,
        "",
        _markdown(main_table(results)),
    ]
    table = comparison_table(results)
    if table is not None:
        lines += [
            "",
            f"## Paired comparison with {comparisons['reference']} over test users",
            "",
            f"Relative difference of the mean: {comparisons['interval']}; p: {comparisons['test']}.",
            "",
            _markdown(table),
        ]
    lines += breakdown_lines(comparisons, model_order(results["runs"]))
    unpaired = _unpaired(results)
    if unpaired:
        lines += [
            "",
            f"No paired test for {', '.join(unpaired)}: their runs (or the reference's of the same seeds) were "
            "recorded before per-user metrics were kept; running them again gives one.",
        ]
    notes = _notes(results)
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    machine = results.get("machine") or {}
    lines += [
        "",
        f"Produced by {_commands_text(results)} on {machine.get('cpu_model') or machine.get('platform')}, "
        f"Python {machine.get('python')}, torch {machine.get('torch')}, {machine.get('cpu_count')} CPUs, "
        f"GPU: {machine.get('cuda_device') or 'none'}. "
        f"The runs took {_duration(sum(run.get('wall_seconds') or 0.0 for run in results['runs']))} of wall "
        f"time in all. Each run's record is in `{results['dataset']}.json`.",
    ]
    return "\n".join(lines) + "\n"


def write_markdown(results: dict, path: Path) -> None:
    """Write the markdown report of ``results`` to ``path`` atomically."""
    atomic_write_text(path, markdown_table(results))


def write_chart(results: dict, path: Path) -> None:
    """Bar charts: NDCG@10 and Hit@10 per model (error bars: std over seeds); training samples per second."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [row for row in summarize(results["runs"]) if row["n_seeds"]]
    fig = Figure(figsize=(max(8.0, 1.4 * len(rows) + 4), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    quality, speed = fig.subplots(1, 2, width_ratios=[3, 2])
    positions = list(range(len(rows)))
    labels = [row["model"] for row in rows]
    width = 0.26
    bars = ((-width, "ndcg@10", "NDCG@10"), (0.0, "ndcg@10 filtered", "NDCG@10 filtered"), (width, "hit@10", "Hit@10"))
    for offset, key, name in bars:
        means = [row[key]["mean"] if row[key] else 0.0 for row in rows]
        stds = [(row[key]["std"] or 0.0) if row[key] else 0.0 for row in rows]
        quality.bar([p + offset for p in positions], means, width, yerr=stds, capsize=3, label=name)
    quality.set_xticks(positions, labels, rotation=30, ha="right")
    quality.set_ylabel("test score (mean ± std over seeds)")
    quality.legend()
    quality.set_title(f"{results['dataset']}: ranking quality")
    speeds = [row["train_samples_per_second"]["mean"] if row["train_samples_per_second"] else 0.0 for row in rows]
    speed.bar(positions, [max(value, 1e-3) for value in speeds], 0.6, color="tab:gray")
    speed.set_yscale("log")
    speed.set_xticks(positions, labels, rotation=30, ha="right")
    speed.set_ylabel("training samples per second (log scale)")
    profile = results.get("profile")
    speed.set_title(f"training speed{f' (profile {profile})' if profile else ''}")
    save_png(fig, path)


def default_reference(results: dict) -> str | None:
    """SASRec when the results hold a successful SASRec run, else none."""
    return "SASRec" if any(run["model"] == "SASRec" and run.get("status") == "ok" for run in results["runs"]) else None


def write_outputs(results: dict, out: Path) -> None:
    """Compute the paired comparison, then rewrite the JSON, markdown and chart of a benchmark."""
    reference = results.get("reference") or default_reference(results)
    results["comparisons"] = compare(results, out, reference)
    dataset = results["dataset"]
    atomic_write_text(out / f"{dataset}.json", json.dumps(results, indent=2))
    write_markdown(results, out / f"{dataset}.md")
    try:
        write_chart(results, out / f"{dataset}.png")
    except ImportError:
        logger.warning("matplotlib is not installed (pip install -e '.[bench]'): no chart written")


__all__ = ["PER_USER_METRICS", "markdown_table", "summarize", "write_outputs"]
