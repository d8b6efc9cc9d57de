"""Runs taken from another benchmark's output (``--runs_from``), so that a new output need not train again what
another one already has: a sensitivity analysis or an ablation from the benchmark's own SASRec and LightGCN.

A run is taken when this output has no ok record of its label and seed and the other output has one: its record
joins this results file, its files (log, per-user metrics, record files) and its checkpoint folder are copied (hard
links where the file system allows). The other output must hold runs of the same dataset, data, settings, profile
and kind of machine (the checks of a resumed benchmark, :func:`~recbole_galrec.benchmark.store.load_results`); it
is only read.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from recbole_galrec.benchmark.plan import run_stem
from recbole_galrec.benchmark.store import CHECKPOINT_FOLDER, done_runs, find_run, load_results, record_run
from recbole_galrec.errors import ConfigError

logger = logging.getLogger("recbole_galrec.benchmark")


def take_runs(results: dict, source: Path, out: Path, header: dict, plan: list[tuple[str, int]]) -> dict:
    """``results`` with the ok runs of ``plan`` that it lacks and ``source`` has, their files copied into ``out``."""
    dataset = header["dataset"]
    path = source / f"{dataset}.json"
    if not path.is_file():
        raise ConfigError(f"--runs_from={source}: no {dataset}.json there; name the --output of a {dataset} benchmark.")
    if source.resolve() == out.resolve():
        raise ConfigError(f"--runs_from={source} is this benchmark's own --output: name another benchmark's output.")
    try:  # the checks of a resumed benchmark: the same dataset, data, settings, profile and kind of machine
        other = load_results(path, header)
    except ConfigError as err:
        raise ConfigError(f"--runs_from={source} cannot serve this benchmark: {err}") from None
    done = done_runs(results)
    for label, seed in plan:
        run = find_run(other, label, seed)
        if (label, seed) in done or run is None or run.get("status") != "ok":
            continue
        _copy_run_files(source, out, dataset, run_stem(label, seed))
        record_run(results, run)
        logger.info(f"{label} seed {seed}: taken from {path}")
    return results


def _copy_run_files(source: Path, out: Path, dataset: str, stem: str) -> None:
    folder = source / "runs" / dataset
    target = out / "runs" / dataset
    target.mkdir(parents=True, exist_ok=True)
    for file in folder.glob(f"{stem}.*"):
        _link_or_copy(file, target / file.name)
    checkpoints = folder / CHECKPOINT_FOLDER / stem
    if checkpoints.is_dir():
        shutil.copytree(checkpoints, target / CHECKPOINT_FOLDER / stem, copy_function=_link_or_copy, dirs_exist_ok=True)


def _link_or_copy(src, dst) -> None:
    if os.path.exists(dst):
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)
