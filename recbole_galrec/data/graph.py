"""Hop neighbourhoods of the user-item bipartite graph, as padded tensors (pure functions, no RecBole).

Built from TRAINING interactions only (the dataset hook passes the training split), so no validation or test
interaction enters any table. Id 0 is RecBole's padding id for users and items and pads every table.
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch


@dataclass
class HopTables:
    """Per-user and per-item neighbourhoods; every table is right-padded with id 0.

    Attributes:
        user_items: ``[n_users, H]`` the user's most recent training items, oldest first (1-hop of a user).
        user_users: ``[n_users, K]`` users sharing the most training items with the user, most first; never
            the user itself (2-hop of a user).
        item_users: ``[n_items, K]`` users who interacted with the item in training (1-hop of an item).
        item_items: ``[n_items, K]`` items sharing the most users with the item, most first; never the item
            itself (2-hop of an item).
    """

    user_items: torch.Tensor
    user_users: torch.Tensor
    item_users: torch.Tensor
    item_items: torch.Tensor


def build_hop_tables(
    histories: dict[int, list[int]],
    n_users: int,
    n_items: int,
    history_len: int,
    num_neighbors: int,
    seed: int,
    chunk: int = 1024,
) -> HopTables:
    """Build :class:`HopTables` from each user's time-ordered training items.

    Ranking rule for 2-hop neighbours: by the number of shared training items (users) or shared users
    (items), ties broken by a random priority drawn once from ``seed`` (so a run is reproducible and no id
    order is favoured). 1-hop users of an item are ordered by that same random priority.

    Args:
        histories: user id -> that user's training items, oldest first (duplicates allowed).
        n_users, n_items: table heights, including padding id 0.
        history_len: columns of ``user_items`` (the most recent ``history_len`` items are kept).
        num_neighbors: columns of the neighbour tables.
        seed: seed of the tie-breaking priorities.
        chunk: rows whose co-occurrence counts are computed at once (bounds memory).
    """
    rng = np.random.default_rng(seed)
    user_priority = rng.random(n_users)  # [n_users] in [0, 1)
    item_priority = rng.random(n_items)  # [n_items]

    user_items = torch.zeros(n_users, history_len, dtype=torch.long)
    rows, cols = [], []
    for user, items in histories.items():
        recent = items[-history_len:] if history_len > 0 else []
        user_items[user, : len(recent)] = torch.as_tensor(recent, dtype=torch.long)
        rows.extend([user] * len(items))
        cols.extend(items)
    data = np.ones(len(rows), dtype=np.float64)
    interactions = sp.csr_matrix((data, (rows, cols)), shape=(n_users, n_items))
    interactions.data[:] = 1.0  # a repeated interaction counts once

    user_users = _top_k_cooccurring(interactions, user_priority, num_neighbors, chunk)
    item_items = _top_k_cooccurring(interactions.T.tocsr(), item_priority, num_neighbors, chunk)
    item_users = _top_k_members(interactions.T.tocsr(), user_priority, num_neighbors)
    return HopTables(user_items, user_users, item_users, item_items)


def _top_k_cooccurring(matrix: sp.csr_matrix, priority: np.ndarray, k: int, chunk: int) -> torch.Tensor:
    """For each row r, the k other rows sharing the most columns with r (ties by ``priority``); 0-padded."""
    n = matrix.shape[0]
    table = torch.zeros(n, k, dtype=torch.long)
    if k == 0:
        return table
    transposed = matrix.T.tocsr()
    for start in range(0, n, chunk):
        shared = (matrix[start : start + chunk] @ transposed).tocsr()  # [c, n] sparse shared-column counts
        for offset in range(shared.shape[0]):
            row = start + offset
            lo, hi = shared.indptr[offset], shared.indptr[offset + 1]
            others, counts = shared.indices[lo:hi], shared.data[lo:hi]
            keep = others != row  # never the row itself
            table[row, : min(k, int(keep.sum()))] = torch.as_tensor(
                _best(others[keep], counts[keep] + 0.5 * priority[others[keep]], k)
            )
    return table


def _best(ids: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """The ids of the k highest scores, highest first."""
    if ids.size > k:
        part = np.argpartition(-score, k - 1)[:k]
        ids, score = ids[part], score[part]
    return ids[np.argsort(-score, kind="stable")]


def _top_k_members(matrix: sp.csr_matrix, priority: np.ndarray, k: int) -> torch.Tensor:
    """For each row r, up to k of its non-zero columns, ordered by ``priority`` (highest first); 0-padded."""
    n = matrix.shape[0]
    table = torch.zeros(n, k, dtype=torch.long)
    for row in range(n):
        members = matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]]
        if members.size:
            chosen = _best(members, priority[members], k)
            table[row, : chosen.size] = torch.as_tensor(chosen)
    return table
