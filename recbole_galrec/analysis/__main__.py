"""``python -m recbole_galrec.analysis <command> [options]``: see :mod:`recbole_galrec.analysis`."""

import sys

COMMANDS = {
    "sensitivity": "recbole_galrec.analysis.sensitivity",
    "representations": "recbole_galrec.analysis.representations",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        given = f"unknown command '{argv[0]}'. " if argv and not argv[0].startswith("-") else ""
        print(f"usage: python -m recbole_galrec.analysis {{{','.join(COMMANDS)}}} [options]", file=sys.stderr)
        print(f"{given}Commands: {', '.join(COMMANDS)}; each takes --help.", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from importlib import import_module

    return import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    from recbole_galrec.benchmark.cli import stop_on_sigterm

    stop_on_sigterm()  # a terminated sensitivity analysis stops its benchmark runs, as the benchmark does
    sys.exit(main())
