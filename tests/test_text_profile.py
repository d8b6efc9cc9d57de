"""The text-profile score term (recbole_galrec/layers/text_profile.py) on small hand-made tensors."""

import pytest
import torch

from recbole_galrec.layers.text_profile import TextProfileTerm


def unit_vectors(n_items=8, width=4, seed=0):
    torch.manual_seed(seed)
    vectors = torch.randn(n_items, width)
    vectors[0] = 0.0  # padding
    return vectors


@pytest.mark.parametrize(
    "decay, weights",
    [(0.0, [0.0, 0.0, 1.0]), (1.0, [1 / 3, 1 / 3, 1 / 3]), (0.5, [0.25 / 1.75, 0.5 / 1.75, 1 / 1.75])],
)
def test_the_profile_weighs_each_earlier_item_by_the_decay(decay, weights):
    term = TextProfileTerm(unit_vectors(), weight=1.0, decay=decay)
    history = torch.tensor([[3, 5, 2, 0, 0]])  # oldest first, 0-padded
    expected = sum(w * term.unit[i] for w, i in zip(weights, (3, 5, 2), strict=True))
    assert torch.allclose(term.profiles(history)[0], expected, atol=1e-6)
    assert torch.allclose(term.unit[1:].norm(dim=1), torch.ones(7))


def test_scores_are_standardised_closeness_and_the_users_own_items_get_none():
    vectors = unit_vectors()
    vectors[6] = 2.0 * vectors[2]  # item 6 says what item 2 says
    term = TextProfileTerm(vectors, weight=0.3, decay=0.0)
    history = torch.tensor([[4, 2], [1, 0]])
    scores = term(history)  # [2, 8]
    raw = term.profiles(history) @ term.unit.T
    raw[:, 0] = 0.0
    z = (raw - raw.mean(1, keepdim=True)) / raw.std(1, keepdim=True)
    others = [i for i in range(1, 8) if i not in (4, 2)]
    assert torch.allclose(scores[0, others], 0.3 * z[0, others], atol=1e-5)
    assert int(scores[0, 1:].argmax()) + 1 == 6  # the closest item that is not the user's own
    assert float(scores[0, 2]) == float(scores[0, 4]) == float(scores[1, 1]) == float(scores[0, 0]) == 0.0
    assert float(z[0, 2]) == pytest.approx(float(z[0, 1:].max()))  # without the rule, an item is closest to itself


def test_a_sample_is_scored_from_its_own_history_alone():
    term = TextProfileTerm(unit_vectors(), weight=1.0, decay=0.5)
    first = term(torch.tensor([[3, 5], [1, 2]]))
    second = term(torch.tensor([[3, 5], [7, 6]]))
    assert torch.equal(first[0], second[0]) and not torch.equal(first[1], second[1])


def test_a_query_moved_by_states_starts_as_the_profile_and_learns():
    """moved_by > 0: a zero-started map of the states moves the query; L0's gradient reaches it at once."""
    plain = TextProfileTerm(unit_vectors(), weight=1.0, decay=0.5)
    moved = TextProfileTerm(unit_vectors(), weight=1.0, decay=0.5, moved_by=6)
    history, states = torch.tensor([[3, 5], [1, 2]]), torch.randn(2, 6)
    scores = moved(history, states)
    assert torch.equal(scores, plain(history))
    torch.nn.functional.cross_entropy(scores, torch.tensor([4, 7])).backward()
    assert float(moved.query_shift.weight.grad.abs().max()) > 0.0
    assert [name for name, _ in plain.named_parameters()] == []  # the profile alone has nothing to learn
