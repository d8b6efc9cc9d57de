"""The one run path: seed, data, model, trainer. Every training run goes through it: the main run
(:mod:`recbole_galrec.quick_start`) and the run of each external model GALRec is fed with
(:mod:`recbole_galrec.external`)."""

import os

from recbole_galrec import recbole_keys
from recbole_galrec.data import create_dataset
from recbole_galrec.lookup import get_model, get_trainer
from recbole_galrec.running.distributed import rank
from recbole_galrec.running.trainer import run_trainer


def load_data(config):
    """Seed, then the dataset of ``config`` and its splits: ``(dataset, train_data, valid_data, test_data)``."""
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    recbole_keys.check_cut_offs(config, dataset.item_num - 1)  # RecBole's padding id 0 is not an item
    train_data, valid_data, test_data = data_preparation(config, dataset)
    return dataset, train_data, valid_data, test_data


def construct_model(config, train_data):
    """Reseed, then build the model of ``config`` on the training split and move it to the run's device. What
    the model needs besides its config and data (:mod:`recbole_galrec.running.model_inputs`) must be attached before
    (an item table prepared from text is loaded here: a model rebuilt from a checkpoint has none to load).
    Every process of a multi-process run builds the same model, then reseeds with ``seed + rank`` for random
    streams of its own (dropout)."""
    from recbole.utils import init_seed

    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    text_table = getattr(train_data._dataset, "item_text_table", None)  # SASRecText's start, when prepared
    if text_table is not None:
        model.load_item_text(text_table)
    if rank():
        init_seed(config["seed"] + rank(), config["reproducibility"])
    return model


def construct_trainer(config, model):
    """The model's trainer (this package's ``<Model>Trainer`` or RecBole's choice) with what every run's trainer
    gets (:func:`recbole_galrec.running.trainer.run_trainer`: recording, resumable checkpoints, a NaN guard)."""
    # RecBole's trainer creates the folder only if it does not exist: processes of one run starting together race
    os.makedirs(config["checkpoint_dir"], exist_ok=True)
    return run_trainer(get_trainer(config["MODEL_TYPE"], config["model"]))(config, model)
