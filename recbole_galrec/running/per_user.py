"""Per-user test metrics, taken from the same evaluation pass that gives a run's test result.

RecBole's evaluator averages each top-k metric over users. :class:`PerUserRecorder` keeps, during one
``trainer.evaluate`` call, the user ids of every evaluation batch (in the order the collector stacks their rows)
and the collector's data struct handed to the evaluator; :func:`per_user_metrics` then applies the evaluator's
own metric objects to that struct, row by row. The mean of a column is therefore the test result's value before
RecBole rounds it (``metric_decimal_place``).

The file is a gzip CSV, one row per test user: the raw user id (as in the atomic files), then
:data:`PER_USER_METRICS`; a run of :mod:`recbole_galrec.quick_start` adds the same metrics under the
viewed-filtered protocol (:data:`FILTERED_METRICS`), the test item (raw id), its rank under both protocols
(``rank``, ``rank_filtered``), its training users (``item_count``) and the user's earlier items (``history_len``;
:mod:`recbole_galrec.running.filtered`). It is written without a gzip timestamp or name, so the same values give the
same bytes.
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd

PER_USER_METRICS = ("ndcg@10", "hit@10", "mrr@10")
FILTERED_METRICS = tuple(f"{metric}_filtered" for metric in PER_USER_METRICS)  # the viewed-filtered protocol's
USER_COLUMN = "user"
FLOAT_FORMAT = "%.6g"
_NEEDS_POS_LEN = {"ndcg", "recall", "map"}  # RecBole metrics whose metric_info also takes pos_len


class PerUserRecorder:
    """Record the user ids and the data struct of the next evaluations of ``trainer`` (until :meth:`close`)."""

    def __init__(self, trainer, uid_field: str):
        self.trainer = trainer
        self.user_ids: list[np.ndarray] = []
        self.struct = None
        self._collect = trainer.eval_collector.eval_batch_collect
        self._evaluate = trainer.evaluator.evaluate
        self._own = [(obj, name, vars(obj).get(name)) for obj, name in self._patched()]

        def eval_batch_collect(scores, interaction, positive_u, positive_i):
            self.user_ids.append(interaction[uid_field].detach().cpu().numpy())
            return self._collect(scores, interaction, positive_u, positive_i)

        def evaluate(struct):
            self.struct = struct
            return self._evaluate(struct)

        trainer.eval_collector.eval_batch_collect = eval_batch_collect
        trainer.evaluator.evaluate = evaluate

    def _patched(self):
        return [(self.trainer.eval_collector, "eval_batch_collect"), (self.trainer.evaluator, "evaluate")]

    def close(self) -> None:
        """Give the collector and the evaluator their own methods back."""
        for obj, name, own in self._own:
            if own is None:
                delattr(obj, name)  # the class's method again
            else:
                setattr(obj, name, own)

    def frame(self, dataset) -> pd.DataFrame | None:
        """Per-user metrics of the recorded evaluation keyed by raw user id, or None if nothing was recorded."""
        if self.struct is None or not self.user_ids:
            return None
        ids = np.concatenate(self.user_ids)
        values = per_user_metrics(self.trainer.evaluator, self.struct)
        if values is None or len(ids) != len(next(iter(values.values()))):
            return None
        users = dataset.id2token(dataset.uid_field, ids)
        return pd.DataFrame({USER_COLUMN: users, **values})


def per_user_metrics(evaluator, struct, metrics=PER_USER_METRICS) -> dict[str, np.ndarray] | None:
    """``{"ndcg@10": array of one value per evaluated row, ...}`` from RecBole's metric objects; None if the
    evaluator does not compute one of ``metrics`` (their names and cut-offs must be among its metrics and topk)."""
    values = {}
    for key in metrics:
        name, _, k = key.partition("@")
        metric = evaluator.metric_class.get(name)
        if metric is None or int(k) not in metric.topk:
            return None
        pos_index, pos_len = metric.used_info(struct)
        info = metric.metric_info(pos_index, pos_len) if name in _NEEDS_POS_LEN else metric.metric_info(pos_index)
        values[key] = np.asarray(info, dtype=float)[:, int(k) - 1]
    return values


def write_per_user(frame: pd.DataFrame, path: str) -> None:
    """Write per-user metrics as a gzip CSV sorted by user id (same values, same bytes)."""
    text = frame.sort_values(USER_COLUMN, kind="stable").to_csv(index=False, float_format=FLOAT_FORMAT)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as f:
        f.write(text.encode("utf-8"))


def read_per_user(path) -> pd.DataFrame:
    """Per-user metrics written by :func:`write_per_user`, indexed by user id (kept as text)."""
    frame = pd.read_csv(path, dtype={USER_COLUMN: str}, compression="gzip")
    return frame.set_index(USER_COLUMN)
