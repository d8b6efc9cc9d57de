"""One run, top to bottom: config, seed, logger, dataset, split, preparation, model, trainer, fit, evaluate,
result (the steps of :mod:`recbole_galrec.running.steps`, timed and written out).

RecBole's ``recbole.quick_start`` is not used: it imports ray (which needs ``pkg_resources``) and counts
FLOPs by deep-copying the model, which is costly with a language model inside.
"""

import json
import logging
import os
import time
from logging import getLogger

from recbole_galrec.config import build_config, requested_processes
from recbole_galrec.errors import ConfigError
from recbole_galrec.running import distributed
from recbole_galrec.running.model_inputs import prepare
from recbole_galrec.running.per_user import PerUserRecorder, write_per_user
from recbole_galrec.running.steps import construct_model, construct_trainer, load_data


def count_parameters(model) -> dict[str, int]:
    """Trainable and total parameter counts of a model."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total}


def dataset_statistics(dataset) -> dict:
    """Users, items and interactions of a RecBole dataset (RecBole's padding id 0 not counted)."""
    return {
        "users": dataset.user_num - 1,
        "items": dataset.item_num - 1,
        "interactions": dataset.inter_num,
        "sparsity": dataset.sparsity,
    }


def _time_to_best(validations: list[tuple[float, float, float]], best: float) -> float | None:
    """Seconds from the start of training to the end of the first validation that reached the best score."""
    return next((seconds for score, seconds, _ in validations if score == best), None)


def _peak_gpu_memory(device) -> int | None:
    """The most GPU memory torch held for tensors during the run (None off a GPU)."""
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        return None
    return int(torch.cuda.max_memory_allocated(device))


def _per_second(count: float, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None


def run_recbole_galrec(
    model: str,
    dataset: str,
    config_file_list: list[str] | None = None,
    config_dict: dict | None = None,
    saved: bool = True,
    result_file: str | None = None,
    per_user_file: str | None = None,
    resume: str | None = None,
) -> dict:
    """Train and evaluate ``model`` on ``dataset`` and return (and optionally write) the result.

    Args:
        model: GALRec or any RecBole model name.
        dataset: dataset name (``ml-100k`` works offline with no ``data_path``).
        config_file_list: YAML files, later files winning.
        config_dict: overrides that win over every file.
        saved: keep the best checkpoint and reload it for the test phase.
        result_file: where to write the result as JSON (``None``: not written).
        per_user_file: where to write each test user's NDCG@10, Hit@10 and MRR@10 as a gzip CSV
            (:mod:`recbole_galrec.running.per_user`; ``None``: not written).
        resume: a checkpoint of an interrupted run with the same settings (best or ``-last``) to continue from.

    Returns:
        ``{"model", "dataset", "dataset_statistics", "parameters", "best_valid_score",
        "valid_score_bigger", "best_valid_result", "test_result", "best_valid_epoch", "epochs_run",
        "max_epochs", "stopped_early", "train_seconds", "seconds_per_epoch", "valid_seconds", "test_seconds",
        "time_to_best_seconds", "train_samples", "train_samples_per_second", "test_users",
        "users_scored_per_second", "checkpoint", "per_user_file", "peak_gpu_memory_bytes", "processes"}``.
        ``train_seconds`` is the whole of ``fit`` (validation included); ``seconds_per_epoch`` the mean training
        pass alone;
        ``train_samples_per_second`` the training samples (prompts for GALRec) of all training passes over
        their seconds; ``time_to_best_seconds`` from the start of ``fit`` to the end of the validation that
        gave the best score; ``users_scored_per_second`` the test users over ``test_seconds``;
        ``stopped_early`` False when training ran all ``max_epochs`` (``epochs``) epochs;
        ``peak_gpu_memory_bytes`` the most GPU memory torch held (None off a GPU; the first process's in a
        multi-process run); ``processes`` how many processes trained (``nproc: N`` or torchrun,
        :mod:`recbole_galrec.running.distributed`: only the first one writes the result, log and checkpoint files).
    """
    nproc = requested_processes(config_file_list or [], config_dict)
    if not distributed.launched():
        if nproc == 1:
            return _run(model, dataset, config_file_list, config_dict, saved, result_file, per_user_file, resume)
        build_config(model, dataset, config_file_list, config_dict)  # every key checked before the processes start
        args = (model, dataset, config_file_list, config_dict, saved, result_file, per_user_file, resume)
        return distributed.spawn(nproc, run_recbole_galrec, *args)
    process = distributed.process_keys()
    if nproc not in (1, process["nproc"]):
        raise ConfigError(
            f"nproc={nproc}, but {process['nproc']} processes per machine were started (torchrun's --nproc_per_node). "
            "Give the same number or leave nproc out."
        )
    try:
        return _run(model, dataset, config_file_list, config_dict, saved, result_file, per_user_file, resume, process)
    finally:
        distributed.close()


def _init_logging(config) -> None:
    """RecBole's logger (console and log file) in the first process; errors only, to the console, in the others."""
    from recbole.utils import init_logger

    if distributed.rank() == 0:
        init_logger(config)
    else:
        root = logging.getLogger()
        root.setLevel(logging.ERROR)
        root.addHandler(logging.StreamHandler())


def _run(model, dataset, config_file_list, config_dict, saved, result_file, per_user_file, resume, process=None):
    """One process's run (the only one, or one of several: then only the first process writes files)."""
    from recbole.utils import init_seed

    config = build_config(model, dataset, config_file_list, config_dict, process)
    writes = distributed.rank() == 0
    init_seed(config["seed"], config["reproducibility"])
    _init_logging(config)
    logger = getLogger()
    logger.info(config)
    logger.info(
        f"run plan: at most {config['epochs']} epochs, validation every {config['eval_step']} epoch(s), "
        f"early stopping after {config['stopping_step']} validations without improvement"
    )

    dataset, train_data, valid_data, test_data = load_data(config)
    logger.info(dataset)
    statistics = dataset_statistics(dataset)
    with distributed.main_process_first():  # the first process trains or reads the external models, the others read
        prepare(config, train_data)
    model = construct_model(config, train_data)
    logger.info(model)
    parameters = count_parameters(model)
    logger.info(f"parameters: {parameters['trainable']:,} trainable of {parameters['total']:,}")

    trainer = construct_trainer(config, model)
    if resume:
        trainer.resume_checkpoint(resume)
    start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    train_seconds = time.perf_counter() - start
    recorder = PerUserRecorder(trainer, test_data._dataset.uid_field)  # the test pass only
    start = time.perf_counter()
    try:
        test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    finally:
        recorder.close()
    test_seconds = time.perf_counter() - start
    per_user = recorder.frame(test_data._dataset)
    if per_user is None:
        logger.warning("no per-user test metrics: this evaluation gave no top-k data to take them from")
    elif per_user_file and writes:
        os.makedirs(os.path.dirname(os.path.abspath(per_user_file)), exist_ok=True)
        write_per_user(per_user, per_user_file)
        logger.info(f"per-user test metrics of {len(per_user):,} users written to {per_user_file}")
    test_users = len(per_user) if per_user is not None else None
    epochs_run = len(trainer.train_loss_dict)
    logger.info(f"best valid : { {k: float(v) for k, v in (best_valid_result or {}).items()} }")
    logger.info(f"test result: { {k: float(v) for k, v in test_result.items()} }")

    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "dataset_statistics": statistics,
        "parameters": parameters,
        "best_valid_score": float(best_valid_score),
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": {k: float(v) for k, v in (best_valid_result or {}).items()},
        "test_result": {k: float(v) for k, v in test_result.items()},
        # RecBole counts validations without improvement in cur_step; the best epoch lies that many
        # validations before the last epoch (epochs are numbered from 0, as RecBole logs them).
        "best_valid_epoch": epochs_run - 1 - trainer.cur_step * trainer.eval_step,
        "epochs_run": epochs_run,
        "max_epochs": config["epochs"],
        "stopped_early": epochs_run < config["epochs"],
        "train_seconds": train_seconds,
        "seconds_per_epoch": sum(trainer.epoch_seconds) / max(len(trainer.epoch_seconds), 1),
        "valid_seconds": sum(seconds for _, _, seconds in trainer.validations),
        "test_seconds": test_seconds,
        "time_to_best_seconds": _time_to_best(trainer.validations, float(best_valid_score)),
        "train_samples": trainer.train_samples,
        "train_samples_per_second": _per_second(trainer.train_samples, sum(trainer.epoch_seconds)),
        "test_users": test_users,
        "users_scored_per_second": _per_second(test_users, test_seconds) if test_users else None,
        "checkpoint": trainer.saved_model_file if saved else None,
        "per_user_file": per_user_file if per_user is not None and per_user_file else None,
        "processes": distributed.world_size(),
        "peak_gpu_memory_bytes": _peak_gpu_memory(config["device"]),
    }
    if result_file and writes:
        folder = os.path.dirname(os.path.abspath(result_file))
        os.makedirs(folder, exist_ok=True)
        with open(result_file, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        logger.info(f"result written to {result_file}")
    return result
