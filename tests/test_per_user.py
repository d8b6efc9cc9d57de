"""Per-user test metrics: RecBole's own metric objects applied row by row average to its test result."""

import numpy as np
import pytest
import torch

from recbole_galrec.config import build_config
from recbole_galrec.running.per_user import PER_USER_METRICS, PerUserRecorder, per_user_metrics


@pytest.fixture(scope="module")
def evaluator():
    from recbole.evaluator import Evaluator

    return Evaluator(build_config("Pop", "ml-100k"))


def topk_struct(rows: int, seed: int = 0):
    """A collector data struct as RecBole builds it: top-k hit flags per row, then the number of positives."""
    from recbole.evaluator.collector import DataStruct

    rng = np.random.default_rng(seed)
    flags = np.zeros((rows, 20), dtype=np.int64)
    ranks = rng.integers(0, 40, size=rows)  # leave-one-out: one positive, inside the top 20 or not
    for row, rank in enumerate(ranks):
        if rank < 20:
            flags[row, rank] = 1
    struct = DataStruct()
    struct.set("rec.topk", torch.from_numpy(np.concatenate([flags, np.ones((rows, 1), dtype=np.int64)], axis=1)))
    return struct, ranks


def test_per_user_values_average_to_the_evaluators_result(evaluator):
    struct, ranks = topk_struct(500)
    values = per_user_metrics(evaluator, struct)
    result = evaluator.evaluate(struct)
    assert set(values) == set(PER_USER_METRICS)
    for key in PER_USER_METRICS:
        assert len(values[key]) == 500
        assert abs(values[key].mean() - result[key]) <= 5e-5 + 1e-12, key
    hit = ranks < 10
    assert np.array_equal(values["hit@10"], hit.astype(float))
    assert np.allclose(values["mrr@10"], np.where(hit, 1 / (ranks + 1), 0))
    assert np.allclose(values["ndcg@10"], np.where(hit, 1 / np.log2(ranks + 2), 0))


def test_a_metric_the_evaluator_does_not_compute_gives_none(evaluator):
    struct, _ = topk_struct(10)
    assert per_user_metrics(evaluator, struct, metrics=("ndcg@7",)) is None
    assert per_user_metrics(evaluator, struct, metrics=("precision@10",)) is None


def test_recorder_keeps_batch_user_ids_and_gives_methods_back(evaluator):
    from recbole.data.interaction import Interaction

    class Collector:
        def eval_batch_collect(self, scores, interaction, positive_u, positive_i):
            self.seen = True

    class Trainer:
        eval_collector = Collector()

    trainer = Trainer()
    trainer.evaluator = evaluator
    original = trainer.eval_collector.eval_batch_collect
    recorder = PerUserRecorder(trainer, "user_id")
    for batch in ([3, 1], [2]):
        trainer.eval_collector.eval_batch_collect(None, Interaction({"user_id": torch.tensor(batch)}), None, None)
    struct, _ = topk_struct(3)
    trainer.evaluator.evaluate(struct)
    recorder.close()
    assert [ids.tolist() for ids in recorder.user_ids] == [[3, 1], [2]] and recorder.struct is struct
    assert trainer.eval_collector.eval_batch_collect == original
    assert "evaluate" not in vars(trainer.evaluator)
