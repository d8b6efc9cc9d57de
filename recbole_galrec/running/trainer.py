"""What every run's trainer gets (:func:`run_trainer`: recording, atomic and resumable checkpoints, a guard
against NaN losses), whichever trainer class RecBole or this package picks for its model."""

import os
import time
from functools import cache

import torch
from recbole.utils import set_color

from recbole_galrec.errors import TrainingError
from recbole_galrec.running import distributed, progress
from recbole_galrec.running.checkpoints import (
    check_resume,
    claim,
    last_file,
    random_states,
    restore_random_states,
    run_identity,
    save_atomic,
    to_device,
    unique_file,
)
from recbole_galrec.running.filtered import FILTERED, FilteredEvaluation, ViewedHistories

__all__ = ["run_trainer"]


class _RunTrainer:
    """What every run's trainer does besides RecBole's training (mixed in before the trainer class by
    :func:`run_trainer`):

    - records what the run reports: ``epoch_seconds`` (each training pass, validation excluded),
      ``validations`` (one dict each: ``epoch``, ``score`` (the one that picks the best epoch), ``recbole`` and
      ``viewed_filtered`` (the validation metric under each protocol; the latter None when not measured), ``at``
      (seconds since the start of fit) and ``seconds`` (what it took)), ``train_samples``;
      and emits the training's progress events (:mod:`recbole_galrec.running.progress`): its start and end,
      each epoch's seconds and loss parts, each validation's score and seconds;
    - writes checkpoints atomically, with the random states and the best result
      (:mod:`recbole_galrec.running.checkpoints`), and besides the best one a ``-last`` checkpoint after every
      epoch, from which :meth:`resume_checkpoint` continues an interrupted run exactly as if it had not stopped;
    - stops at a NaN or infinite loss with a message naming the loss part, the epoch and the step;
    - after :meth:`filter_viewed`, evaluates validation and test under both protocols from the same scores
      (:mod:`recbole_galrec.running.filtered`): RecBole's result as always, the viewed-filtered one in
      ``filtered_result`` (and the best validation's in ``best_valid_filtered``); ``eval_protocol`` names the one
      that picks the best epoch;
    - stops training at the first epoch that starts after ``train_time_budget`` seconds of fit (when set), as
      early stopping would: the best checkpoint so far is the run's (``time_budget_spent``);
    - in a multi-process run (:mod:`recbole_galrec.running.distributed`): one checkpoint name for all processes, the
      first process's evaluation result as the run's, and all processes done with training before the test.
    """

    _resumed_generator = None
    _finished = False
    _viewed: dict = {}  # id(evaluation loader) -> the earlier items its filtered ranking masks
    filtered_result: dict | None = None  # the viewed-filtered metrics of the last evaluation
    last_filtered: FilteredEvaluation | None = None  # the last evaluation's filtered pass (struct, ranks)
    best_valid_filtered: dict | None = None  # the viewed-filtered validation metrics of the best epoch
    _claim = None  # the lock on the checkpoint files this run writes (checkpoints.claim)
    _resumed_counters: dict = {}  # train_samples, epoch_seconds, validations, fit_seconds at the resumed checkpoint
    resumed_seconds = 0.0  # the seconds of fit before the resume: part of the run's training time
    time_budget_spent = False  # training stopped at train_time_budget, not by early stopping or its epochs

    def __init__(self, config, model):
        super().__init__(config, model)
        # RecBole names the file by the second: two runs started in the same second would share it
        self.saved_model_file = unique_file(self.saved_model_file)
        self._run_identity = run_identity(config)  # what a checkpoint must match to be resumed by this run
        if config["single_spec"] or config["local_rank"] == 0:  # the process that writes the checkpoints
            self._claim = claim(self.saved_model_file)

    def filter_viewed(self, train_data, valid_data, test_data) -> ViewedHistories:
        """Evaluate ``valid_data`` and ``test_data`` under the viewed-filtered protocol too, from now on."""
        self.viewed = ViewedHistories.from_splits(train_data, valid_data)
        self._viewed = {id(valid_data): self.viewed.before_valid, id(test_data): self.viewed.before_test}
        return self.viewed

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        history = self._viewed.get(id(eval_data)) if eval_data else None
        if history is None:
            self.filtered_result = self.last_filtered = None
            return super().evaluate(eval_data, load_best_model, model_file, show_progress)
        filtered = FilteredEvaluation(self, history, eval_data._dataset.uid_field)
        try:
            result = super().evaluate(eval_data, load_best_model, model_file, show_progress)
        finally:
            filtered.close()
        self.filtered_result = filtered.finish()
        self.last_filtered = filtered
        return result

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        counters = self._resumed_counters  # a resumed run counts from where its checkpoint left off
        self.epoch_seconds: list[float] = list(counters.get("epoch_seconds", []))
        self.validations: list[dict] = [_validation(v) for v in counters.get("validations", [])]
        self.train_samples = counters.get("train_samples", 0)
        self.resumed_seconds = counters.get("fit_seconds", 0.0)
        self._fit_start = time.perf_counter() - self.resumed_seconds
        self._train_generator = getattr(train_data, "generator", None)
        self._saving = saved
        if not self.config["single_spec"]:  # one run of several processes: the first one writes the checkpoints
            self.saved_model_file = distributed.broadcast_object(self.saved_model_file)
        if self._resumed_generator is not None and self._train_generator is not None:
            self._train_generator.set_state(self._resumed_generator)
        if self.start_epoch and self.start_epoch >= self.epochs and not self._finished:
            # resumed under an epoch cap that its checkpoint has reached: it ends here, as if at that cap from the
            # start (RecBole's fit would write the last epoch's weights over the best checkpoint)
            self._finished = True
            if saved:
                self._save_last(self.start_epoch - 1, finished=True)
        if self._finished:  # the resumed run had ended its training: nothing is left to train
            self._release_files()
            return self.best_valid_score, self.best_valid_result
        self._epoch = self.start_epoch - 1  # a validation before the first epoch is epoch start - 1 (-1)
        resumed = None
        if self.start_epoch:  # the terminal of a resumed run shows its whole training, not this process's part
            resumed = {"epochs": self.start_epoch, "seconds": self.resumed_seconds, "best_epoch": self.best_epoch()}
            resumed["best"] = float(self.best_valid_score)
        progress.training_start(self.config, resumed)
        try:
            result = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        except _TimeBudgetSpent:
            result = self.best_valid_score, self.best_valid_result
        progress.training_end(self.config, len(self.train_loss_dict), result[0])
        if saved:
            # a run stopped by its time budget is not finished: --resume with a larger budget trains on
            self._save_last(
                max(self.train_loss_dict, default=self.start_epoch - 1), finished=not self.time_budget_spent
            )
        if not self.config["single_spec"]:
            distributed.barrier()  # the first process's checkpoints are written before any process loads the best
        self._release_files()
        return result

    def best_validation(self) -> dict | None:
        """The validation whose model is the best checkpoint: the last one that reached the best score (RecBole
        takes a score equal to the best as the new best); None before any validation."""
        best = float(self.best_valid_score)
        return next((v for v in reversed(self.validations) if v["score"] == best), None)

    def best_epoch(self) -> int:
        """The epoch of :meth:`best_validation` (numbered from 0; -1: the validation before training). RecBole's
        own reckoning, the last epoch less ``cur_step`` validations, holds only when the last epoch trained was
        validated, which a run stopped by its time budget, a cap that is not a multiple of ``eval_step`` or a
        resume from a ``-last`` checkpoint between validations need not be; it serves for validations saved
        without their epochs."""
        best = self.best_validation()
        if best is not None and best["epoch"] is not None:
            return best["epoch"]
        return max(self.train_loss_dict, default=self.start_epoch - 1) - self.cur_step * self.eval_step

    def _release_files(self) -> None:
        """This run writes no more checkpoints: another run may resume from them now."""
        if self._claim is not None:
            self._claim.release()

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self._saving and epoch_idx > self.start_epoch:
            # the previous epoch, its validation and its best checkpoint are done: the state to resume from
            self._save_last(epoch_idx - 1)
        if epoch_idx > self.start_epoch and self._budget_spent():
            self.logger.info(
                set_color(f"train_time_budget of {self.config['train_time_budget']} s spent", "yellow")
                + f": training stops before epoch {epoch_idx}; the best checkpoint so far is the run's"
            )
            self.time_budget_spent = True
            raise _TimeBudgetSpent
        start = time.perf_counter()
        self._epoch, self._step = epoch_idx, 0
        loss = super()._train_epoch(
            train_data,
            epoch_idx,
            loss_func=self._finite(loss_func or self.model.calculate_loss),
            show_progress=show_progress,
        )
        self.epoch_seconds.append(time.perf_counter() - start)
        progress.epoch(self.config, epoch_idx, self.epoch_seconds[-1], loss)
        # The samples the epoch trained on: a trainer that draws them says how many (GALRecTrainer); otherwise
        # every row of the training split.
        drawn = getattr(super(), "samples_of_epoch", None)
        self.train_samples += drawn(train_data) if drawn else distributed.samples_per_epoch(train_data)
        return loss

    def _budget_spent(self) -> bool:
        """Whether fit has run ``train_time_budget`` seconds (the first process decides for all of a run's)."""
        budget = self.config["train_time_budget"]
        spent = budget is not None and time.perf_counter() - self._fit_start >= budget
        return spent if self.config["single_spec"] else distributed.broadcast_object(spent)

    def _valid_epoch(self, valid_data, show_progress=False):
        from recbole.utils import calculate_valid_score, early_stopping

        start = time.perf_counter()
        recbole_score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        score, filtered = recbole_score, None
        if self.filtered_result is not None:
            filtered = float(calculate_valid_score(self.filtered_result, self.valid_metric))
            if self.config["eval_protocol"] == FILTERED:
                score = filtered
        # whether RecBole's early stopping takes this score as the new best (its update flag; a tie is: the
        # checkpoint, result and best epoch move to the later of two tied validations, and so does ours)
        better = early_stopping(score, self.best_valid_score, 0, 0, bigger=self.valid_metric_bigger)[3]
        if better:
            self.best_valid_filtered = self.filtered_result
        end = time.perf_counter()
        self.validations.append(
            {
                "epoch": self._epoch,
                "score": float(score),
                "recbole": float(recbole_score),
                "viewed_filtered": filtered,
                "at": end - self._fit_start,
                "seconds": end - start,
            }
        )
        if filtered is not None:
            self.logger.info(f"valid {self.valid_metric} viewed filtered: {filtered:.4f}")
        progress.validation(self.config, self._epoch, score, end - start, filtered=filtered)
        return score, result

    def _map_reduce(self, result, num_sample):
        """RecBole averages the processes' metrics here; every process has evaluated every user (evaluation is
        not sharded, :func:`recbole_galrec.running.distributed.patch_recbole`), so the run's result is the first
        process's, given to all so that early stopping decides alike everywhere."""
        return distributed.broadcast_object(result)

    # ------------------------------------------------------------------ numerics
    def _finite(self, loss_func):
        """``loss_func`` that stops training when a part of the loss is NaN or infinite."""
        names = getattr(self.model, "loss_names", None)

        def checked(interaction):
            losses = loss_func(interaction)
            parts = losses if isinstance(losses, tuple) else (losses,)
            for index, part in enumerate(parts):
                if not bool(torch.isfinite(part).all()):
                    name = names[index] if names and index < len(names) else f"loss part {index}"
                    last = last_file(self.saved_model_file)
                    kept = f" The last good checkpoint is {last} (--resume={last})." if os.path.isfile(last) else ""
                    raise TrainingError(
                        f"{self.config['model']}: the loss {name} is {float(part.detach().float().sum())} at epoch "
                        f"{self._epoch}, step {self._step}; training stopped.{kept} Lower learning_rate, or check "
                        "the data and the model's settings (llm_dtype float16 overflows easily; bfloat16 does not)."
                    )
            self._step += 1
            return losses

        return checked

    # ------------------------------------------------------------------ checkpoints
    def _state(self, epoch: int) -> dict:
        return {
            "config": self.config if self.config["single_spec"] else distributed.one_process_config(self.config),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "best_valid_result": self.best_valid_result,
            "best_valid_filtered": self.best_valid_filtered,
            "train_loss_dict": dict(self.train_loss_dict),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "random_states": random_states(),
            "train_generator": self._train_generator.get_state() if self._train_generator is not None else None,
            "best_file": self.saved_model_file,
            "run": self._run_identity,  # checked on resume (checkpoints.check_resume)
            "counters": {
                "train_samples": self.train_samples,
                "epoch_seconds": list(self.epoch_seconds),
                "validations": list(self.validations),
                "fit_seconds": time.perf_counter() - self._fit_start,
            },
        }

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """The best checkpoint (RecBole's contents and more), written atomically."""
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        save_atomic(self._state(epoch), path)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")

    def _save_last(self, epoch: int, finished: bool = False) -> None:
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        state = self._state(epoch)
        state["finished"] = finished
        save_atomic(state, last_file(self.saved_model_file))

    def resume_checkpoint(self, resume_file, checkpoint: dict | None = None):
        """Continue from a checkpoint of this package (best or ``-last``) of the same run: weights, optimizer,
        epoch, early-stopping state, best result, random states, counters; the run then goes on as the interrupted
        one would. ``checkpoint``: the file's contents as :func:`~recbole_galrec.running.checkpoints.check_resume`
        gave them (checked before the run loaded its data); ``None``: read and checked here."""
        if checkpoint is None:
            checkpoint = check_resume(str(resume_file), self.config)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(to_device(checkpoint.get("other_parameter"), self.device))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint["best_valid_result"]
        self.best_valid_filtered = checkpoint.get("best_valid_filtered")
        self.train_loss_dict = dict(checkpoint["train_loss_dict"])
        self.saved_model_file = checkpoint["best_file"]
        if self._claim is not None:  # this run writes the resumed run's files now, unless a live run does
            self._claim.release()
            self._claim = claim(self.saved_model_file)
        self._resumed_counters = checkpoint.get("counters") or {}
        self._finished = bool(checkpoint.get("finished", False))
        self._resumed_generator = checkpoint["train_generator"]
        restore_random_states(checkpoint["random_states"])
        self.logger.info(f"resumed from {resume_file}: training continues at epoch {self.start_epoch}")


def _validation(saved) -> dict:
    """One validation of a checkpoint's counters as :attr:`_RunTrainer.validations` holds it; a checkpoint written
    before validations were dicts holds ``(score, at, seconds)``, whose epoch and per-protocol scores are unknown."""
    if isinstance(saved, dict):
        return dict(saved)
    score, at, seconds = saved
    return {"epoch": None, "score": score, "recbole": None, "viewed_filtered": None, "at": at, "seconds": seconds}


class _TimeBudgetSpent(Exception):
    """Raised at the start of an epoch once ``train_time_budget`` is spent; :meth:`_RunTrainer.fit` ends there."""


@cache
def run_trainer(trainer_class: type) -> type:
    """``trainer_class`` with :class:`_RunTrainer` mixed in (one class per trainer class)."""
    return type(trainer_class.__name__, (_RunTrainer, trainer_class), {"__doc__": trainer_class.__doc__})
