"""The benchmark's command line (also the entry of its worker processes)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from recbole_galrec.benchmark.plan import DEFAULT_MODELS, FIRST_SEED, parse_seeds
from recbole_galrec.benchmark.runner import WORKER_FLAG, run_benchmark
from recbole_galrec.benchmark.store import failed_runs, public_command
from recbole_galrec.benchmark.worker import worker
from recbole_galrec.cli import parse_overrides
from recbole_galrec.config import available_profiles
from recbole_galrec.errors import ConfigError, GALRecError

logger = logging.getLogger("recbole_galrec.benchmark")


def stop_on_sigterm() -> None:
    """Make SIGTERM act as Ctrl-C in a command that runs benchmark workers: it stops its runs and exits 130."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def add_runs_from(parser: argparse.ArgumentParser) -> None:
    """``--runs_from``, shared by the benchmark and the analyses that run one (:mod:`.reuse`)."""
    parser.add_argument(
        "--runs_from",
        default=None,
        help="another benchmark's --output (same dataset and settings): its ok runs that this one plans and lacks "
        "are taken from there (records, files, checkpoints) instead of run again",
    )


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
        help=f"comma-separated model labels (default: {','.join(DEFAULT_MODELS)}); any RecBole model name works too",
    )
    parser.add_argument(
        "--seeds",
        default="1",
        help=f"a count N (seeds {FIRST_SEED}, {FIRST_SEED + 1}, ...) or a comma-separated list of seeds: "
        "2020,2024; one seed as a list: 2020, (default: 1)",
    )
    parser.add_argument(
        "--reference",
        default=None,
        help="model label the others are tested against, paired over test users (default: SASRec when it ran)",
    )
    parser.add_argument(
        "--galrec_start",
        default="SASRec",
        help="the label whose run of the same seed gives GALRec (and its variants) its external SASRec: SASRec, or "
        "SASRecText (SASRec whose item table started from text; among --models) (default: SASRec)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once, each in its own process with cores // jobs threads (default: 1)",
    )
    add_runs_from(parser)
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
        seeds = parse_seeds(args.seeds)
        results = run_benchmark(
            dataset=args.dataset,
            labels=labels,
            seeds=seeds,
            out=Path(args.output),
            config_files=args.config_files.split(),
            overrides=parse_overrides(rest),
            profile=args.profile,
            command=public_command(argv),
            jobs=args.jobs,
            runs_from=Path(args.runs_from) if args.runs_from else None,
            reference=args.reference,
            galrec_start=args.galrec_start,
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
