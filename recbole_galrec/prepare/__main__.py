"""``python -m recbole_galrec.prepare SOURCE ...``: see :mod:`recbole_galrec.prepare`."""

import sys

from recbole_galrec.prepare.cli import main

sys.exit(main())
