"""InfoNCE against a hand computation; the key queue's order, wrap-around and ragged batches; the contrastive
terms' log; parameter counts and the trainable-only state dict."""

import math

import pytest
import torch
from torch import nn

from recbole_galrec.layers.contrast import ContrastLog, ContrastTerm
from recbole_galrec.layers.losses import InfoNCE, info_nce
from recbole_galrec.layers.parameters import ParameterCount, TrainableStateDict, count_parameters
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


def _result(top1: float, columns: int) -> InfoNCE:
    return InfoNCE(loss=torch.tensor(0.0), top1=torch.tensor(top1), columns=columns)


def test_contrast_log_accumulates_per_term_and_names_terms_in_order():
    log = ContrastLog()
    log.add(ContrastTerm.L3, _result(0.5, 4), rows=2)
    log.add(ContrastTerm.L1, _result(1.0, 8), rows=4)
    log.add(ContrastTerm.L1, _result(0.0, 8), rows=4)
    assert list(log.summary().items()) == [("L1", (0.5, 0.125)), ("L3", (0.5, 0.25))]
    log.reset()
    assert log.summary() == {}


def test_contrast_terms_index_module_lists_by_number():
    assert [(term.name, int(term)) for term in ContrastTerm] == [("L1", 0), ("L2", 1), ("L3", 2)]
    heads = nn.ModuleList(nn.Linear(2, 2) for _ in ContrastTerm)
    assert heads[ContrastTerm.L3] is heads[2]
    assert [name for name, _ in heads.named_parameters()] == [f"{i}.{p}" for i in range(3) for p in ("weight", "bias")]


def test_count_parameters_counts_trainable_ones_and_shared_ones_once():
    shared = nn.Linear(3, 2)  # 8 elements
    frozen = nn.Linear(2, 1).requires_grad_(False)  # 3 elements
    assert count_parameters(nn.Sequential(shared, frozen, shared)) == ParameterCount(trainable=8, total=11)
    assert count_parameters(nn.Sequential()) == ParameterCount(0, 0)


class _AroundFrozen(TrainableStateDict, nn.Module):
    frozen_modules = ("pretrained",)

    def __init__(self):
        super().__init__()
        self.pretrained = nn.BatchNorm1d(2).requires_grad_(False)  # frozen weights and persistent buffers
        self.head = nn.Linear(2, 2)
        self.queue = KeyQueue(4, 2)


def test_trainable_state_dict_keeps_trainable_parameters_and_buffers_outside_frozen_modules():
    model = _AroundFrozen()
    state = model.state_dict()
    assert set(state) == {"head.weight", "head.bias", "queue.keys", "queue.pointer", "queue.filled"}
    assert set(nn.Sequential(model).state_dict()) == {f"0.{key}" for key in state}  # under a prefix
    other = _AroundFrozen()
    other.load_state_dict(state)
    assert torch.equal(other.head.weight, model.head.weight)
    message = r"_AroundFrozen checkpoint does not match the model: missing \['head.bias'\]"
    with pytest.raises(RuntimeError, match=message):
        other.load_state_dict({k: v for k, v in state.items() if k != "head.bias"})
