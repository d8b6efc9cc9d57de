"""GALRec's contrastive terms: their names (:class:`ContrastTerm`), the keys a momentum pass gives them
(:class:`ContrastKeys`) and how well each learns over an epoch (:class:`ContrastLog`)."""

from dataclasses import dataclass
from enum import IntEnum

import torch

from recbole_galrec.layers.losses import InfoNCE


class ContrastTerm(IntEnum):
    """The three InfoNCE terms. A term's value is the index of its projection head and key queue in the model's
    ``ModuleList``s (``contrast_heads.0`` and ``queues.0`` are L1's), so state-dict keys name terms by number."""

    L1 = 0  # E0_u against E2_u (a user's prompt against its 2-hop users) or a same-target prefix's E0
    L2 = 1  # E0_u against E0_i: a user's prompt against the target item's prompt
    L3 = 2  # E2_u against E1_i: a user's 2-hop users against the target item's 1-hop users


@dataclass
class ContrastKeys:
    """Keys of the three terms, from the momentum copy, projected, without gradients."""

    user: torch.Tensor  # [B, D] L1's key: the prompt's E2_u, or E0 of a same-target prefix (contrast_l1_positive)
    item_e0: torch.Tensor  # [B, D] L2's key
    item_e1: torch.Tensor  # [B, D] L3's key
    has_user: torch.Tensor  # [B] where L1's key exists
    has_item_e1: torch.Tensor  # [B]


class ContrastLog:
    """Per contrastive term, the share of training rows whose positive outscored every negative, and the
    chance level of that share (1 / candidates per row), accumulated over an epoch; the trainer logs and
    resets it. A term at chance has collapsed or learns nothing."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.hits = dict.fromkeys(ContrastTerm, 0.0)
        self.rows = dict.fromkeys(ContrastTerm, 0)
        self.chance = dict.fromkeys(ContrastTerm, 0.0)

    def add(self, term: ContrastTerm, result: InfoNCE, rows: int) -> None:
        self.hits[term] += float(result.top1) * rows
        self.rows[term] += rows
        self.chance[term] += rows / result.columns

    def summary(self) -> dict[str, tuple[float, float]]:
        """``{term name: (top-1 share, chance share)}`` of the terms that ran, in term order."""
        return {
            term.name: (self.hits[term] / self.rows[term], self.chance[term] / self.rows[term])
            for term in ContrastTerm
            if self.rows[term]
        }
