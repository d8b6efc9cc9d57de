"""Model lookup: this package first, RecBole second, with a clear error for unknown names."""

import pytest
import torch

from recbole_galrec.errors import UnknownModelError
from recbole_galrec.lookup import get_model, get_trainer, known_models


@pytest.mark.parametrize("name", ["SASRec", "GRU4Rec", "BERT4Rec", "LightGCN"])
def test_recbole_models_are_found(name):
    cls = get_model(name)
    assert cls.__name__ == name
    assert cls.__module__.startswith("recbole.model.")


def test_unknown_model_lists_known_ones():
    with pytest.raises(UnknownModelError, match=r"Unknown model 'NoSuchModel'\. Known models: .*SASRec"):
        get_model("NoSuchModel")


def test_wrong_case_suggests_the_right_name():
    with pytest.raises(UnknownModelError, match="Did you mean 'SASRec'"):
        get_model("sasrec")


def test_known_models_skip_libraries_that_need_extra_packages():
    models = known_models()
    assert "XGBoost" not in models and "LightGBM" not in models
    assert len(models) > 50


def test_trainer_falls_back_to_recbole():
    from recbole.trainer import Trainer
    from recbole.utils import ModelType

    assert get_trainer(ModelType.SEQUENTIAL, "SASRec") is Trainer


def test_pop_counts_every_interaction_whatever_the_batch_size(workdir):
    """RecBole's own Pop counts an item once per batch; the package's Pop counts each interaction."""
    from recbole.data import data_preparation

    from recbole_galrec.config import build_config
    from recbole_galrec.data import create_dataset

    assert get_model("Pop").__module__ == "recbole_galrec.model.pop"
    counts = []
    for batch_size in (64, 4096):
        config = build_config("Pop", "ml-100k", config_dict={"train_batch_size": batch_size})
        train, _, _ = data_preparation(config, create_dataset(config))
        model = get_model("Pop")(config, train._dataset)
        for batch in train:
            model.calculate_loss(batch)
        counts.append(model.item_cnt.squeeze(1).clone())
    items = train._dataset.inter_feat[train._dataset.iid_field]
    expected = torch.bincount(items, minlength=len(counts[0]))
    assert torch.equal(counts[0], expected) and torch.equal(counts[1], expected)
