"""What one run gives: :class:`RunResult`, returned by :func:`recbole_galrec.quick_start.run_recbole_galrec` and
written as JSON by ``--result_file``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from recbole_galrec.running.files import write_atomic


@dataclass
class RunResult:
    """The result of one run (in a multi-process run, the first process's; its fields are the JSON's keys)."""

    model: str  # the model's name (GALRec or a RecBole model)
    dataset: str  # the dataset's name
    dataset_statistics: dict  # users, items, interactions, sparsity (RecBole's padding id 0 not counted)
    parameters: dict[str, int]  # {"trainable": ..., "total": ...} parameter counts of the model
    best_valid_score: float  # the best validation score (valid_metric) of training
    valid_score_bigger: bool  # whether a bigger validation score is better (valid_metric_bigger)
    best_valid_result: dict[str, float]  # every validation metric at the best validation
    test_result: dict[str, float]  # every test metric (of the best checkpoint when it was saved)
    eval_protocol: str  # the ranking that picked the best epoch: recbole or viewed_filtered
    valid_viewed_filtered: dict[str, float] | None  # best_valid_result's metrics with earlier items excluded
    test_viewed_filtered: dict[str, float] | None  # test_result's metrics with earlier items excluded
    best_valid_epoch: int  # the epoch of the best validation (numbered from 0; -1: before training)
    epochs_run: int  # training epochs run (resumed ones included)
    max_epochs: int  # the most epochs training could run (``epochs``)
    stopped_early: bool  # False when training ran all max_epochs epochs
    time_budget_spent: bool  # training stopped at train_time_budget (before early stopping or its epochs ended it)
    train_seconds: float  # the whole of fit, validations included
    seconds_per_epoch: float  # the mean training pass alone (validation excluded)
    valid_seconds: float  # all validations together
    test_seconds: float  # the test evaluation
    time_to_best_seconds: float | None  # from the start of fit to the end of the validation that gave the best score
    # The validation metric (valid_metric) at each validation, in order: {"epoch" (-1: before training), "recbole",
    # "viewed_filtered"} (None where unknown: not measured, or a resumed checkpoint's validation of an older version)
    valid_curve: list[dict]
    train_samples: int  # training samples (prompts for GALRec) of all training passes, over all processes
    train_samples_per_second: float | None  # train_samples over the seconds of the training passes
    test_users: int | None  # users scored in the test (None: the evaluation gave no per-user data)
    users_scored_per_second: float | None  # test_users over test_seconds
    checkpoint: str | None  # the best checkpoint (None: the run saved none)
    per_user_file: str | None  # the per-user test metrics' file (None: not written)
    processes: int  # how many processes trained (nproc or torchrun)
    peak_gpu_memory_bytes: int | None  # the most GPU memory torch held for tensors (None off a GPU)

    def to_dict(self) -> dict:
        """The fields as a dict, in field order (what the result file holds)."""
        return dataclasses.asdict(self)

    def write(self, path: str) -> None:
        """Write :meth:`to_dict` as indented JSON to ``path``, creating its folder. The file appears whole or not
        at all (:func:`recbole_galrec.running.files.write_atomic`): a reader in another process never sees half."""
        write_atomic(path, lambda f: json.dump(self.to_dict(), f, indent=2))
