"""A hyperparameter search on the validation split: one model, one seed, named configurations tried one after
another, each in its own process, chosen by the best validation score alone.

    python -m recbole_galrec.benchmark.search --model=SASRec --dataset=amazon-beauty --data_path=DATA \\
        --grid=docs/search/sasrec-amazon-beauty.yaml --profile=cpu --output=search

The grid file is YAML: ``base`` (settings every configuration gets) and ``configs`` (name -> settings), e.g.::

    base: {epochs: 200, stopping_step: 10}
    configs:
      recbole-default: {}
      one-block: {n_layers: 1, n_heads: 1, hidden_dropout_prob: 0.2, attn_dropout_prob: 0.2}

Each configuration writes ``<output>/<name>.json`` (the run's result) and ``<name>.log``; a configuration whose
result exists is not run again, so the same command goes on after an interruption. ``--jobs=N`` runs N
configurations at once (on a GPU machine, whose cores and GPU one small run leaves mostly idle); further
``--key=value`` arguments apply to every configuration (e.g. ``--train_time_budget=3600``). ``<output>/search.md`` and
``search.json`` list every configuration with its best validation NDCG@10 under both protocols (RecBole's and
viewed filtered), its best epoch and its cost, best first by ``--select`` (the protocol that picks the best
epoch and the winner; default RecBole's). Test metrics are never shown: the search must not look at them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from recbole_galrec.benchmark.plan import run_environment
from recbole_galrec.benchmark.store import atomic_write_text, public_path
from recbole_galrec.errors import ConfigError

PROTOCOL_KEYS = {"recbole": "best_valid_result", "viewed_filtered": "valid_viewed_filtered"}


def read_grid(path: Path) -> tuple[dict, dict[str, dict]]:
    """``(base, {name: settings})`` of a grid file; a clear error for a malformed one."""
    try:
        grid = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the grid file {path}: {err}") from err
    if not isinstance(grid, dict) or not isinstance(grid.get("configs"), dict) or not grid["configs"]:
        raise ConfigError(f"{path}: a grid file holds 'configs:' (name -> settings) and optionally 'base:'.")
    base = grid.get("base") or {}
    configs = {str(name): settings or {} for name, settings in grid["configs"].items()}
    for name, settings in {"base": base, **configs}.items():
        if not isinstance(settings, dict):
            raise ConfigError(f"{path}: '{name}' must be a mapping of config keys, got {settings!r}.")
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigError(f"{path}: configuration name '{name}' must be letters, digits, '-', '_' or '.'.")
    return base, configs


def run_one(args, name: str, settings: dict, out: Path) -> None:
    """Run one configuration in its own process; its result and log land in ``out``."""
    config_file = out / f"{name}.yaml"
    config_file.write_text(yaml.safe_dump(settings, sort_keys=True), encoding="utf-8")
    command = [sys.executable, "-m", "recbole_galrec.cli", f"--model={args.model}", f"--dataset={args.dataset}"]
    command += [f"--config_files={config_file}", f"--result_file={out / (name + '.json')}"]
    if args.profile:
        command.append(f"--profile={args.profile}")
    if args.data_path:
        command.append(f"--data_path={args.data_path}")
    command += [f"--seed={args.seed}", "--show_progress=False", f"--checkpoint_dir={out / 'checkpoints' / name}"]
    command += args.overrides
    start = time.perf_counter()
    with open(out / f"{name}.log", "w", encoding="utf-8") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    status = "ok" if code == 0 else f"failed (exit status {code}; see {name}.log)"
    print(f"{name}: {status}, {time.perf_counter() - start:.0f} s", flush=True)


def collect(out: Path, configs: dict[str, dict], base: dict, select: str) -> list[dict]:
    """One row per configuration with a result: settings, validation under both protocols, cost."""
    rows = []
    for name, settings in configs.items():
        path = out / f"{name}.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text(encoding="utf-8"))
        row = {"name": name, "settings": {**base, **settings}}
        for protocol, key in PROTOCOL_KEYS.items():
            row[protocol] = (result.get(key) or {}).get("ndcg@10")
        for key in (
            "best_valid_epoch",
            "epochs_run",
            "max_epochs",
            "time_budget_spent",
            "seconds_per_epoch",
            "train_seconds",
        ):
            row[key] = result.get(key)
        rows.append(row)
    return sorted(rows, key=lambda row: -(row[select] if row[select] is not None else -1.0))


def write_report(out: Path, rows: list[dict], args, base: dict) -> None:
    """``search.json`` and ``search.md`` of the configurations run so far."""
    atomic_write_text(
        out / "search.json", json.dumps({"command": _command(args), "base": base, "rows": rows}, indent=2)
    )
    lines = [
        f"# {args.model} on {args.dataset}: configurations tried on validation (seed {args.seed})",
        "",
        f"Chosen on validation NDCG@10 ({args.select} protocol) alone; test metrics are not looked at.",
        "`recbole`: RecBole's full ranking (every item ranked); `viewed_filtered`: the user's training items "
        "excluded from the ranking, as in the S3-Rec line of work.",
        "",
        "```bash",
        _command(args),
        "```",
        "",
        f"Settings every configuration gets: `{json.dumps(base)}`",
        "",
        "| configuration | settings | valid NDCG@10 (RecBole) | valid NDCG@10 (viewed filtered) | best epoch "
        "| epochs run | s / epoch | training s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        own = {k: v for k, v in row["settings"].items() if k not in base or base[k] != v}
        cells = [row["name"], f"`{json.dumps(own)}`" if own else "(base)"]
        cells += [f"{row[p]:.4f}" if row[p] is not None else "n/a" for p in PROTOCOL_KEYS]
        budget = " (time budget)" if row.get("time_budget_spent") else ""
        cells += [str(row["best_valid_epoch"]), f"{row['epochs_run']} of {row['max_epochs']}{budget}"]
        cells += [f"{row['seconds_per_epoch']:.1f}", f"{row['train_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    atomic_write_text(out / "search.md", "\n".join(lines) + "\n")


def _command(args) -> str:
    parts = ["python -m recbole_galrec.benchmark.search", f"--model={args.model}", f"--dataset={args.dataset}"]
    if args.data_path:
        parts.append("--data_path=<datasets>")
    parts += [f"--grid={public_path(args.grid)}", f"--seed={args.seed}"]
    if args.profile:
        parts.append(f"--profile={args.profile}")
    return " ".join(parts + [f"--select={args.select}", "--output=<output>", *args.overrides])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_galrec.benchmark.search", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument(
        "--grid", required=True, help="YAML file: base (shared settings) and configs (name -> settings)"
    )
    parser.add_argument("--output", required=True, help="folder for each configuration's result, log and the table")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--select", choices=sorted(PROTOCOL_KEYS), default="recbole")
    parser.add_argument("--only", default=None, help="comma-separated configuration names to run (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="configurations run at once (default 1)")
    args, args.overrides = parser.parse_known_args(argv)
    try:
        strays = [arg for arg in args.overrides if not (arg.startswith("--") and "=" in arg)]
        if strays:
            raise ConfigError(f"arguments must be --key=value settings for every run, got {' '.join(strays)}.")
        if args.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {args.jobs}.")
        base, configs = read_grid(Path(args.grid))
        out = Path(args.output)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--output {out} is a file; give a folder.")
        out.mkdir(parents=True, exist_ok=True)
        chosen = args.only.split(",") if args.only else list(configs)
        unknown = [name for name in chosen if name not in configs]
        if unknown:
            raise ConfigError(f"--only names configurations the grid does not have: {', '.join(unknown)}.")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    todo = []
    for name in chosen:
        if (out / f"{name}.json").is_file():
            print(f"{name}: done before", flush=True)
        else:
            todo.append(name)

    def run_and_report(name: str) -> None:
        run_one(args, name, {**base, **configs[name], "eval_protocol": args.select}, out)
        write_report(out, collect(out, configs, base, args.select), args, base)

    os.environ.update(run_environment(args.jobs, dict(os.environ)))  # runs side by side share the cores
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(run_and_report, todo))
    write_report(out, collect(out, configs, base, args.select), args, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
