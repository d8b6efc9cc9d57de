"""The run that gives one external model's vectors: its RecBole config (the GALRec run's data and split, the
model's own settings), the digest of every setting that shapes the vectors (the cache key), and a checkpoint
given instead of training, checked against the run's data."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import yaml

from recbole_galrec.config import PROPERTIES_DIR, build_config
from recbole_galrec.errors import ConfigError
from recbole_galrec.settings import ExternalSettings

# Keys of the GALRec config copied into the external run besides RecBole's dataset arguments.
_SHARED_KEYS = (
    "eval_args",
    "seed",
    "reproducibility",
    "device",
    "use_gpu",
    "gpu_id",
    "checkpoint_dir",
    "metrics",
    "topk",
    "valid_metric",
    "show_progress",
    "worker",
)
# Keys that change where or how fast a run goes, not the vectors it yields: left out of the cache key.
_RUNTIME_KEYS = frozenset({"device", "use_gpu", "gpu_id", "checkpoint_dir", "show_progress", "worker"})
# Bump when extraction changes, so that older cache files are not reused.
_CACHE_FORMAT = 2


def _canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _plain(value):
    """A JSON-plain copy (dicts, lists, str, numbers, bool, None), storable with ``weights_only=True``."""
    return json.loads(_canonical_json(value))


def _config_value(cfg, key):
    """``cfg[key]`` or None, for a RecBole Config or a plain mapping."""
    if hasattr(cfg, "final_config_dict"):
        return cfg.final_config_dict.get(key)
    return cfg.get(key) if isinstance(cfg, Mapping) else None


def _checkpoint_path(settings: ExternalSettings, name: str) -> str | None:
    path = settings.checkpoints.get(name)
    if path is None:
        return None
    path = str(path)
    if not os.path.isfile(path):
        raise ConfigError(
            f"external_checkpoints[{name}]: checkpoint '{path}' does not exist "
            f"(working directory: {os.getcwd()}). Fix the path or drop the key to train {name}."
        )
    return path


def _data_config(config) -> dict:
    """The data, split and evaluation settings the external run shares with the GALRec run."""
    from recbole.utils.argument_list import dataset_arguments

    data = {key: config[key] for key in dataset_arguments if config[key] is not None}
    if config["dataset"] != "ml-100k":  # RecBole resolves ml-100k to its bundled copy itself
        # RecBole's Config appends the dataset name to data_path: pass the parent folder.
        data["data_path"] = os.path.abspath(os.path.dirname(str(config["data_path"]).rstrip("/\\")))
    for key in _SHARED_KEYS:
        if config[key] is not None:
            data[key] = config[key]
    return data


def _model_param_keys(name: str) -> list[str]:
    """The keys of a model's YAML defaults (RecBole's and this package's) but training settings: its
    hyperparameters."""
    import recbole
    from recbole.utils.argument_list import training_arguments

    keys: set[str] = set()
    for folder in (
        os.path.join(os.path.dirname(recbole.__file__), "properties", "model"),
        str(PROPERTIES_DIR / "model"),
    ):
        path = os.path.join(folder, f"{name}.yaml")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                keys.update((yaml.safe_load(f) or {}).keys())
    return sorted(keys - set(training_arguments))


# The trained models a checkpoint of each external model may hold: SASRecText is SASRec's layers (its item table only
# started from text), so its vectors and frozen encoder are a SASRec's.
ACCEPTED_MODELS = {"SASRec": ("SASRec", "SASRecText")}


@dataclass
class ExternalRun:
    """One external model's run: its RecBole config, cache file and (when given) checkpoint."""

    name: str
    config: object  # the external run's RecBole Config
    key_config: dict  # every setting that shapes the vectors (stored in the cache)
    cache_path: str
    checkpoint_path: str | None
    checkpoint: dict | None


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_recbole_checkpoint(path: str, name: str) -> dict:
    # A RecBole checkpoint pickles its Config: it loads only with weights_only=False.
    # Load only checkpoints you trust.
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint or "config" not in checkpoint:
        raise ConfigError(
            f"external_checkpoints[{name}]: '{path}' is not a RecBole checkpoint (it lacks 'config' or 'state_dict')."
        )
    trained = _config_value(checkpoint["config"], "model")
    if trained not in ACCEPTED_MODELS.get(name, (name,)):
        raise ConfigError(f"external_checkpoints[{name}]: '{path}' holds a {trained} model, not {name}.")
    return dict(checkpoint)


def _check_checkpoint_data(run_config, checkpoint_config, name: str, path: str) -> None:
    """A checkpoint's ids are those of the dataset build it was trained on: refuse a different build."""
    from recbole.utils.argument_list import dataset_arguments

    keys = ["dataset", "eval_args"] + [k for k in dataset_arguments if k != "MAX_ITEM_LIST_LENGTH"]
    differences = [
        f"{key}: checkpoint {_config_value(checkpoint_config, key)!r}, this run {run_config[key]!r}"
        for key in keys
        if _plain(_config_value(checkpoint_config, key)) != _plain(run_config[key])
    ]
    if differences:
        raise ConfigError(
            f"external_checkpoints[{name}]: '{path}' was trained on other data or another split than this "
            f"run ({'; '.join(differences)}); its ids would not match. Retrain it on this run's data or drop "
            "the key to train it here."
        )


def plan_run(config, settings: ExternalSettings, name: str) -> ExternalRun:
    """Build the external run's config and its cache path from the GALRec run's ``config`` and its external
    ``settings``, without loading any data."""
    checkpoint_path = _checkpoint_path(settings, name)
    checkpoint = _load_recbole_checkpoint(checkpoint_path, name) if checkpoint_path else None
    data = _data_config(config)
    epochs, stopping_step = settings.epochs, settings.stopping_step
    overrides = dict(settings.overrides.get(name) or {})
    config_dict = {**data, "epochs": epochs, "stopping_step": stopping_step, **overrides}
    if checkpoint is not None:
        # The model must be rebuilt with the hyperparameters it was trained with.
        for key in _model_param_keys(name) + ["MAX_ITEM_LIST_LENGTH"]:
            value = _config_value(checkpoint["config"], key)
            if value is not None:
                config_dict[key] = value
    run_config = build_config(name, config["dataset"], config_dict=config_dict)
    run_config["device"] = config["device"] if config["device"] is not None else run_config["device"]
    if checkpoint is not None:
        _check_checkpoint_data(run_config, checkpoint["config"], name, checkpoint_path)

    from recbole.utils.argument_list import training_arguments

    key_config = _plain(
        {
            "format": _CACHE_FORMAT,
            "name": name,
            "dataset": config["dataset"],
            "data": {k: v for k, v in data.items() if k not in _RUNTIME_KEYS},
            "epochs": epochs,
            "stopping_step": stopping_step,
            "overrides": overrides,
            "seed": config["seed"],
            # Effective values, so a changed default (RecBole's or this package's YAML) is seen too.
            "model_params": {k: run_config[k] for k in _model_param_keys(name)},
            "training": {k: run_config[k] for k in training_arguments},
            "max_item_list_length": run_config["MAX_ITEM_LIST_LENGTH"],
            "checkpoint": _file_digest(checkpoint_path) if checkpoint_path else None,
        }
    )
    key = hashlib.sha256(_canonical_json(key_config).encode("utf-8")).hexdigest()[:12]
    file_name = f"{config['dataset']}-{name}-{key}.pt"
    cache_path = os.path.join(str(config["checkpoint_dir"]), "external", file_name)
    return ExternalRun(name, run_config, key_config, cache_path, checkpoint_path, checkpoint)
