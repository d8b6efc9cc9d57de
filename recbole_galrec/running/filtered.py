"""The literature's protocol beside RecBole's, from the same scores of the same evaluation pass.

RecBole's full ranking scores every item for a sequential model, the user's own earlier items included (its
full-sort data loader masks them only for general models such as LightGCN). The S3-Rec line of work (S3-Rec,
ICLRec, DuoRec, BSARec), RecTools, E4SRec and the eSASRec benchmark exclude them: "viewed filtered". On data where
no user-item pair repeats, filtering can only lift a model's metrics, by how much depends on how high the model
ranks the items a user already has.

:class:`FilteredEvaluation` watches one ``trainer.evaluate`` call: every batch's scores go to RecBole's collector
unchanged (RecBole's result stays the reference) and, with the user's earlier items set to ``-inf``, to a second
collector of the same config; the trainer's own evaluator turns that one into the filtered result, so both
protocols share metric definitions, cut-offs and tie-breaking. The earlier items of a validation row are the
user's training items; of a test row, the training and validation items (:func:`earlier_items`). A row's own
positive items are never masked, so a repeated item stays rankable where data has repeats.

It also records, per evaluated row, the positive item and its rank under both protocols (1 = top; ties count
against the item: the number of items scored at least as high, itself included), for per-user analyses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

PROTOCOLS = ("recbole", "viewed_filtered")  # values of the config key eval_protocol (which one picks the best epoch)
FILTERED = "viewed_filtered"


def earlier_items(n_users: int, n_items: int, *datasets) -> sp.csr_matrix:
    """Each user's items in ``datasets`` as a 0/1 CSR matrix ``[n_users, n_items]``.

    A dataset contributes its (user, item) pairs and, for sequential data, every item of its history lists (a
    user's first training item is never a training target, only a history item)."""
    rows, cols = [], []
    for dataset in datasets:
        inter = dataset.inter_feat
        users = inter[dataset.uid_field].numpy()
        rows.append(users)
        cols.append(inter[dataset.iid_field].numpy())
        list_field = getattr(dataset, "item_id_list_field", None)
        if list_field and list_field in inter:
            lists = inter[list_field].numpy()  # [N, L], 0-padded
            keep = lists > 0
            rows.append(np.broadcast_to(users[:, None], lists.shape)[keep])
            cols.append(lists[keep])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
    matrix.data[:] = 1.0  # a pair seen several times is one earlier item
    return matrix


@dataclass
class ViewedHistories:
    """What the filtered protocol masks: the users' items before their validation item (the training items) and
    before their test item (training and validation items), built once per run from the splits."""

    before_valid: sp.csr_matrix  # [n_users, n_items]
    before_test: sp.csr_matrix  # [n_users, n_items]

    @classmethod
    def from_splits(cls, train_data, valid_data) -> ViewedHistories:
        """From the training and validation data loaders of a run."""
        train, valid = train_data._dataset, valid_data._dataset
        n_users, n_items = train.user_num, train.item_num
        return cls(earlier_items(n_users, n_items, train), earlier_items(n_users, n_items, train, valid))

    def item_counts(self) -> np.ndarray:
        """Training users of each item ``[n_items]`` (its popularity in the training split)."""
        return np.asarray(self.before_valid.sum(axis=0)).ravel().astype(np.int64)


def mask_earlier(scores: torch.Tensor, users: torch.Tensor, history: sp.csr_matrix, positive_u, positive_i):
    """``scores`` ``[B, n_items]`` with each row's earlier items (row ``b`` is user ``users[b]``) at ``-inf``,
    its positive items (``positive_u``, ``positive_i``) keeping their scores. Returns a new tensor."""
    rows = history[users.cpu().numpy()].tocoo()
    filtered = scores.clone()
    device = scores.device
    filtered[torch.from_numpy(rows.row).long().to(device), torch.from_numpy(rows.col).long().to(device)] = -torch.inf
    positive_u, positive_i = positive_u.to(device), positive_i.to(device)  # RecBole's are on the CPU
    filtered[positive_u, positive_i] = scores[positive_u, positive_i]
    return filtered


def positive_ranks(scores: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor) -> torch.Tensor:
    """Rank of each row's positive item ``[B]``: the items scored at least as high, itself included (1 = top; a tie
    counts against it, so a rank <= k puts it in the top k however ties are broken); rows with no or several
    positives get 0."""
    positive_u, positive_i = positive_u.to(scores.device), positive_i.to(scores.device)  # RecBole's are on the CPU
    item, single = row_positives(scores.shape[0], positive_u, positive_i)
    target = scores.gather(1, item[:, None])  # [B, 1]
    ranks = (scores >= target).sum(dim=1)  # [B]
    return torch.where(single, ranks, torch.zeros_like(ranks))


def row_positives(batch: int, positive_u: torch.Tensor, positive_i: torch.Tensor):
    """Each row's positive item ``[B]`` (0 without one; a row with several keeps one of them) and whether the
    row has exactly one ``[B]``."""
    item = torch.zeros(batch, dtype=torch.long, device=positive_i.device)
    item[positive_u] = positive_i
    return item, torch.bincount(positive_u, minlength=batch) == 1


class FilteredEvaluation:
    """During one ``trainer.evaluate`` (until :meth:`close`): RecBole's result as always, plus the same metrics
    with the users' earlier items (``history``, from :func:`earlier_items`) excluded from the ranking."""

    def __init__(self, trainer, history: sp.csr_matrix, uid_field: str):
        from recbole.evaluator import Collector

        self.trainer = trainer
        self.history = history
        self.collector = Collector(trainer.config)
        for key, value in trainer.eval_collector.data_struct._data_dict.items():
            if key.startswith("data.") and key != "data.label":  # what fit collected from the training data
                self.collector.data_struct.set(key, value)
        self.users: list[np.ndarray] = []
        self.items: list[np.ndarray] = []
        self.ranks: list[np.ndarray] = []
        self.filtered_ranks: list[np.ndarray] = []
        self._collect = trainer.eval_collector.eval_batch_collect
        self._own = vars(trainer.eval_collector).get("eval_batch_collect")

        def eval_batch_collect(scores, interaction, positive_u, positive_i):
            self._collect(scores, interaction, positive_u, positive_i)
            users = interaction[uid_field]
            self.users.append(users.cpu().numpy())
            filtered = mask_earlier(scores, users, history, positive_u, positive_i)
            self.collector.eval_batch_collect(filtered, interaction, positive_u, positive_i)
            self.items.append(row_positives(scores.shape[0], positive_u, positive_i)[0].cpu().numpy())
            self.ranks.append(positive_ranks(scores, positive_u, positive_i).cpu().numpy())
            self.filtered_ranks.append(positive_ranks(filtered, positive_u, positive_i).cpu().numpy())

        trainer.eval_collector.eval_batch_collect = eval_batch_collect

    def close(self) -> None:
        """Give the trainer's collector its own method back."""
        if self._own is None:
            del self.trainer.eval_collector.eval_batch_collect  # the class's method again
        else:
            self.trainer.eval_collector.eval_batch_collect = self._own

    def finish(self) -> dict:
        """The filtered metrics of the pass, computed by the trainer's own evaluator (same keys as RecBole's
        result); the pass's data struct stays in ``data_struct`` for per-user metrics."""
        self.data_struct = self.collector.get_data_struct()
        evaluator = self.trainer.evaluator
        # the class's method: a recorder of RecBole's pass (per_user.PerUserRecorder) watches the instance's
        return type(evaluator).evaluate(evaluator, self.data_struct)

    def row_columns(self, dataset, item_counts: np.ndarray, metrics) -> dict[str, np.ndarray]:
        """Per evaluated row, for per-user files: each of ``metrics`` under the filtered protocol
        (``<metric>_filtered``), the positive ``item`` (raw id), its ``rank`` and ``rank_filtered``, its popularity
        ``item_count`` (training users, :meth:`ViewedHistories.item_counts`) and the row's ``history_len`` (its
        earlier items, the ones masked)."""
        from recbole_galrec.running.per_user import per_user_metrics

        ranks = self.rank_columns()
        if not ranks:
            return {}
        values = per_user_metrics(self.trainer.evaluator, self.data_struct, metrics) or {}
        columns = {f"{metric}_filtered": value for metric, value in values.items()}
        items = ranks["item"]
        users = np.concatenate(self.users)
        columns["item"] = dataset.id2token(dataset.iid_field, items)
        columns["rank"], columns["rank_filtered"] = ranks["rank"], ranks["rank_filtered"]
        columns["item_count"] = item_counts[items]
        columns["history_len"] = np.diff(self.history.indptr)[users]
        return columns

    def rank_columns(self) -> dict[str, np.ndarray]:
        """Per evaluated row: ``item`` (internal id of the positive), ``rank`` and ``rank_filtered``."""
        if not self.items:
            return {}
        return {
            "item": np.concatenate(self.items),
            "rank": np.concatenate(self.ranks),
            "rank_filtered": np.concatenate(self.filtered_ranks),
        }
