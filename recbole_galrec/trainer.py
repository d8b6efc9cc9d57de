"""Trainers this package adds to RecBole, picked by name: ``<Model>Trainer``."""

import numpy as np
from recbole.trainer import Trainer

__all__ = ["GALRecTrainer"]


class GALRecTrainer(Trainer):
    """RecBole's trainer, with ``train_sample: one_per_user``: each epoch trains on one randomly chosen
    training sample (a history prefix and its next item) per user instead of every prefix, drawn anew each
    epoch from ``seed + epoch``. With a language model inside, this is what makes an epoch affordable on a
    CPU; over epochs every prefix is still seen. ``train_sample: all`` is RecBole's behaviour."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.one_per_user = config["train_sample"] == "one_per_user"

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self.one_per_user:
            train_data = self._one_sample_per_user(train_data, epoch_idx)
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)

    def _one_sample_per_user(self, train_data, epoch_idx):
        """A dataloader over one random training sample per user for this epoch."""
        dataset = train_data._dataset
        users = dataset.inter_feat[dataset.uid_field].numpy()
        rng = np.random.default_rng(self.config["seed"] + epoch_idx)
        order = rng.permutation(len(users))
        _, first = np.unique(users[order], return_index=True)  # first occurrence in a random order
        chosen = np.sort(order[first])
        subset = dataset.copy(dataset.inter_feat[chosen])
        return type(train_data)(self.config, subset, train_data.sampler, shuffle=True)
