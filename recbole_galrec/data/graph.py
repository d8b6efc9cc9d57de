"""The user-item graph of the training split, and the neighbourhoods a sample's prompts read from it.

Built from TRAINING interactions only (the dataset hook passes the training split), so no validation or test
interaction enters it. Id 0 is RecBole's padding id for users and items and pads every result.

Neighbourhoods are chosen per sample, not per user, so that every input of a sample is a function of that
sample's own history and of the OTHER users' training interactions:

- 2-hop users of a sample: the users sharing the most items with the sample's history (the prefix of a
  training sample, the whole known history at validation and test time), never the sample's own user. A
  table per user, built from its whole training history, would already know a training prefix's target.
- 1-hop users of an item (the item prompt): the item's training users, without the sample's own user (a
  training target's users otherwise include the user whose sample it is).

Ties are broken by a random priority per user drawn once from the seed, so a run is reproducible and no id
order is favoured.

The graph also lists every training prefix by its target (:meth:`TrainingGraph.same_target_prefixes`): with
``contrast_l1_positive: same_target`` L1's positive is another user's prefix that led to the same next item. Like
the target item itself, that prefix is the key of a loss, never an input of the sample.
"""

from typing import NamedTuple

import numpy as np
import torch
from torch import nn


class TrainingGraph(nn.Module):
    """The training interactions as a sparse user-item matrix, plus each item's users in priority order.

    Its tensors are buffers (they follow the model across devices) and are not saved in checkpoints.

    Args:
        histories: user id -> that user's training items (duplicates allowed; each pair counts once).
        n_users, n_items: id ranges, including padding id 0.
        num_neighbors: neighbours per prompt (2-hop users of a sample, 1-hop users of an item).
        seed: seed of the tie-breaking priorities.
    """

    def __init__(self, histories: dict[int, list[int]], n_users: int, n_items: int, num_neighbors: int, seed: int):
        super().__init__()
        self.num_neighbors = num_neighbors
        rng = np.random.default_rng(seed)
        priority = torch.as_tensor(rng.random(n_users), dtype=torch.float32)  # [n_users] in [0, 1)
        pairs = sorted({(u, i) for u, items in histories.items() for i in items if u != 0 and i != 0})
        index = torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2).T  # [2, nnz]
        values = torch.ones(index.shape[1])
        user_item = torch.sparse_coo_tensor(index, values, (n_users, n_items), check_invariants=True).coalesce()
        self.register_buffer("user_item", user_item, persistent=False)
        item_counts = torch.sparse.sum(user_item, dim=0).to_dense()  # [n_items]: each item's training users
        self.register_buffer("item_counts", item_counts, persistent=False)
        self.register_buffer("priority", priority, persistent=False)
        # One column more than a prompt holds: a sample's own user, when among them, is dropped at run time.
        self.register_buffer(
            "item_users", _members_by_priority(index, n_items, priority, num_neighbors + 1), persistent=False
        )  # [n_items, K + 1]
        for name, tensor in _prefixes_by_target(histories, n_users, n_items).items():
            self.register_buffer(name, tensor, persistent=False)

    @property
    def n_users(self) -> int:
        return self.user_item.shape[0]

    @torch.no_grad()
    def shared_items(self, history: torch.Tensor) -> torch.Tensor:
        """``[B, n_users]``: how many distinct items of each history ``[B, L]`` (0-padded) each user has in
        training."""
        n_items = self.user_item.shape[1]
        multi_hot = torch.zeros(history.shape[0], n_items, device=history.device)  # [B, n_items]
        multi_hot.scatter_(1, history, 1.0)
        multi_hot[:, 0] = 0.0  # padding
        return torch.sparse.mm(self.user_item, multi_hot.T).T  # [B, n_users]

    @torch.no_grad()
    def two_hop_users(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """The ``num_neighbors`` users sharing the most items with each history ``[B, L]``, most first, ties
        by priority; never the sample's own user ``users`` ``[B]``, never a user sharing nothing.
        ``[B, K]``, 0-padded."""
        k = min(self.num_neighbors, self.n_users)
        if k == 0:
            return history.new_zeros(history.shape[0], 0)
        counts = self.shared_items(history)  # [B, n_users]
        counts[torch.arange(users.shape[0], device=users.device), users] = 0.0  # never the user itself
        counts[:, 0] = 0.0
        score = torch.where(counts > 0, counts + 0.5 * self.priority, -1.0)  # priority < 1 breaks ties only
        best, chosen = torch.topk(score, k, dim=1)  # [B, K]
        return torch.where(best > 0, chosen, 0)

    @torch.no_grad()
    def item_users_without(self, items: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """The 1-hop users of items ``[B]`` in priority order, without the sample's own user ``users`` ``[B]``:
        ``[B, K]``, 0-padded."""
        rows = self.item_users[items]  # [B, K + 1]
        own = rows == users[:, None]  # [B, K + 1], at most one per row
        order = torch.sort(own.to(torch.int8), dim=1, stable=True).indices  # the own user moves to the end
        rows = torch.gather(rows, 1, order) * ~torch.gather(own, 1, order)
        return rows[:, : self.num_neighbors]

    @torch.no_grad()
    def item_counts_without(self, users: torch.Tensor) -> torch.Tensor:
        """``[B, n_items]``: each item's number of training users other than ``users`` ``[B]`` (the sample's own
        user's training items, later ones included, take no part: a function of other users' interactions only)."""
        own = self.user_item.index_select(0, users).to_dense()  # [B, n_items]
        return self.item_counts[None, :] - own

    @torch.no_grad()
    def same_target_prefixes(self, items: torch.Tensor, users: torch.Tensor, length: int) -> "Prefixes":
        """For each target item ``[B]``, one training prefix of ANOTHER user (not ``users`` ``[B]``) whose next item
        it was, drawn uniformly from the torch generator: that user, its last ``length`` items as RecBole lays out a
        history (left-aligned, 0-padded) and their count; ``found`` is False where no other user had the item."""
        start, stop = self.target_start[items], self.target_start[items + 1]  # [B]: the item's prefixes
        own = torch.searchsorted(self.target_key, items * self.n_users + users)  # [B]: where the own one sorts
        has_own = self.target_key[own.clamp(max=self.target_key.numel() - 1)] == items * self.n_users + users
        others = stop - start - has_own.long()  # [B]
        draw = (torch.rand(items.shape, device=items.device) * others.clamp(min=1)).long()  # [B] in [0, others)
        pick = start + draw + (has_own & (start + draw >= own)).long()  # [B]: skips the own prefix
        pick = torch.where(others > 0, pick, 0)
        end = self.target_end[pick]  # [B]: one past the prefix's last item in flat_items
        first = torch.maximum(self.user_offset[self.target_user[pick]], end - length)  # [B]
        count = end - first  # [B]
        column = torch.arange(length, device=items.device)  # [L]
        seq = self.flat_items[(first[:, None] + column).clamp(max=self.flat_items.numel() - 1)]  # [B, L]
        seq = torch.where(column < count[:, None], seq, 0)
        found = others > 0
        return Prefixes(torch.where(found, self.target_user[pick], 0), seq, torch.where(found, count, 1), found)


class Prefixes(NamedTuple):
    """Training prefixes of other users (:meth:`TrainingGraph.same_target_prefixes`)."""

    users: torch.Tensor  # [B]
    seq: torch.Tensor  # [B, L], left-aligned, 0-padded
    seq_len: torch.Tensor  # [B], at least 1
    found: torch.Tensor  # [B] bool


def _prefixes_by_target(histories: dict[int, list[int]], n_users: int, n_items: int) -> dict[str, torch.Tensor]:
    """Every training prefix ``s1 .. s(p-1) -> sp`` (p >= 2) of every user, sorted by target then user: the users'
    items concatenated (``flat_items``, oldest first; ``user_offset`` ``[n_users + 1]`` where each user's start),
    each prefix's user, end (one past its last item) and sort key ``target * n_users + user``, and
    ``target_start`` ``[n_items + 1]``, where each target's prefixes start."""
    offset, flat, users, ends, targets = [0] * (n_users + 1), [], [], [], []
    for user in range(1, n_users):
        items = [i for i in histories.get(user, []) if i != 0]
        for position in range(1, len(items)):
            users.append(user)
            ends.append(len(flat) + position)
            targets.append(items[position])
        flat.extend(items)
        offset[user + 1] = len(flat)
    offset = torch.as_tensor(offset, dtype=torch.long)
    users, ends, targets = (torch.as_tensor(v, dtype=torch.long) for v in (users, ends, targets))
    key = targets * n_users + users
    order = torch.argsort(key, stable=True)
    return {
        "flat_items": torch.as_tensor(flat or [0], dtype=torch.long),
        "user_offset": offset,
        "target_user": users[order] if len(users) else torch.zeros(1, dtype=torch.long),
        "target_end": ends[order] if len(ends) else torch.zeros(1, dtype=torch.long),
        "target_key": key[order] if len(key) else torch.full((1,), -1, dtype=torch.long),
        "target_start": torch.searchsorted(targets[order], torch.arange(n_items + 1)),
    }


def _members_by_priority(index: torch.Tensor, n_items: int, priority: torch.Tensor, k: int) -> torch.Tensor:
    """For each item, up to ``k`` of its users (``index``: ``[2, nnz]`` user-item pairs), highest priority
    first; ``[n_items, k]``, 0-padded."""
    table = torch.zeros(n_items, k, dtype=torch.long)
    if k == 0 or index.shape[1] == 0:
        return table
    users, items = index[0], index[1]
    # Sort pairs by item, then by descending priority; the rank within an item is the column.
    order = torch.argsort(-priority[users], stable=True)
    order = order[torch.argsort(items[order], stable=True)]
    users, items = users[order], items[order]
    starts = torch.searchsorted(items, torch.arange(n_items))  # [n_items] first pair of each item
    rank = torch.arange(items.shape[0]) - starts[items]  # [nnz]
    keep = rank < k
    table[items[keep], rank[keep]] = users[keep]
    return table
