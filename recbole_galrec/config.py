"""Assemble a RecBole ``Config`` with this package's properties layered in.

Precedence, highest first: command line > config files > ``properties/`` of this package > RecBole's
defaults. RecBole's ``Config`` merges its external config files in order, later files winning, and lets
them override its internal defaults; this package's property files are therefore passed as the first
config files, before the user's, so no private method of ``Config`` is copied or patched.
"""

import contextlib
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from recbole_galrec import compat, recbole_keys
from recbole_galrec.errors import ConfigError, GALRecError
from recbole_galrec.lookup import get_model

PROPERTIES_DIR = Path(__file__).resolve().parent / "properties"
PROFILE_DIR = PROPERTIES_DIR / "profile"


def property_files(model_name: str, dataset_name: str) -> list[str]:
    """This package's YAML defaults for a run: overall, then the model's, then the dataset's."""
    candidates = [
        PROPERTIES_DIR / "overall.yaml",
        PROPERTIES_DIR / "model" / f"{model_name}.yaml",
        PROPERTIES_DIR / "dataset" / f"{dataset_name}.yaml",
    ]
    return [str(path) for path in candidates if path.is_file()]


def available_profiles() -> list[str]:
    """Names of the profiles in ``properties/profile/``."""
    return sorted(path.stem for path in PROFILE_DIR.glob("*.yaml"))


def profile_file(name: str | None) -> str | None:
    """The YAML file of a profile (``None`` for no profile); an unknown name raises ConfigError."""
    if not name:
        return None
    path = PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"Unknown profile '{name}'. Available profiles: {', '.join(available_profiles()) or 'none'} "
            f"(the files in {PROFILE_DIR})."
        )
    return str(path)


def profile_files(name: str | None, model_name: str) -> list[str]:
    """A profile's files for one model: ``profile/<name>.yaml``, then ``profile/<name>/<model>.yaml`` if the
    profile has one for that model (e.g. GALRec's smaller batch under ``cpu``)."""
    general = profile_file(name)
    if general is None:
        return []
    specific = PROFILE_DIR / name / f"{model_name}.yaml"
    return [general] + ([str(specific)] if specific.is_file() else [])


def read_config_file(path: str) -> dict:
    """Read one user config file, with a clear error if it is missing or not a YAML mapping."""
    if not os.path.isfile(path):
        raise ConfigError(
            f"Config file '{path}' does not exist (working directory: {os.getcwd()}). "
            "Check the path given to --config_files."
        )
    with open(path, encoding="utf-8") as f:
        try:
            content = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ConfigError(
                f"Config file '{path}' is not valid YAML: {err}. Fix the file or drop it from --config_files."
            ) from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(
            f"Config file '{path}' must hold a mapping of 'key: value' lines, but it holds a {type(content).__name__}."
        )
    return content


@contextlib.contextmanager
def _argv_hidden_from_recbole():
    """RecBole's ``Config`` parses ``sys.argv`` itself (with ``eval``); the command line of this package
    is parsed by :mod:`recbole_galrec.cli` and passed in as ``config_dict`` instead."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


# RecBole's keys of one process of a multi-process run: set by the launcher
# (recbole_galrec.running.distributed), not by hand.
_PROCESS_KEYS = ("world_size", "local_rank", "offset", "ip", "port")


def check_user_settings(config_files: Iterable[str], config_dict: Mapping | None) -> dict:
    """Check what the user gave before anything runs: each config file is a readable YAML mapping, ``nproc``
    (processes of the run, :mod:`recbole_galrec.running.distributed`) is a whole number >= 1, and none of the keys the
    launcher sets for each process is given. Returns the given keys, later files and then ``config_dict``
    winning."""
    given = {}
    for path in config_files:
        given.update(read_config_file(path))
    given.update(config_dict or {})
    keys = [key for key in _PROCESS_KEYS if key in given]
    if keys:
        raise ConfigError(
            f"{', '.join(f'{k}={given[k]!r}' for k in keys)}: these keys are set for each process of a multi-process "
            "run by the launcher. Remove them; start several processes with nproc: N (--nproc=N) or with torchrun."
        )
    nproc = given.get("nproc", 1)
    if not recbole_keys.RULES["nproc"].accepts(nproc):  # checked before the config: it decides the processes
        raise ConfigError(f"nproc={nproc!r}: the number of processes of the run must be a whole number >= 1.")
    return given


def requested_processes(config_files: Iterable[str], config_dict: Mapping | None) -> int:
    """The ``nproc`` the user asked for (1 when not given), checked."""
    return check_user_settings(config_files, config_dict).get("nproc", 1)


def build_config(
    model: str | type,
    dataset: str,
    config_file_list: Iterable[str] | None = None,
    config_dict: Mapping | None = None,
    process: Mapping | None = None,
):
    """Return the RecBole ``Config`` of one run.

    Args:
        model: a model name (looked up in this package, then RecBole) or a model class.
        dataset: the dataset name; its atomic files are read from ``data_path/<dataset>/``
            (``ml-100k`` from the copy inside the recbole package).
        config_file_list: the user's YAML files, later files winning.
        config_dict: overrides that win over every file (the command line's ``--key=value``).
        process: this process's keys in a multi-process run (:func:`recbole_galrec.running.distributed.process_keys`);
            the config then joins the run's process group.
    """
    compat.apply()
    from recbole.config import Config

    model_class = get_model(model) if isinstance(model, str) else model
    user_files = list(config_file_list or [])
    given = check_user_settings(user_files, config_dict)
    files = property_files(model_class.__name__, dataset) + user_files
    try:
        with _argv_hidden_from_recbole():
            config = Config(
                model=model_class,
                dataset=dataset,
                config_file_list=files,
                config_dict={**(config_dict or {}), **(process or {})},
            )
    except GALRecError:
        raise
    except (ValueError, TypeError, NotImplementedError, AttributeError, KeyError, RuntimeError) as err:
        # Config itself reads metrics, topk and valid_metric, and a bad one can fail there with a message that
        # does not name it: name the key when one of them is the cause.
        recbole_keys.check({k: given[k] for k in recbole_keys.READ_BY_RECBOLE_CONFIG if k in given})
        raise ConfigError(f"RecBole rejected the configuration: {err}") from err
    # RecBole's common keys (epochs, batch sizes, learning rate, metrics, ...) are checked before any data is read:
    # RecBole itself reads most of them only where it uses them, minutes into a run.
    recbole_keys.check(config.final_config_dict)
    # A model's own keys (GALRec's settings) are checked here, before any data is read: a bad or misspelt key
    # stops the run at once instead of after the dataset is loaded and split.
    # They are read once, into ``config.settings`` (None for a model without own keys), which is what the
    # dataset hook, the preparation step, the model and the trainer read.
    settings_class = getattr(model_class, "settings_class", None)
    config.settings = settings_class.from_config(config) if settings_class is not None else None
    # A key neither RecBole nor this package reads is named in a warning (RecBole would keep it silently); in a
    # multi-process run, by the first process only.
    if not process or not process.get("local_rank"):
        recbole_keys.warn_unknown_keys(given)
    recbole_keys.settle_device(config)
    _check_half_precision(config)
    return config


def _check_half_precision(config) -> None:
    """``llm_dtype: float16`` trains with RecBole's gradient scaler on a GPU; elsewhere it is refused."""
    settings = config.settings
    if settings is None or getattr(settings, "llm_dtype", None) != "float16":
        return
    if config["device"].type != "cuda":
        raise ConfigError(
            "llm_dtype: float16 trains on a GPU only (with a gradient scaler); this run is on the "
            f"{config['device'].type}. Use llm_dtype: bfloat16 or float32."
        )
    if settings.llm_tuning == "full":
        raise ConfigError(
            "llm_dtype: float16 with llm_tuning: full would train float16 weights without float32 copies; "
            "use llm_dtype: bfloat16 or float32 for full tuning, or llm_tuning: lora."
        )
    config["enable_scaler"] = True  # RecBole's trainer then scales the loss (torch.amp.GradScaler)
