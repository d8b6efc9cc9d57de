"""Model lookup: this package first, RecBole second, with a clear error for unknown names."""

import pytest

from recbole_galrec.errors import UnknownModelError
from recbole_galrec.utils import get_model, get_trainer, known_models


@pytest.mark.parametrize("name", ["SASRec", "GRU4Rec", "BERT4Rec", "LightGCN", "Pop"])
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
