"""The pipeline's entry points: :func:`prepare` from Python, :func:`run` and :func:`main` from the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recbole_galrec.errors import PrepareError
from recbole_galrec.prepare.build import build_dataset
from recbole_galrec.prepare.records import DEFAULT_K, SourceData
from recbole_galrec.prepare.sources import read_amazon, read_recbole, read_sequences, read_yelp
from recbole_galrec.prepare.write import check_output, format_summary, write_dataset

logger = logging.getLogger(__name__)


def prepare(data: SourceData, output: Path, k: int = DEFAULT_K, source: str = "") -> dict[str, Any]:
    """Filter ``data``, write it to ``output`` (``DIR/NAME``) and return the statistics."""
    _, name = check_output(output)
    prepared = build_dataset(data, k, name, source)
    write_dataset(prepared, output)
    logger.info("%s", format_summary(prepared.stats))
    return prepared.stats


_LOADERS: dict[str, Callable[[argparse.Namespace], SourceData]] = {
    "amazon": lambda args: read_amazon(args.reviews, args.meta),
    "yelp": lambda args: read_yelp(args.business, args.reviews),
    "recbole": lambda args: read_recbole(args.input, args.user_field, args.item_field, args.time_field),
    "sequences": lambda args: read_sequences(args.sequences, args.item_text),
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per source, each with --output, --k and --quiet."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--output",
        type=Path,
        required=True,
        metavar="DIR/NAME",
        help="dataset folder to write; its last part is the dataset name (e.g. dataset/amazon-beauty)",
    )
    common.add_argument(
        "--k",
        type=_positive_int,
        default=DEFAULT_K,
        help=f"minimum number of interactions per user and per item (default {DEFAULT_K})",
    )
    common.add_argument("-q", "--quiet", action="store_true", help="log warnings only")

    parser = argparse.ArgumentParser(
        prog="python -m recbole_galrec.prepare",
        description="Write RecBole atomic files (.inter, .item) for a raw recommendation dataset.",
    )
    sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")

    amazon = sources.add_parser("amazon", parents=[common], help="Amazon 2014 review and metadata files")
    amazon.add_argument("--reviews", type=Path, required=True, help="reviews_*.json(.gz)")
    amazon.add_argument("--meta", type=Path, required=True, help="meta_*.json(.gz)")

    yelp = sources.add_parser("yelp", parents=[common], help="Yelp Open Dataset JSON files")
    yelp.add_argument("--business", type=Path, required=True, help="yelp_academic_dataset_business.json")
    yelp.add_argument("--reviews", type=Path, required=True, help="yelp_academic_dataset_review.json")

    recbole = sources.add_parser("recbole", parents=[common], help="RecBole atomic files, filtered again")
    recbole.add_argument("--input", type=Path, required=True, help="folder holding X.inter (and X.item)")
    recbole.add_argument("--user-field", default="user_id", help="user field of X.inter (default user_id)")
    recbole.add_argument("--item-field", default="item_id", help="item field of X.inter (default item_id)")
    recbole.add_argument("--time-field", default="timestamp", help="timestamp field of X.inter (default timestamp)")

    sequences = sources.add_parser("sequences", parents=[common], help="'user item item ...' lines")
    sequences.add_argument("--sequences", type=Path, required=True, help="'user item item ...' lines")
    sequences.add_argument(
        "--item-text", type=Path, default=None, help="tab-separated item table with a header, item id first"
    )
    return parser


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, prepare the dataset and return its statistics; raises :class:`PrepareError`."""
    args = build_parser().parse_args(argv)
    return _run(args)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    check_output(args.output)  # before reading possibly large inputs
    data = _LOADERS[args.source](args)
    return prepare(data, args.output, args.k, args.source)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns 0, or 2 after printing ``error: ...`` for a :class:`PrepareError`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        stats = _run(args)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(stats))
    return 0
