"""One run, top to bottom: config, seed, logger, dataset, split, preparation, model, trainer, fit, evaluate,
result (the steps of :mod:`recbole_galrec.running.steps`, timed and written out).

RecBole's ``recbole.quick_start`` is not used: it imports ray (which needs ``pkg_resources``) and counts
FLOPs by deep-copying the model, which is costly with a language model inside.
"""

import logging
import os
import time
from logging import getLogger
from typing import NamedTuple

from recbole_galrec.config import build_config, requested_processes
from recbole_galrec.errors import ConfigError
from recbole_galrec.layers.parameters import count_parameters
from recbole_galrec.running import distributed, progress
from recbole_galrec.running.checkpoints import check_start
from recbole_galrec.running.model_inputs import check_inputs, prepare
from recbole_galrec.running.per_user import PER_USER_METRICS, PerUserRecorder, write_per_user
from recbole_galrec.running.result import RunResult
from recbole_galrec.running.steps import construct_model, construct_trainer, load_data


def dataset_statistics(dataset) -> dict:
    """Users, items and interactions of a RecBole dataset (RecBole's padding id 0 not counted)."""
    return {
        "users": dataset.user_num - 1,
        "items": dataset.item_num - 1,
        "interactions": dataset.inter_num,
        "sparsity": dataset.sparsity,
    }


def run_recbole_galrec(
    model: str,
    dataset: str,
    config_file_list: list[str] | None = None,
    config_dict: dict | None = None,
    saved: bool = True,
    result_file: str | None = None,
    per_user_file: str | None = None,
    resume: str | None = None,
) -> RunResult:
    """Train and evaluate ``model`` on ``dataset`` and return (and optionally write) the result.

    Args:
        model: GALRec or any RecBole model name.
        dataset: dataset name (``ml-100k`` works offline with no ``data_path``).
        config_file_list: YAML files, later files winning.
        config_dict: overrides that win over every file.
        saved: keep the best checkpoint and reload it for the test phase.
        result_file: where to write the result as JSON (``None``: not written).
        per_user_file: where to write each test user's NDCG@10, Hit@10 and MRR@10 as a gzip CSV
            (:mod:`recbole_galrec.running.per_user`; ``None``: not written); the best model's validation users go
            beside it, in the same columns (:func:`valid_per_user_file`: ``users.csv.gz`` -> ``users.valid.csv.gz``).
        resume: a checkpoint of an interrupted run with the same settings (best or ``-last``) to continue from.

    Returns:
        The run's :class:`~recbole_galrec.running.result.RunResult` (its fields say what each value is). With
        ``nproc: N`` or under torchrun several processes train (:mod:`recbole_galrec.running.distributed`): the
        first process's result is returned, and only that process writes the result, log and checkpoint files.
    """
    nproc = requested_processes(config_file_list or [], config_dict)
    args = (model, dataset, config_file_list, config_dict, saved, result_file, per_user_file, resume)
    if not distributed.launched():
        if nproc == 1:
            return _run(*args)
        build_config(model, dataset, config_file_list, config_dict)  # every key checked before the processes start
        return distributed.spawn(nproc, run_recbole_galrec, *args)
    process = distributed.process_keys()
    if nproc not in (1, process["nproc"]):
        raise ConfigError(
            f"nproc={nproc}, but {process['nproc']} processes per machine were started (torchrun's --nproc_per_node). "
            "Give the same number or leave nproc out."
        )
    distributed.patch_recbole()
    try:
        return _run(*args, process)
    finally:
        distributed.close()


class _Fit(NamedTuple):
    best_valid_score: float
    best_valid_result: dict | None
    seconds: float  # the whole of fit, validations included


class _Test(NamedTuple):
    result: dict
    filtered: dict | None  # the same metrics under the viewed-filtered protocol
    seconds: float
    per_user: object  # the per-user metrics' frame; None when the evaluation gave no top-k data


def _run(model, dataset, config_file_list, config_dict, saved, result_file, per_user_file, resume, process=None):
    """One process's run (the only one, or one of several: then only the first process writes files)."""
    from recbole.utils import init_seed

    config = build_config(model, dataset, config_file_list, config_dict, process)
    check_inputs(config)  # an llm_path without a model fails before any data is read or external model trained
    resumed = check_start(config, resume)  # so do an unusable checkpoint_dir and a --resume file not of this run
    init_seed(config["seed"], config["reproducibility"])
    logger = _start_logging(config)
    dataset, train_data, valid_data, test_data = load_data(config)
    logger.info(dataset)
    statistics = dataset_statistics(dataset)
    with distributed.main_process_first():  # the first process trains or reads the external models, the others read
        prepare(config, train_data)
    model = construct_model(config, train_data)
    logger.info(model)
    parameters = count_parameters(model)._asdict()  # {"trainable": ..., "total": ...}
    logger.info(f"parameters: {parameters['trainable']:,} trainable of {parameters['total']:,}")
    trainer = construct_trainer(config, model)
    trainer.filter_viewed(train_data, valid_data, test_data)  # both protocols at every evaluation
    if resume:
        trainer.resume_checkpoint(resume, resumed)
    fit = _fit(trainer, train_data, valid_data, saved, config["show_progress"])
    test = _test(trainer, test_data, saved, config["show_progress"])
    if per_user_file:  # the same model's validation users: where it helps, judged without the test split
        valid = _test(trainer, valid_data, saved, config["show_progress"])
        _write_per_user(valid.per_user, valid_per_user_file(per_user_file), logger)
    per_user_file = _write_per_user(test.per_user, per_user_file, logger)
    checkpoint = trainer.saved_model_file if saved else None
    result = _result(config, statistics, parameters, trainer, fit, test, checkpoint, per_user_file)
    logger.info(f"best valid : {result.best_valid_result}")
    logger.info(f"test result: {result.test_result}")
    if result.test_viewed_filtered is not None:  # the literature's protocol: the user's earlier items not ranked
        logger.info(f"best valid, viewed filtered : {result.valid_viewed_filtered}")
        logger.info(f"test result, viewed filtered: {result.test_viewed_filtered}")
    if result_file and distributed.rank() == 0:
        result.write(result_file)
        logger.info(f"result written to {result_file}")
    return result


def _start_logging(config) -> logging.Logger:
    """RecBole's logger (console and log file) in the first process, errors only, to the console, in the others;
    then the config and the run's plan, logged and emitted (:mod:`recbole_galrec.running.progress`)."""
    from recbole.utils import init_logger

    if distributed.rank() == 0:
        # RecBole makes ./log/<model> by check-then-create: two runs starting at once in one folder (a benchmark's or
        # a search's workers) race, and the loser stops with FileExistsError. Made here first, race-free.
        os.makedirs(os.path.join("log", config["model"]), exist_ok=True)
        init_logger(config)
    else:
        root = logging.getLogger()
        root.setLevel(logging.ERROR)
        root.addHandler(logging.StreamHandler())
    logger = getLogger()
    logger.info(config)
    logger.info(
        f"run plan: at most {config['epochs']} epochs, validation every {config['eval_step']} epoch(s), "
        f"early stopping after {config['stopping_step']} validations without improvement"
    )
    progress.plan(config)
    return logger


def _fit(trainer, train_data, valid_data, saved: bool, show_progress: bool) -> _Fit:
    start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, saved=saved, show_progress=show_progress)
    seconds = time.perf_counter() - start + trainer.resumed_seconds  # a resumed run's seconds before the resume too
    return _Fit(best_valid_score, best_valid_result, seconds)


def valid_per_user_file(per_user_file: str) -> str:
    """Where a run writes its validation users' metrics, beside the test users' ``per_user_file``."""
    stem = per_user_file[: -len(".csv.gz")] if per_user_file.endswith(".csv.gz") else per_user_file
    return f"{stem}.valid.csv.gz"


def _test(trainer, test_data, saved: bool, show_progress: bool) -> _Test:
    """The test result (of the best checkpoint when one was saved), its seconds, and its per-user metrics; the same
    for the validation split when given it (``test_data`` is then the validation loader)."""
    recorder = PerUserRecorder(trainer, test_data._dataset.uid_field)  # the test pass only
    start = time.perf_counter()
    try:
        result = trainer.evaluate(test_data, load_best_model=saved, show_progress=show_progress)
    finally:
        recorder.close()
    seconds = time.perf_counter() - start
    per_user = recorder.frame(test_data._dataset)
    if per_user is not None and trainer.last_filtered is not None:
        columns = trainer.last_filtered.row_columns(test_data._dataset, trainer.viewed.item_counts(), PER_USER_METRICS)
        if all(len(values) == len(per_user) for values in columns.values()):
            per_user = per_user.assign(**columns)
    return _Test(result, trainer.filtered_result, seconds, per_user)


def _write_per_user(per_user, per_user_file: str | None, logger) -> str | None:
    """Write the per-user metrics to ``per_user_file`` (the first process only); the file the result names."""
    if per_user is None:
        logger.warning("no per-user test metrics: this evaluation gave no top-k data to take them from")
        return None
    if per_user_file and distributed.rank() == 0:
        os.makedirs(os.path.dirname(os.path.abspath(per_user_file)), exist_ok=True)
        write_per_user(per_user, per_user_file)
        logger.info(f"per-user metrics of {len(per_user):,} users written to {per_user_file}")
    return per_user_file or None


def _floats(metrics: dict | None) -> dict[str, float]:
    return {key: float(value) for key, value in (metrics or {}).items()}


def _result(config, statistics, parameters, trainer, fit: _Fit, test: _Test, checkpoint, per_user_file) -> RunResult:
    """The run's result, from its config, its trainer's records, its fit and its test."""
    epochs_run = len(trainer.train_loss_dict)
    train_pass_seconds = sum(trainer.epoch_seconds)
    test_users = len(test.per_user) if test.per_user is not None else None
    best = trainer.best_validation()  # the validation whose model is the best checkpoint
    return RunResult(
        model=config["model"],
        dataset=config["dataset"],
        dataset_statistics=statistics,
        parameters=parameters,
        best_valid_score=float(fit.best_valid_score),
        valid_score_bigger=config["valid_metric_bigger"],
        best_valid_result=_floats(fit.best_valid_result),
        test_result=_floats(test.result),
        eval_protocol=config["eval_protocol"] or "recbole",
        valid_viewed_filtered=_floats(trainer.best_valid_filtered) if trainer.best_valid_filtered else None,
        test_viewed_filtered=_floats(test.filtered) if test.filtered else None,
        best_valid_epoch=trainer.best_epoch(),
        epochs_run=epochs_run,
        max_epochs=config["epochs"],
        stopped_early=epochs_run < config["epochs"],
        time_budget_spent=trainer.time_budget_spent,
        train_seconds=fit.seconds,
        seconds_per_epoch=train_pass_seconds / max(len(trainer.epoch_seconds), 1),
        valid_seconds=sum(validation["seconds"] for validation in trainer.validations),
        test_seconds=test.seconds,
        time_to_best_seconds=best["at"] if best is not None else None,
        valid_curve=_valid_curve(trainer.validations),
        train_samples=trainer.train_samples,
        train_samples_per_second=_per_second(trainer.train_samples, train_pass_seconds),
        test_users=test_users,
        users_scored_per_second=_per_second(test_users, test.seconds) if test_users else None,
        checkpoint=checkpoint,
        per_user_file=per_user_file,
        processes=distributed.world_size(),
        peak_gpu_memory_bytes=_peak_gpu_memory(config["device"]),
    )


def _valid_curve(validations: list[dict]) -> list[dict]:
    """Each validation's epoch and validation metric under both protocols (the result's ``valid_curve``)."""
    return [{key: validation[key] for key in ("epoch", "recbole", "viewed_filtered")} for validation in validations]


def _peak_gpu_memory(device) -> int | None:
    """The most GPU memory torch held for tensors during the run (None off a GPU)."""
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        return None
    return int(torch.cuda.max_memory_allocated(device))


def _per_second(count: float, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None
