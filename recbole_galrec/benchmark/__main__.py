"""``python -m recbole_galrec.benchmark``: see :mod:`recbole_galrec.benchmark`."""

import sys

from recbole_galrec.benchmark.cli import main, stop_on_sigterm

if __name__ == "__main__":
    stop_on_sigterm()  # a terminated benchmark stops its runs and exits as on Ctrl-C
    sys.exit(main())
