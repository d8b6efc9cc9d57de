"""How far each of GALRec's score terms moves the scores of the test users' items.

GALRec scores an item by ``gate * head(E0_u) . item vector`` (the language model's term) plus the external term
``(P_u x_u) . (P_i x_i)`` (:meth:`GALRec.scores`). With ``score_start: sasrec`` the gate starts at 0, and a gate that
stays near 0 leaves the language model without a say, however its contrastive terms train it. For each term this
reports, over the test users, the mean standard deviation of a user's scores over the items (how far the term moves
one user's ranking) and the standard deviation over the items of their mean score over users (the part every user
shares: an item prior). The language model's term is reported before and after its gate; the text-profile term
(``score_text_weight``), when in use, as it enters the score.
"""

from dataclasses import dataclass, field

import torch

TERMS = {
    "external": "(P_u x_u) . (P_i x_i): the external term (SASRec's dot product at a sasrec start)",
    "language_model": "head(E0_u) . item vector: the language model's term before its gate",
    "language_model_gated": "gate * head(E0_u) . item vector: the language model's term as it enters the score",
    "text": "the text-profile term: closeness of each item's text to the history's (score_text_weight)",
}


@dataclass
class TermScales:
    """Sums over test users, added batch by batch (:meth:`add`), read by :meth:`summary`."""

    users: int = 0
    spread: dict = field(default_factory=dict)  # term -> sum over users of the std over items
    item_sums: dict = field(default_factory=dict)  # term -> [n_items - 1] sum over users of each item's score

    @torch.no_grad()
    def add(self, model, state) -> None:
        """The terms (:meth:`GALRec.score_terms`) of one batch of users' states, items 1.. (0 is padding)."""
        terms = model.score_terms(state)  # the terms GALRec.scores adds up
        if "language_model" in terms:
            terms["language_model_gated"] = model.residual_gate * terms["language_model"]
        for name, scores in terms.items():
            scores = scores[:, 1:].float().cpu()
            self.spread[name] = self.spread.get(name, 0.0) + float(scores.std(dim=1).sum())
            self.item_sums[name] = self.item_sums.get(name, 0.0) + scores.sum(dim=0)
        self.users += state.e0.shape[0]

    def summary(self, model) -> dict:
        """``{"gate": g, "terms": {term: {"std_over_items": ..., "std_of_item_means": ...}}}`` (terms in use)."""
        terms = {
            name: {
                "std_over_items": self.spread[name] / self.users,
                "std_of_item_means": float((self.item_sums[name] / self.users).std()),
            }
            for name in TERMS
            if name in self.spread
        }
        gate = float(model.residual_gate.detach()) if model.settings.score_residual else None
        return {"gate": gate, "terms": terms}


__all__ = ["TERMS", "TermScales"]
