"""GALRec's hop representations of test users and items, computed by the model's own passes.

For each test user (its prompt as the test sees it: the history before the test item, 2-hop users chosen by that
history, :meth:`GALRec.sample_inputs`) :meth:`GALRec.encode_user` gives E0_u (the state at the prompt's last
position) and E2_u (the mean state over its 2-hop users). For the user's test item, the item prompt the model
trains L2 and L3 on (the item and its 1-hop users without the user) gives, through :meth:`GALRec.encode_items`,
E0_i and E1_i (the mean state over the item's users). For each item of the item set, its prompt with its 1-hop
users (nobody left out) gives the item set's E0_i and E1_i. The model runs in eval mode, without gradients, in
batches of ``llm_batch_size`` prompts (users by history length, as the model's own scoring does).

E2 exists only for a prompt with at least one 2-hop user, E1 only for an item with a training user: the sets
and pairs keep only the rows where their states exist.
"""

from dataclasses import dataclass

import torch

SETS = {
    "user_e0": "test users' E0_u: the state at the last position of the user prompt (history before the test item)",
    "user_e2": "test users' E2_u: the mean state over the user prompt's 2-hop users (users with at least one)",
    "item_e0": "items' E0_i: the state at the last position of the item prompt (the item and its 1-hop users)",
    "item_e1": "items' E1_i: the mean state over the item prompt's 1-hop users (items with a training user)",
}
PAIRS = {
    "L1": "(E0_u, E2_u) of each test user with a 2-hop user: L1's positive pair",
    "L2": "(E0_u, E0_i) of each test user and its test item, the item prompt without the user: L2's positive pair",
    "L3": "(E2_u, E1_i) of each test user and its test item where both exist: L3's positive pair",
}


@dataclass
class TestSamples:
    """One row per test user: ``users`` ``[N]``, histories before the test item ``seq`` ``[N, L]``,
    ``seq_len`` ``[N]``, test items ``targets`` ``[N]``."""

    users: torch.Tensor
    seq: torch.Tensor
    seq_len: torch.Tensor
    targets: torch.Tensor

    @classmethod
    def of(cls, model, test_dataset) -> "TestSamples":
        """The rows of RecBole's test split ``test_dataset`` (its ``inter_feat``), read with ``model``'s fields."""
        feat = test_dataset.inter_feat
        return cls(feat[model.USER_ID], feat[model.ITEM_SEQ], feat[model.ITEM_SEQ_LEN], feat[model.POS_ITEM_ID])

    def rows(self, index: torch.Tensor) -> "TestSamples":
        return TestSamples(self.users[index], self.seq[index], self.seq_len[index], self.targets[index])


@dataclass
class HopStates:
    """States ``[N, H]`` (on the CPU, float32) of test users, their test items and the item set."""

    user_e0: torch.Tensor
    user_e2: torch.Tensor
    has_user_e2: torch.Tensor  # [N] bool
    target_e0: torch.Tensor  # the test item's E0_i (prompt without the user)
    target_e1: torch.Tensor
    has_target_e1: torch.Tensor  # [N] bool
    item_e0: torch.Tensor  # [I, H]
    item_e1: torch.Tensor
    has_item_e1: torch.Tensor  # [I] bool

    def sets(self) -> dict[str, torch.Tensor]:
        """The representation sets of :data:`SETS`, each ``[n, H]``."""
        return {
            "user_e0": self.user_e0,
            "user_e2": self.user_e2[self.has_user_e2],
            "item_e0": self.item_e0,
            "item_e1": self.item_e1[self.has_item_e1],
        }

    def pairs(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The positive pairs of :data:`PAIRS`, row-aligned ``([n, H], [n, H])``."""
        both = self.has_user_e2 & self.has_target_e1
        return {
            "L1": (self.user_e0[self.has_user_e2], self.user_e2[self.has_user_e2]),
            "L2": (self.user_e0, self.target_e0),
            "L3": (self.user_e2[both], self.target_e1[both]),
        }


@torch.no_grad()
def hop_states(model, samples: TestSamples, items: torch.Tensor, device, scales=None) -> HopStates:
    """The states of ``samples`` (test users) and of ``items`` ``[I]`` (internal ids), by ``model`` on ``device``;
    ``scales`` (a :class:`~recbole_galrec.analysis.terms.TermScales`), when given, adds the users' score terms."""
    model.eval()
    batch = model.settings.llm_batch_size
    user_parts, target_parts = [], []
    order = torch.argsort(samples.seq_len, stable=True)  # prompts of about one length per batch
    for rows in order.split(batch):
        part = samples.rows(rows)
        users, seq, seq_len, targets = (t.to(device) for t in (part.users, part.seq, part.seq_len, part.targets))
        state = model.encode_user(users, model.sample_inputs(users, seq, seq_len))
        user_parts.append((state.e0, state.e2, state.has_e2))
        if scales is not None:
            scales.add(model, state)
        prompt = model.prompts.item_prompts(targets, model.graph.item_users_without(targets, users))
        item = model.encode_items(prompt)
        target_parts.append((item.e0, item.e1, item.has_e1))
    back = torch.argsort(order)  # rows back in the samples' order
    user_e0, user_e2, has_e2 = (torch.cat(p).cpu()[back] for p in zip(*user_parts, strict=True))
    target_e0, target_e1, has_t1 = (torch.cat(p).cpu()[back] for p in zip(*target_parts, strict=True))
    item_parts = []
    for chunk in items.split(batch):
        chunk = chunk.to(device)
        nobody = torch.zeros_like(chunk)  # user id 0 is padding: no user left out of an item's users
        state = model.encode_items(model.prompts.item_prompts(chunk, model.graph.item_users_without(chunk, nobody)))
        item_parts.append((state.e0, state.e1, state.has_e1))
    item_e0, item_e1, has_i1 = (torch.cat(p).cpu() for p in zip(*item_parts, strict=True))
    return HopStates(
        user_e0.float(), user_e2.float(), has_e2, target_e0.float(), target_e1.float(), has_t1,
        item_e0.float(), item_e1.float(), has_i1,
    )  # fmt: skip


__all__ = ["PAIRS", "SETS", "HopStates", "TestSamples", "hop_states"]
