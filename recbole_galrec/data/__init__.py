"""Data side of recbole_galrec at run time: dataset creation with plugin lookup, the atomic files' checks and
reading (``atomic``), GALRec's dataset hook, the graph."""

from recbole_galrec.data.create import create_dataset

__all__ = ["create_dataset"]
