"""``python -m recbole_galrec.analysis sensitivity``: GALRec once per value of one of its keys (the paper's figure 5).

Usage::

    python -m recbole_galrec.analysis sensitivity --dataset=amazon-beauty --param=contrast_tau \\
        --values=0.05,0.1,0.2,0.5 --output=sens/ [--seeds=2020,] [--profile=cpu] [--data_path=...] [--jobs=N] \\
        [--runs_from=DIR] [--config_files="a.yaml b.yaml"] [--key=value ...]

Each value is a benchmark run of the label ``GALRec[<param>=<value>]`` (:mod:`.sweep`), so the variants share the
benchmark's split, seeds and start: the seed's SASRec and LightGCN runs of the benchmark are run once and are every
variant's external models. The benchmark's results file and run records are the analysis's: running the same
command again runs nothing already recorded as ok, and another ``--param`` with the same ``--output`` and
settings reuses the SASRec and LightGCN runs. Into ``--output`` go the benchmark's outputs (``<dataset>.json``,
``.md``, ``.png``, ``runs/``) and ``sensitivity-<param>.json`` and ``.png`` (:mod:`.sensitivity_report`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from recbole_galrec.analysis.sensitivity_report import summary, write_outputs
from recbole_galrec.analysis.sweep import plan_sweep
from recbole_galrec.benchmark.cli import add_runs_from
from recbole_galrec.benchmark.plan import parse_seeds
from recbole_galrec.benchmark.runner import run_benchmark
from recbole_galrec.benchmark.store import failed_runs, public_command
from recbole_galrec.cli import parse_overrides
from recbole_galrec.config import available_profiles
from recbole_galrec.errors import GALRecError

logger = logging.getLogger("recbole_galrec.analysis")
PROGRAM = "python -m recbole_galrec.analysis sensitivity"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Run GALRec once per value of one of its keys through the benchmark (same split, seeds and "
        "external SASRec and LightGCN runs) and plot validation and test NDCG@10 and Hit@10 against the value. "
        "Other --key=value pairs set config keys of every run.",
        allow_abbrev=False,
    )
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (default: ml-100k)")
    parser.add_argument("--param", required=True, help="the GALRec key to vary, e.g. contrast_tau")
    parser.add_argument(
        "--values", required=True, help="comma-separated values of --param, read as on the command line: 0.05,0.1"
    )
    parser.add_argument(
        "--seeds",
        default="2020,",
        help="a count N (seeds 2020, 2021, ...) or a comma-separated list of seeds; one seed as a list: 2020, "
        "(default: 2020,)",
    )
    parser.add_argument("--output", required=True, help="folder of the results (the benchmark's and the analysis's)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (default: 1)")
    add_runs_from(parser)
    parser.add_argument("--config_files", default="", help='space-separated YAML files: "a.yaml b.yaml"')
    parser.add_argument(
        "--profile", default=None, help=f"config profile for every run: {', '.join(available_profiles())}"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for name in ("recbole_galrec.benchmark", "recbole_galrec.analysis"):
        logging.getLogger(name).setLevel(logging.INFO)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        overrides = parse_overrides(rest)
        seeds = parse_seeds(args.seeds)
        config_files = args.config_files.split()
        sweep = plan_sweep(args.param, args.values, args.dataset, config_files, overrides, args.profile, seeds[0])
        command = public_command(argv, program=PROGRAM)
        results = run_benchmark(
            dataset=args.dataset,
            labels=sweep.models,
            seeds=seeds,
            out=Path(args.output),
            config_files=config_files,
            overrides=overrides,
            profile=args.profile,
            command=command,
            jobs=args.jobs,
            runs_from=Path(args.runs_from) if args.runs_from else None,
        )
        written = write_outputs(summary(results, sweep, seeds, command), Path(args.output))
    except GALRecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: finished runs are kept in {args.output}; the same command resumes.", file=sys.stderr)
        return 130
    logger.info(f"sensitivity of {sweep.param}: {', '.join(map(str, written))}")
    return 1 if failed_runs(results, sweep.models, seeds) else 0
