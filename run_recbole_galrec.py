"""Train and evaluate GALRec or any RecBole model: ``python run_recbole_galrec.py --model=GALRec --dataset=ml-100k``."""

import sys

from recbole_galrec.cli import main

if __name__ == "__main__":
    sys.exit(main())
