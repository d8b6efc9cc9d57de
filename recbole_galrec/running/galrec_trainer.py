"""GALRec's trainer: RecBole's, plus one training sample per user and epoch, the start as a candidate for the best
checkpoint and the contrastive terms' top-1 shares. :func:`recbole_galrec.lookup.get_trainer` finds it by name
(``<Model>Trainer``); every run's trainer gets :func:`recbole_galrec.running.trainer.run_trainer`'s recording and
checkpoints on top."""

import numpy as np
from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_galrec.running import progress
from recbole_galrec.running.distributed import samples_per_epoch

__all__ = ["GALRecTrainer"]


class GALRecTrainer(Trainer):
    """RecBole's trainer, plus:

    - ``train_sample: one_per_user``: each epoch trains on one randomly chosen training sample (a history prefix
      and its next item) per user instead of every prefix, drawn anew each epoch from ``seed + epoch``. With a
      language model inside, this is what makes an epoch affordable on a CPU; over epochs every prefix is still
      seen. ``train_sample: all`` is RecBole's behaviour.
    - the optimiser over :meth:`GALRec.optimizer_groups` (``score_lr_scale``);
    - a validation before the first epoch, so that the start (with ``score_start: sasrec``, SASRec's own
      ranking) is a candidate for the best checkpoint, logged as epoch -1;
    - after every epoch, each contrastive term's top-1 share (how often the positive outscored all negatives)
      beside its chance level, so a collapsed term is visible in the log.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.one_per_user = config.settings.train_sample == "one_per_user"

    def _build_optimizer(self, **kwargs):
        """RecBole's optimiser over the model's parameter groups (the scoring maps' own learning rate)."""
        if "params" not in kwargs and hasattr(self.model, "optimizer_groups"):
            kwargs["params"] = self.model.optimizer_groups(kwargs.get("learning_rate", self.learning_rate))
        return super()._build_optimizer(**kwargs)

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        if valid_data and self.start_epoch == 0 and self.eval_step > 0:
            self._validate_start(valid_data, verbose, saved, show_progress)
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)

    def _validate_start(self, valid_data, verbose, saved, show_progress):
        score, result = self._valid_epoch(valid_data, show_progress=show_progress)
        self.best_valid_score, self.best_valid_result = score, result
        if verbose:
            self.logger.info(set_color("epoch -1 (before training) evaluating", "green") + f" [valid_score: {score:f}]")
        if saved:
            self._save_checkpoint(-1, verbose=verbose)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self.one_per_user:
            train_data = self._one_sample_per_user(train_data, epoch_idx)
        log = getattr(self.model, "contrast_log", None)
        if log is not None:
            log.reset()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        summary = log.summary() if log is not None else {}
        if summary:
            shares = ", ".join(f"{term} {top1:.4f} (chance {chance:.4f})" for term, (top1, chance) in summary.items())
            self.logger.info(f"epoch {epoch_idx} contrastive top-1 share: {shares}")
            progress.contrast(self.config, epoch_idx, summary)
        return loss

    def samples_of_epoch(self, train_data) -> int:
        """The samples the last epoch trained on."""
        return self._drawn if self.one_per_user else samples_per_epoch(train_data)

    def _one_sample_per_user(self, train_data, epoch_idx):
        """A dataloader over one random training sample per user for this epoch."""
        dataset = train_data._dataset
        users = dataset.inter_feat[dataset.uid_field].numpy()
        rng = np.random.default_rng(self.config["seed"] + epoch_idx)
        order = rng.permutation(len(users))
        _, first = np.unique(users[order], return_index=True)  # first occurrence in a random order
        chosen = np.sort(order[first])
        subset = dataset.copy(dataset.inter_feat[chosen])
        loader = type(train_data)(self.config, subset, train_data._sampler, shuffle=True)
        self._drawn = samples_per_epoch(loader)
        return loader
