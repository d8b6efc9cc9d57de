"""``python -m recbole_galrec.benchmark``: see :mod:`recbole_galrec.benchmark`."""

import signal
import sys

from recbole_galrec.benchmark.cli import main


def _interrupt_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # a terminated benchmark stops its runs and exits as on Ctrl-C


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    sys.exit(main())
