"""Data side of recbole_galrec: dataset creation with plugin lookup, GALRec's dataset hook, preparation."""

from recbole_galrec.data.utils import create_dataset

__all__ = ["create_dataset"]
