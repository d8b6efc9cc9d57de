"""Command line: ``run_recbole_galrec.py --model=M --dataset=D [--profile=cpu] [--config_files="a.yaml b.yaml"]
[--key=value ...]``.

Every ``--key=value`` besides the named options is a config override, parsed as a YAML scalar or flow
collection (``--learning_rate=1e-3``, ``--topk=[5,10]``, ``--train_neg_sample_args=~``); overrides win
over every config file.
"""

import argparse
import sys

import yaml

from recbole_galrec.config import profile_files
from recbole_galrec.errors import ConfigError, GALRecError


def parse_overrides(args: list[str]) -> dict:
    """Turn ``--key=value`` strings into a dict of YAML-parsed values; anything else is an error."""
    overrides = {}
    for arg in args:
        key, sep, raw = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not key or not sep:
            raise ConfigError(
                f"Cannot read the argument '{arg}': overrides are written --key=value (no spaces around '=')."
            )
        value = _parse_value(raw)
        if key in overrides and overrides[key] != value:
            raise ConfigError(f"--{key} is given twice with different values.")
        overrides[key] = value
    return overrides


def _parse_value(raw: str):
    """A YAML value, with YAML 1.1's gap filled: '1e-3' (no dot) is a float, not a string."""
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recbole-galrec",
        description="Train and evaluate GALRec or any RecBole model. Other --key=value pairs override config keys.",
    )
    parser.add_argument("--model", "-m", default="GALRec", help="model name (default: GALRec)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (default: ml-100k)")
    parser.add_argument(
        "--config_files", default="", help='space-separated YAML files, later ones winning: "a.yaml b.yaml"'
    )
    parser.add_argument("--result_file", default=None, help="write the result as JSON to this path")
    parser.add_argument(
        "--per_user_file",
        default=None,
        help="write each test user's metrics under both protocols, test item and ranks as a gzip CSV to this path",
    )
    parser.add_argument(
        "--profile", default=None, help="a budget profile from properties/profile/ (e.g. cpu), below --config_files"
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="continue an interrupted run from its checkpoint (the '-last.pth' one is written after every epoch); "
        "give the same command and settings as the interrupted run",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        overrides = parse_overrides(rest)
        profile = profile_files(args.profile, args.model)
        from recbole_galrec.quick_start import run_recbole_galrec

        run_recbole_galrec(
            model=args.model,
            dataset=args.dataset,
            config_file_list=profile + args.config_files.split(),
            config_dict=overrides,
            result_file=args.result_file,
            per_user_file=args.per_user_file,
            resume=args.resume,
        )
    except GALRecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: the checkpoints so far are in the checkpoint_dir (default 'saved/'); the same command "
            "with --resume=<its -last.pth checkpoint> continues the run.",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
