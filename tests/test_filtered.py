"""The viewed-filtered protocol beside RecBole's, from the same evaluation pass (recbole_galrec.running.filtered)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recbole_galrec.running.filtered import FilteredEvaluation, earlier_items, mask_earlier, positive_ranks
from tests.conftest import TINY_SASREC


def test_mask_sets_earlier_items_to_minus_infinity_and_keeps_the_positives():
    history = sp.csr_matrix(np.array([[0, 1, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=np.float32))
    scores = torch.arange(10, dtype=torch.float32).view(2, 5)
    users = torch.tensor([1, 0])  # row 0 is user 1, row 1 is user 0
    positive_u, positive_i = torch.tensor([0, 1]), torch.tensor([4, 0])  # row 0's positive is one of its earlier
    out = mask_earlier(scores, users, history, positive_u, positive_i)
    assert out[0].tolist() == [0.0, 1.0, 2.0, -np.inf, 4.0]  # user 1's item 3 masked, item 4 (its positive) kept
    assert out[1].tolist() == [5.0, -np.inf, -np.inf, 8.0, 9.0]
    assert scores[0, 3] == 3.0  # the input is not changed


def test_positive_ranks_count_the_items_scored_at_least_as_high():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.5], [0.3, 0.2, 0.1, 0.0], [1.0, 1.0, 1.0, 1.0]])
    ranks = positive_ranks(scores, torch.tensor([0, 1, 2, 2]), torch.tensor([2, 0, 1, 2]))
    assert ranks.tolist() == [3, 1, 0]  # row 0: a tie counts against the item; row 2 has two positives


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    """SASRec's ml-100k data and a trainer, built once (RecBole writes under the module's own folder)."""
    import os

    from recbole_galrec.config import build_config
    from recbole_galrec.running.steps import construct_model, construct_trainer, load_data

    folder = tmp_path_factory.mktemp("filtered")
    old = os.getcwd()
    os.chdir(folder)
    try:
        config = build_config("SASRec", "ml-100k", config_dict={**TINY_SASREC, "seed": 7})
        from recbole.utils import init_seed

        init_seed(config["seed"], config["reproducibility"])
        dataset, train_data, valid_data, test_data = load_data(config)
        model = construct_model(config, train_data)
        trainer = construct_trainer(config, model)
        yield config, dataset, train_data, valid_data, test_data, trainer
    finally:
        os.chdir(old)


def test_earlier_items_are_the_training_items_then_the_validation_item_too(ml100k):
    config, dataset, train_data, valid_data, test_data, _ = ml100k
    train, valid = train_data._dataset, valid_data._dataset
    before_valid = earlier_items(dataset.user_num, dataset.item_num, train)
    before_test = earlier_items(dataset.user_num, dataset.item_num, train, valid)
    uid, iid = dataset.uid_field, dataset.iid_field
    raw = _raw_ml100k()
    for row in (0, 100, 500):
        user = int(valid.inter_feat[uid][row])
        valid_item = int(valid.inter_feat[iid][row])
        test_item = int(test_data._dataset.inter_feat[iid][test_data._dataset.inter_feat[uid] == user][0])
        tokens = raw.loc[raw["user_id:token"] == dataset.id2token(uid, user), "item_id:token"]
        items = set(dataset.token2id(iid, tokens.tolist()).tolist())  # the user's items in the atomic file
        # leave-one-out: the training items are all but the validation and test items
        assert set(before_valid[user].indices.tolist()) == items - {valid_item, test_item}
        assert set(before_test[user].indices.tolist()) == items - {test_item}


def _raw_ml100k():
    import importlib.util
    from pathlib import Path

    import pandas as pd

    folder = Path(importlib.util.find_spec("recbole").origin).parent / "dataset_example" / "ml-100k"
    return pd.read_csv(folder / "ml-100k.inter", sep="\t", dtype=str)


class _ScoresBy:
    """Stands in for a model's full_sort_predict: scores computed from the batch's histories."""

    def __init__(self, model, prefer_history: bool):
        self.model, self.prefer_history = model, prefer_history

    def __call__(self, interaction):
        generator = torch.Generator().manual_seed(0)
        seq = interaction[self.model.ITEM_SEQ]  # [B, L]
        scores = torch.rand(seq.shape[0], self.model.n_items, generator=generator)  # [B, n_items] in [0, 1)
        in_history = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, seq, True)
        in_history[:, 0] = False
        return torch.where(in_history, scores + (2.0 if self.prefer_history else -2.0), scores)


def _both(trainer, eval_data, history, uid_field):
    filtered = FilteredEvaluation(trainer, history, uid_field)
    try:
        result = trainer.evaluate(eval_data, load_best_model=False)
    finally:
        filtered.close()
    return result, filtered.finish(), filtered


def test_a_model_that_ranks_history_first_gains_from_filtering(ml100k, monkeypatch):
    config, dataset, train_data, valid_data, test_data, trainer = ml100k
    history = earlier_items(dataset.user_num, dataset.item_num, train_data._dataset, valid_data._dataset)
    monkeypatch.setattr(trainer.model, "full_sort_predict", _ScoresBy(trainer.model, prefer_history=True))
    recbole, filtered, recorded = _both(trainer, test_data, history, dataset.uid_field)
    # every row's top 10 is its last 10 history items under RecBole's protocol: no hit at all
    assert recbole["hit@10"] == 0.0 and filtered["hit@10"] > 0.0 and filtered["ndcg@10"] > 0.0
    ranks = recorded.rank_columns()
    assert len(ranks["rank"]) == dataset.user_num - 1
    assert (ranks["rank_filtered"] <= ranks["rank"]).all() and (ranks["rank_filtered"] < ranks["rank"]).mean() > 0.9
    assert "eval_batch_collect" not in vars(trainer.eval_collector)  # the collector has its own method back


def test_a_model_that_never_ranks_history_in_the_top_10_scores_the_same(ml100k, monkeypatch):
    config, dataset, train_data, valid_data, test_data, trainer = ml100k
    # ml-100k's histories hold more than MAX_ITEM_LIST_LENGTH items: push down the whole earlier history
    history = earlier_items(dataset.user_num, dataset.item_num, train_data._dataset, valid_data._dataset)
    model = trainer.model

    def predict(interaction):
        scores = _ScoresBy(model, prefer_history=False)(interaction)
        rows = history[interaction[dataset.uid_field].numpy()].tocoo()
        scores[torch.from_numpy(rows.row).long(), torch.from_numpy(rows.col).long()] -= 2.0
        return scores

    monkeypatch.setattr(model, "full_sort_predict", predict)
    recbole, filtered, recorded = _both(trainer, test_data, history, dataset.uid_field)
    assert recbole == filtered
    ranks = recorded.rank_columns()
    assert ((ranks["rank"] <= 10) == (ranks["rank_filtered"] <= 10)).all()


def test_recboles_own_result_is_unchanged_by_the_filtered_pass(ml100k):
    """The default evaluation is RecBole's: a plain RecBole Trainer with its own FullSortEvalDataLoader and
    Evaluator gives the same test result as the trainer with the filtered pass recorded beside it."""
    from recbole.trainer import Trainer

    config, dataset, train_data, valid_data, test_data, trainer = ml100k
    plain = Trainer(config, trainer.model)
    expected = plain.evaluate(test_data, load_best_model=False)
    history = earlier_items(dataset.user_num, dataset.item_num, train_data._dataset, valid_data._dataset)
    recbole, filtered, _ = _both(trainer, test_data, history, dataset.uid_field)
    assert recbole == expected
    assert type(test_data).__name__ == "FullSortEvalDataLoader"
    assert filtered["ndcg@10"] >= recbole["ndcg@10"]  # on data without repeats filtering cannot lower a metric


@pytest.mark.slow
def test_a_run_reports_both_protocols_and_the_per_user_file_agrees(workdir):
    """Through the quick start: the result holds both protocols; the per-user file's columns average to them;
    eval_protocol viewed_filtered makes the filtered validation pick the best epoch."""
    import pandas as pd

    from recbole_galrec import run_recbole_galrec

    settings = {**TINY_SASREC, "epochs": 2, "eval_protocol": "viewed_filtered"}
    result = run_recbole_galrec("SASRec", "ml-100k", config_dict=settings, per_user_file="users.csv.gz")
    assert result.eval_protocol == "viewed_filtered"
    assert result.best_valid_score == result.valid_viewed_filtered["ndcg@10"]
    assert result.best_valid_score > result.best_valid_result["ndcg@10"]  # SASRec ranks history items high
    users = pd.read_csv("users.csv.gz")
    for key in ("ndcg@10", "hit@10"):
        assert users[key].mean() == pytest.approx(result.test_result[key], abs=5e-5)
        assert users[f"{key}_filtered"].mean() == pytest.approx(result.test_viewed_filtered[key], abs=5e-5)
    assert (users["rank_filtered"] <= users["rank"]).all() and (users["rank"] >= 1).all()
    assert (users.loc[users["rank"] <= 10, "hit@10"] == 1).all()  # in the top 10 however ties are broken
    assert ((users["rank"] <= 10) == (users["hit@10"] == 1)).mean() > 0.99
    assert (users["item_count"] >= 0).all() and (users["history_len"] >= 3).all()
    valid = pd.read_csv("users.valid.csv.gz")  # the best model's validation users, beside the test users
    assert valid["ndcg@10"].mean() == pytest.approx(result.best_valid_result["ndcg@10"], abs=5e-5)
    assert valid["ndcg@10_filtered"].mean() == pytest.approx(result.valid_viewed_filtered["ndcg@10"], abs=5e-5)
    assert (valid["history_len"] == users["history_len"] - 1).all()  # the validation item is not yet history
