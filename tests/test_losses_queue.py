"""InfoNCE against a hand computation; the key queue's order, wrap-around and ragged batches."""

import math

import pytest
import torch

from recbole_galrec.layers.losses import info_nce
from recbole_galrec.layers.queue import KeyQueue


def test_info_nce_matches_hand_computation():
    query = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    key = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    queue = torch.tensor([[0.0, 1.0]])
    tau = 0.5
    # normalised: q1 = (1, 0), q2 = (0, 1); k1 = (1, 0), k2 = (1, 1)/sqrt(2); n1 = (0, 1)
    s = 1 / math.sqrt(2)
    row1 = [1.0, s, 0.0]  # q1 . [k1, k2, n1], positive k1
    row2 = [0.0, s, 1.0]  # q2 . [k1, k2, n1], positive k2
    loss1 = -row1[0] / tau + math.log(sum(math.exp(v / tau) for v in row1))
    loss2 = -row2[1] / tau + math.log(sum(math.exp(v / tau) for v in row2))
    expected = (loss1 + loss2) / 2
    result = info_nce(query, key, queue, tau=tau)
    assert result.loss.item() == pytest.approx(expected, rel=1e-6)
    # row 1's positive ranks first, row 2's does not (its queue negative n1 scores 1.0 > s)
    assert result.top1.item() == pytest.approx(0.5) and result.columns == 3


def test_info_nce_without_queue_uses_in_batch_negatives_only():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    key = query.clone()
    tau = 1.0
    expected = -1.0 + math.log(math.exp(1.0) + math.exp(0.0))
    assert info_nce(query, key, None, tau).loss.item() == pytest.approx(expected, rel=1e-6)
    assert info_nce(query, key, torch.zeros(0, 2), tau).loss.item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_is_lower_for_aligned_pairs_and_has_gradients():
    torch.manual_seed(0)
    query = torch.randn(8, 16, requires_grad=True)
    aligned = info_nce(query, query.detach() + 0.01 * torch.randn(8, 16), None, 0.1).loss
    shuffled = info_nce(query, query.detach()[torch.randperm(8)], None, 0.1).loss
    assert aligned < shuffled
    aligned.backward()
    assert query.grad is not None and query.grad.abs().sum() > 0


def test_queue_fills_in_order_and_wraps_around():
    e = torch.eye(4)
    queue = KeyQueue(size=3, dim=4)
    assert queue.negatives().shape == (0, 4)
    queue.enqueue(e[[0, 1]])
    assert torch.equal(queue.negatives(), e[[0, 1]])
    assert int(queue.pointer) == 2 and int(queue.filled) == 2
    queue.enqueue(e[[2, 3]])  # ragged: the second key wraps around to slot 0
    assert torch.equal(queue.keys, e[[3, 1, 2]])
    assert int(queue.pointer) == 1 and int(queue.filled) == 3
    queue.enqueue(e[[0]])
    assert torch.equal(queue.keys, e[[3, 0, 2]]) and int(queue.pointer) == 2


def test_queue_batch_larger_than_queue_keeps_newest_and_normalises():
    queue = KeyQueue(size=2, dim=2)
    queue.enqueue(torch.tensor([[1.0, 0.0], [0.0, 3.0], [4.0, 0.0]]))
    assert int(queue.filled) == 2
    assert torch.allclose(queue.keys, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))


def test_queue_is_saved_in_state_dict_and_detached():
    queue = KeyQueue(size=3, dim=2)
    keys = torch.ones(2, 2, requires_grad=True)
    queue.enqueue(keys)
    assert not queue.keys.requires_grad
    state = queue.state_dict()
    assert set(state) == {"keys", "pointer", "filled"}
    restored = KeyQueue(size=3, dim=2)
    restored.load_state_dict(state)
    assert torch.equal(restored.negatives(), queue.negatives())


def test_queue_of_size_zero_gives_no_negatives():
    queue = KeyQueue(size=0, dim=3)
    queue.enqueue(torch.ones(2, 3))
    assert queue.negatives().shape == (0, 3)
