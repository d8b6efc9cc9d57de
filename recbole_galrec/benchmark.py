"""Benchmark: train and evaluate several models on one dataset under one protocol, over several seeds.

Usage::

    python -m recbole_galrec.benchmark --dataset=amazon-beauty --models=GALRec,SASRec,Pop --seeds=3 \\
        --output=bench/ [--config_files="a.yaml b.yaml"] [--profile=cpu] [--key=value ...]

Every model gets the same dataset, split and evaluator (this package's ``properties/`` fix the protocol and
``load_col`` per dataset), the same config files and ``--key=value`` overrides, and the seeds
``2020, 2021, ...`` (``--seeds=N`` runs N of them). A model label is a RecBole model name or a variant from
:data:`MODEL_LABELS` (``SASRec-BPR``); a variant's own keys win over the common overrides.

Config precedence for each run, highest first: the seed > the label's keys > ``--key=value`` >
``--config_files`` > ``--profile`` > ``properties/`` > RecBole's defaults.

Each run executes in a fresh Python process (peak memory is then per run); its output goes to
``OUTPUT/runs/<dataset>/<label>-seed<seed>.log``. After every run the benchmark rewrites, atomically:

- ``OUTPUT/<dataset>.json``: the settings, the machine and one record per run;
- ``OUTPUT/<dataset>.md``: a table of mean ± sample std over seeds per model;
- ``OUTPUT/<dataset>.png``: NDCG@10 and Hit@10 per model, and seconds per epoch.

Running the same command again skips every (label, seed) already recorded with status ``ok`` and retries the
failed ones; a JSON file made with other settings, profile or config files is refused, not mixed.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

from recbole_galrec.cli import parse_overrides
from recbole_galrec.config import available_profiles, check_user_settings, profile_file, profile_files
from recbole_galrec.errors import ConfigError, GALRecError

logger = logging.getLogger(__name__)

# Label -> (RecBole model name, config keys of that variant). A label not listed is a model name itself.
MODEL_LABELS: dict[str, tuple[str, dict]] = {
    "GALRec": ("GALRec", {}),
    "SASRec": ("SASRec", {}),
    # SASRec trained with BPR and one uniform negative per positive: the setting much of the literature cites.
    "SASRec-BPR": (
        "SASRec",
        {
            "loss_type": "BPR",
            "train_neg_sample_args": {
                "distribution": "uniform",
                "sample_num": 1,
                "alpha": 1.0,
                "dynamic": False,
                "candidate_num": 0,
            },
        },
    ),
    "BERT4Rec": ("BERT4Rec", {}),
    "GRU4Rec": ("GRU4Rec", {}),
    "LightGCN": ("LightGCN", {}),
    "Pop": ("Pop", {}),
}
DEFAULT_MODELS = list(MODEL_LABELS)
FIRST_SEED = 2020
WORKER_FLAG = "--_one-run"
# Keys the benchmark sets itself; an override of one of them would be silently lost.
RESERVED_KEYS = {"seed": "--seeds", "model": "--models", "dataset": "--dataset"}

# Columns of the markdown table: (key, header, decimals). Metric keys are read from a run's "test" dict.
METRIC_COLUMNS = ["hit@10", "ndcg@10", "hit@20", "ndcg@20", "mrr@10"]
TABLE_COLUMNS: list[tuple[str, str, int]] = [
    *[(key, key, 4) for key in METRIC_COLUMNS],
    ("best_valid_epoch", "best epoch", 1),
    ("epochs_run", "epochs", 1),
    ("seconds_per_epoch", "s / epoch", 3),
    ("wall_seconds", "wall s", 0),
    ("peak_rss_mib", "peak RSS MiB", 0),
    ("trainable_params", "trainable params", 0),
]
RUN_COLUMNS = [key for key, _, _ in TABLE_COLUMNS if key not in METRIC_COLUMNS]  # read from the run record
# Every key of a run record; a failed run has None where it has no value.
RUN_KEYS = [
    "model",
    "recbole_model",
    "seed",
    "status",
    "error",
    "test",
    "best_valid_score",
    "best_valid_epoch",
    "epochs_run",
    "seconds_per_epoch",
    "train_seconds",
    "test_seconds",
    "wall_seconds",
    "peak_rss_mib",
    "peak_gpu_mib",
    "trainable_params",
    "total_params",
    "log",
]
ERROR_LINES = 20


# ----------------------------------------------------------------------------------------------------------
# Labels, profiles and per-run configuration


def resolve_label(label: str) -> tuple[str, dict]:
    """The RecBole model name and the extra config of a model label; unknown labels raise ConfigError."""
    if label in MODEL_LABELS:
        model, extra = MODEL_LABELS[label]
        return model, copy.deepcopy(extra)
    from recbole_galrec.utils import known_models

    if label in known_models():
        return label, {}
    raise ConfigError(
        f"Unknown model label '{label}'. Known labels: {', '.join(MODEL_LABELS)}; "
        "any RecBole model name works too, spelt as RecBole spells it (e.g. NARM, Caser, BPR)."
    )


def run_config(label: str, overrides: dict, seed: int) -> tuple[str, dict]:
    """The model name and config dict of one run: common overrides, then the label's keys, then the seed."""
    model, extra = resolve_label(label)
    return model, {**overrides, **extra, "seed": seed}


def seeds_for(count: int) -> list[int]:
    """The seeds of a benchmark of ``count`` seeds: 2020, 2021, ..."""
    if count < 1:
        raise ConfigError(f"--seeds must be at least 1, not {count}.")
    return [FIRST_SEED + i for i in range(count)]


def check_overrides(overrides: dict) -> None:
    """Refuse overrides of keys the benchmark sets itself."""
    for key, option in RESERVED_KEYS.items():
        if key in overrides:
            raise ConfigError(f"--{key} cannot be overridden in a benchmark: it is set by {option}.")


# ----------------------------------------------------------------------------------------------------------
# Files


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: no reader sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_stem(label: str, seed: int) -> str:
    """File-name stem of one run's files."""
    safe = re.sub(r"[^\w.-]", "_", label)
    return f"{safe}-seed{seed}"


def machine_info() -> dict:
    """Platform, Python, torch, CPU count and CUDA device (or None) of this machine."""
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "cuda_device": cuda,
    }


def load_results(path: Path, header: dict) -> dict:
    """The results file at ``path`` (a new one if absent), checked to hold runs of the same settings."""
    if not path.is_file():
        return {**header, "commands": [header["command"]], "runs": []}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path} is not valid JSON ({err}); move it away to start a new benchmark."
        ) from None
    # The report names one machine and one configuration for all its runs: a resumed benchmark must match them
    # (timings of two machines, or results of two torch versions, are not one comparison).
    for key in ("dataset", "profile", "settings", "config_files", "machine"):
        if results.get(key) != header[key]:
            raise ConfigError(
                f"{path} holds runs made with {key} {results.get(key)!r}, not {header[key]!r}: "
                "use another --output, or move the file away to start over."
            )
    commands = list(results.get("commands") or [results.get("command")])  # files of older versions: "command"
    if header["command"] not in commands:
        commands.append(header["command"])
    return {**results, **header, "commands": commands, "runs": list(results.get("runs", []))}


def record_run(results: dict, run: dict) -> None:
    """Put ``run`` into ``results``, replacing an earlier record of the same label and seed."""
    runs = results["runs"]
    for i, old in enumerate(runs):
        if (old["model"], old["seed"]) == (run["model"], run["seed"]):
            runs[i] = run
            return
    runs.append(run)


def done_runs(results: dict) -> set[tuple[str, int]]:
    """(label, seed) pairs already recorded with status ok."""
    return {(run["model"], run["seed"]) for run in results["runs"] if run.get("status") == "ok"}


# ----------------------------------------------------------------------------------------------------------
# The worker: one run in its own process


def peak_memory_mib() -> tuple[float, float | None]:
    """Peak resident memory of this process and peak CUDA memory allocated (None without CUDA), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mib = rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux
    gpu_mib = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gpu_mib = torch.cuda.max_memory_allocated() / 2**20
    return rss_mib, gpu_mib


def empty_run(label: str, model: str, seed: int) -> dict:
    """A run record with every key, the values still unknown."""
    return {**dict.fromkeys(RUN_KEYS), "model": label, "recbole_model": model, "seed": seed}


def run_from_result(run: dict, result: dict) -> dict:
    """Fill a run record from the dict ``run_recbole_galrec`` returns."""
    return {
        **run,
        "status": "ok",
        "test": result["test_result"],
        "best_valid_score": result["best_valid_score"],
        "best_valid_epoch": result["best_valid_epoch"],
        "epochs_run": result["epochs_run"],
        "seconds_per_epoch": result["seconds_per_epoch"],
        "train_seconds": result["train_seconds"],
        "test_seconds": result["test_seconds"],
        "trainable_params": result["parameters"]["trainable"],
        "total_params": result["parameters"]["total"],
    }


def last_lines(text: str, count: int = ERROR_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-count:])


def worker(spec_file: str) -> int:
    """Execute the run described by ``spec_file`` and write its record; failures are recorded, not raised."""
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    run = empty_run(spec["label"], spec["model"], spec["seed"])
    try:
        from recbole_galrec.quick_start import run_recbole_galrec

        result = run_recbole_galrec(
            spec["model"],
            spec["dataset"],
            config_file_list=spec["config_files"],
            config_dict=spec["config_dict"],
            result_file=spec["result_file"],
        )
        run = run_from_result(run, result)
    except Exception:  # any failure of a run is recorded, and the benchmark goes on
        run["status"] = "failed"
        run["error"] = last_lines(traceback.format_exc())
        traceback.print_exc()
    run["peak_rss_mib"], run["peak_gpu_mib"] = peak_memory_mib()
    atomic_write_text(Path(spec["record_file"]), json.dumps(run, indent=2))
    return 0 if run["status"] == "ok" else 1


def execute_run(
    label: str, seed: int, dataset: str, profile: str | None, files: list[str], overrides: dict, out: Path
) -> dict:
    """Run one (label, seed) in a fresh Python process and return its record."""
    model, config_dict = run_config(label, overrides, seed)
    files = profile_files(profile, model) + files
    folder = out / "runs" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    stem = run_stem(label, seed)
    spec = {
        "label": label,
        "model": model,
        "seed": seed,
        "dataset": dataset,
        "config_files": files,
        "config_dict": config_dict,
        "result_file": str(folder / f"{stem}.result.json"),
        "record_file": str(folder / f"{stem}.record.json"),
    }
    spec_file, log_file, record_file = (
        folder / f"{stem}.spec.json",
        folder / f"{stem}.log",
        Path(spec["record_file"]),
    )
    spec_file.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    record_file.unlink(missing_ok=True)
    start = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recbole_galrec.benchmark", f"{WORKER_FLAG}={spec_file}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            proc.wait()
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): the run goes down with the benchmark
            _stop(proc)
            raise
    wall = time.perf_counter() - start
    if record_file.is_file():
        run = json.loads(record_file.read_text(encoding="utf-8"))
    else:  # the process died before writing its record (killed, out of memory, ...)
        run = empty_run(label, model, seed)
        run["status"] = "failed"
        tail = last_lines(log_file.read_text(encoding="utf-8", errors="replace"))
        run["error"] = f"the run's process exited with status {proc.returncode}\n{tail}"
    run["wall_seconds"] = wall
    run["log"] = str(log_file.relative_to(out))
    return run


def _stop(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """Terminate a worker process, killing it if it has not exited after ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _interrupt_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # a terminated benchmark stops its run and exits as on Ctrl-C


# ----------------------------------------------------------------------------------------------------------
# Summary, table and chart


def _mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def summarize(runs: list[dict]) -> list[dict]:
    """One row per model label (the default models in their order, then others as they first appear): seeds,
    failures, mean and std per column."""
    seen = list(dict.fromkeys(run["model"] for run in runs))
    labels = [label for label in DEFAULT_MODELS if label in seen]
    labels += [label for label in seen if label not in DEFAULT_MODELS]
    rows = []
    for label in labels:
        ok = [run for run in runs if run["model"] == label and run.get("status") == "ok"]
        row = {
            "model": label,
            "n_seeds": len(ok),
            "n_failed": sum(1 for run in runs if run["model"] == label and run.get("status") != "ok"),
            "seeds": sorted(run["seed"] for run in ok),
        }
        for key in METRIC_COLUMNS:
            values = [run["test"][key] for run in ok if key in (run.get("test") or {})]
            row[key] = _mean_std(values) if values else None
        for key in RUN_COLUMNS:
            values = [run[key] for run in ok if run.get(key) is not None]
            row[key] = _mean_std(values) if values else None
        rows.append(row)
    return rows


def _cell(stat: dict | None, decimals: int) -> str:
    if stat is None:
        return "–"
    if decimals == 0:
        return f"{stat['mean']:,.0f} ± {stat['std']:,.0f}"
    return f"{stat['mean']:.{decimals}f} ± {stat['std']:.{decimals}f}"


def _settings_text(settings: dict) -> str:
    if not settings:
        return "none"
    return " ".join(f"`--{key}={json.dumps(value)}`" for key, value in settings.items())


def markdown_table(results: dict) -> str:
    """The markdown report of a results dict: header, one row per model label, how it was produced."""
    profile = results.get("profile")
    files = results.get("config_files") or []
    lines = [
        f"# Benchmark on {results['dataset']}",
        "",
        f"- profile: {f'`{profile}` (results are stated as obtained under it)' if profile else 'none'}",
        f"- settings applied to every model: {_settings_text(results.get('settings') or {})}",
        f"- config files: {' '.join(f'`{f}`' for f in files) if files else 'none'}",
        "",
        "Test metrics of the best validation checkpoint; mean ± sample standard deviation over seeds. "
        "Epochs are numbered from 0, as RecBole logs them; wall s is the whole run (data, training, "
        "validation, test).",
        "",
        "| model | seeds | " + " | ".join(header for _, header, _ in TABLE_COLUMNS) + " |",
        "|---|---:|" + "---:|" * len(TABLE_COLUMNS),
    ]
    for row in summarize(results["runs"]):
        seeds = str(row["n_seeds"]) + (f" ({row['n_failed']} failed)" if row["n_failed"] else "")
        cells = [_cell(row[key], decimals) for key, _, decimals in TABLE_COLUMNS]
        lines.append(f"| {row['model']} | {seeds} | " + " | ".join(cells) + " |")
    machine = results.get("machine") or {}
    lines += [
        "",
        f"Produced by {_commands_text(results)} on {machine.get('platform')}, "
        f"Python {machine.get('python')}, torch {machine.get('torch')}, {machine.get('cpu_count')} CPUs, "
        f"GPU: {machine.get('cuda_device') or 'none'}. "
        f"The runs took {_duration(sum(run.get('wall_seconds') or 0.0 for run in results['runs']))} of wall "
        f"time in all. Each run's record is in `{results['dataset']}.json`.",
    ]
    return "\n".join(lines) + "\n"


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


def write_markdown(results: dict, path: Path) -> None:
    """Write the markdown report of ``results`` to ``path`` atomically."""
    atomic_write_text(path, markdown_table(results))


def write_chart(results: dict, path: Path) -> None:
    """Bar charts: NDCG@10 and Hit@10 per model with std error bars; seconds per epoch (log scale)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [row for row in summarize(results["runs"]) if row["n_seeds"]]
    fig = Figure(figsize=(max(8.0, 1.4 * len(rows) + 4), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    quality, speed = fig.subplots(1, 2, width_ratios=[3, 2])
    positions = list(range(len(rows)))
    labels = [row["model"] for row in rows]
    width = 0.38
    for offset, key, name in ((-width / 2, "ndcg@10", "NDCG@10"), (width / 2, "hit@10", "Hit@10")):
        means = [row[key]["mean"] if row[key] else 0.0 for row in rows]
        stds = [row[key]["std"] if row[key] else 0.0 for row in rows]
        quality.bar([p + offset for p in positions], means, width, yerr=stds, capsize=3, label=name)
    quality.set_xticks(positions, labels, rotation=30, ha="right")
    quality.set_ylabel("test score (mean ± std over seeds)")
    quality.legend()
    quality.set_title(f"{results['dataset']}: ranking quality")
    seconds = [
        max(row["seconds_per_epoch"]["mean"], 1e-3) if row["seconds_per_epoch"] else 1e-3 for row in rows
    ]
    speed.bar(positions, seconds, 0.6, color="tab:gray")
    speed.set_yscale("log")
    speed.set_xticks(positions, labels, rotation=30, ha="right")
    speed.set_ylabel("seconds per training epoch (log scale)")
    profile = results.get("profile")
    speed.set_title(f"training speed{f' (profile {profile})' if profile else ''}")
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=110)
    os.replace(tmp, path)


def write_outputs(results: dict, out: Path) -> None:
    """Rewrite the JSON, markdown and chart of a benchmark."""
    dataset = results["dataset"]
    atomic_write_text(out / f"{dataset}.json", json.dumps(results, indent=2))
    write_markdown(results, out / f"{dataset}.md")
    try:
        write_chart(results, out / f"{dataset}.png")
    except ImportError:
        logger.warning("matplotlib is not installed (pip install -e '.[bench]'): no chart written")


# ----------------------------------------------------------------------------------------------------------
# The benchmark


def run_benchmark(
    dataset: str,
    labels: list[str],
    seeds: list[int],
    out: Path,
    config_files: list[str],
    overrides: dict,
    profile: str | None,
    command: str,
) -> dict:
    """Run each (label, seed) not yet recorded as ok, rewriting the outputs after each run."""
    for label in labels:
        resolve_label(label)
    check_overrides(overrides)
    profile_file(profile)  # an unknown profile fails before any run
    check_user_settings(config_files, overrides)
    files = [os.path.abspath(path) for path in config_files]
    out.mkdir(parents=True, exist_ok=True)
    header = {
        "dataset": dataset,
        "command": command,
        "profile": profile or None,
        "config_files": config_files,
        "machine": machine_info(),
        "settings": overrides,
    }
    header = json.loads(json.dumps(header))  # as it reads back from the file, for the comparison on resume
    results = load_results(out / f"{dataset}.json", header)
    plan = [(label, seed) for label in labels for seed in seeds]
    done = done_runs(results)
    start = time.perf_counter()
    for index, (label, seed) in enumerate(plan, 1):
        prefix = f"[{index}/{len(plan)}] {label} seed {seed}"
        if (label, seed) in done:
            logger.info(f"{prefix}: skipped, already ok in {out / f'{dataset}.json'}")
            continue
        logger.info(f"{prefix}: start (elapsed {time.perf_counter() - start:.1f} s)")
        run = execute_run(label, seed, dataset, profile, files, overrides, out)
        record_run(results, run)
        write_outputs(results, out)
        logger.info(
            f"{prefix}: {_run_outcome(run)}, {run['wall_seconds']:.1f} s "
            f"(elapsed {time.perf_counter() - start:.1f} s)"
        )
    write_outputs(results, out)
    logger.info(f"results: {out / f'{dataset}.json'}, {out / f'{dataset}.md'}, {out / f'{dataset}.png'}")
    return results


def failed_runs(results: dict, labels: list[str], seeds: list[int]) -> list[dict]:
    """The runs of this plan that are recorded as failed (logged, with where to look)."""
    wanted = {(label, seed) for label in labels for seed in seeds}
    failed = [
        run for run in results["runs"] if (run["model"], run["seed"]) in wanted and run["status"] != "ok"
    ]
    for run in failed:
        logger.warning(
            f"{run['model']} seed {run['seed']} failed (log: {run['log']}); the same command retries it"
        )
    return failed


def _run_outcome(run: dict) -> str:
    if run["status"] == "ok":
        return f"ok, ndcg@10 {run['test'].get('ndcg@10', float('nan')):.4f}"
    first = (run.get("error") or "").strip().splitlines()[-1:] or ["unknown error"]
    return f"FAILED ({first[0]}; log: {run['log']})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_galrec.benchmark",
        description="Benchmark several models on one dataset over several seeds. "
        "Other --key=value pairs override config keys for every model.",
        allow_abbrev=False,
    )
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (default: ml-100k)")
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help=f"comma-separated model labels (default: {','.join(DEFAULT_MODELS)}); "
        "any RecBole model name works too",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help=f"number of seeds: {FIRST_SEED}, {FIRST_SEED + 1}, ... (default: 1)",
    )
    parser.add_argument("--output", default="benchmark", help="folder of the results (default: benchmark)")
    parser.add_argument("--config_files", default="", help='space-separated YAML files: "a.yaml b.yaml"')
    parser.add_argument(
        "--profile", default=None, help=f"config profile for every model: {', '.join(available_profiles())}"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith(f"{WORKER_FLAG}="):
        return worker(argv[0].partition("=")[2])
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logger.setLevel(logging.INFO)
    args, rest = build_parser().parse_known_args(argv)
    try:
        labels = [label.strip() for label in args.models.split(",") if label.strip()]
        if not labels:
            raise ConfigError("--models names no model.")
        seeds = seeds_for(args.seeds)
        results = run_benchmark(
            dataset=args.dataset,
            labels=labels,
            seeds=seeds,
            out=Path(args.output),
            config_files=args.config_files.split(),
            overrides=parse_overrides(rest),
            profile=args.profile,
            command=shlex.join(["python", "-m", "recbole_galrec.benchmark", *argv]),
        )
    except GALRecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"interrupted: finished runs are kept in {args.output}; the same command resumes.",
            file=sys.stderr,
        )
        return 130
    return 1 if failed_runs(results, labels, seeds) else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    sys.exit(main())
