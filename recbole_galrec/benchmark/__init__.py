"""Benchmark: train and evaluate several models on one dataset under one protocol, over several seeds.

Usage::

    python -m recbole_galrec.benchmark --dataset=amazon-beauty --models=GALRec,SASRec,LightGCN,Pop \\
        --seeds=3 --reference=SASRec --jobs=3 --output=bench/ [--config_files="a.yaml b.yaml"] \\
        [--profile=cpu] [--key=value ...]

Every model gets the same dataset, split and evaluator (this package's ``properties/`` fix the protocol and
``load_col`` per dataset), the same config files and ``--key=value`` overrides, and the same seeds:
``--seeds=N`` runs ``2020, 2021, ...``, ``--seeds=2020,2024`` exactly those (one seed: ``--seeds=2020,``).
A model label is a RecBole model name, a variant from :data:`MODEL_LABELS` (``SASRec-BPR``) or either with one
key set (``GALRec[contrast_tau=0.05]``); a variant's own keys win over the common overrides. Config precedence
for each run, highest first: the seed > the label's keys > ``--key=value`` > ``--config_files`` > ``--profile``
> ``properties/`` > RecBole's defaults.

A GALRec run uses the same seed's SASRec and LightGCN runs of the benchmark as its external models (their best
checkpoints, through ``external_checkpoints``) when those labels are among ``--models``: they run first, and
GALRec waits for them. Without them GALRec trains its own, as outside a benchmark.

Each run executes in a fresh Python process, up to ``--jobs`` at once; the terminal shows each run's epochs
(loss, validation score, time, time left at most) from the progress events the run writes, one JSON line each,
to ``<stem>.progress.jsonl`` while it runs (:mod:`recbole_galrec.running.progress`), and its full output goes to
``OUTPUT/runs/<dataset>/<label>-seed<seed>.log``. Beside the log: ``<stem>.users.csv.gz``, the run's per-user
test NDCG@10, Hit@10 and MRR@10 (:mod:`recbole_galrec.running.per_user`; the validation users' beside it, in
``<stem>.users.valid.csv.gz``), and under ``checkpoints/<stem>/`` (never
committed: the folder ignores itself) its best checkpoint. After every run the parent process rewrites,
atomically:

- ``OUTPUT/<dataset>.json``: settings, data digest, machine, one record per run, and the paired comparison of
  every model with the reference (``--reference``, default SASRec) over test users;
- ``OUTPUT/<dataset>.md``: mean ± sample std over seeds per model, and the paired comparison;
- ``OUTPUT/<dataset>.png``: NDCG@10 and Hit@10 per model, and training samples per second.

Running the same command again skips every (label, seed) already recorded with status ``ok`` and retries the
failed ones; a results file of other settings, profile, config files, data or kind of machine is refused.

Modules: :mod:`.plan` (labels, seeds, order), :mod:`.runner` (processes, progress, scheduling),
:mod:`.worker` (one run), :mod:`.store` (results file), :mod:`.stats` (paired tests), :mod:`.report`
(tables, chart), :mod:`.cli` (command line).
"""

from recbole_galrec.benchmark.cli import build_parser, main
from recbole_galrec.benchmark.plan import (
    DEFAULT_MODELS,
    FIRST_SEED,
    MODEL_LABELS,
    check_overrides,
    order_plan,
    parse_seeds,
    resolve_label,
    run_config,
)
from recbole_galrec.benchmark.report import (
    METRIC_COLUMNS,
    RUN_COLUMNS,
    markdown_table,
    summarize,
    write_chart,
    write_outputs,
)
from recbole_galrec.benchmark.runner import run_benchmark
from recbole_galrec.benchmark.stats import compare, paired_test
from recbole_galrec.benchmark.store import load_results
from recbole_galrec.benchmark.worker import RUN_KEYS
from recbole_galrec.config import profile_file

__all__ = [
    "DEFAULT_MODELS",
    "FIRST_SEED",
    "METRIC_COLUMNS",
    "MODEL_LABELS",
    "RUN_COLUMNS",
    "RUN_KEYS",
    "build_parser",
    "check_overrides",
    "compare",
    "load_results",
    "main",
    "markdown_table",
    "order_plan",
    "paired_test",
    "parse_seeds",
    "profile_file",
    "resolve_label",
    "run_benchmark",
    "run_config",
    "summarize",
    "write_chart",
    "write_outputs",
]
