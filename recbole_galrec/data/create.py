"""Create a RecBole dataset, looking for a plugin dataset class first, with clear errors for missing data."""

import os
import urllib.error
from logging import getLogger

import yaml

from recbole_galrec.data import dataset as plugin_datasets
from recbole_galrec.data.atomic import Reading, check_atomic_files, tsv_reading
from recbole_galrec.errors import DatasetNotFoundError

DATA_SECTION = "the 'Datasets' section of the README"


def _recbole_downloadable() -> set[str]:
    """Dataset names RecBole knows how to download."""
    import recbole

    url_file = os.path.join(os.path.dirname(recbole.__file__), "properties", "dataset", "url.yaml")
    with open(url_file, encoding="utf-8") as f:
        return set(yaml.safe_load(f))


def check_dataset_files(config) -> Reading:
    """Fail early, with a message, when a dataset's interaction file is absent and cannot be downloaded, or when
    an atomic file the run loads is malformed (:func:`recbole_galrec.data.atomic.check_atomic_files`); return how
    RecBole must read the files (:func:`recbole_galrec.data.atomic.tsv_reading`)."""
    name, folder = config["dataset"], config["data_path"]
    inter_file = os.path.join(folder, f"{name}.inter")
    if os.path.isfile(inter_file) or config["benchmark_filename"]:
        return check_atomic_files(config)
    if name in _recbole_downloadable():
        return Reading()  # RecBole downloads it (checked as it is read); a failed download becomes a clear error
    raise DatasetNotFoundError(
        f"Dataset '{name}' not found: expected its atomic files in '{folder}' "
        f"(at least '{name}.inter', and '{name}.item' for item text), and '{name}' is not a dataset "
        f"RecBole can download. Point --data_path to the folder that holds '{name}/', or see {DATA_SECTION}."
    )


def get_dataset_class(model_name: str):
    """Return ``recbole_galrec.data.dataset.<Model>Dataset`` if it exists, else ``None`` (RecBole looks for a
    model's dataset class only in ``recbole.data.dataset``)."""
    return getattr(plugin_datasets, f"{model_name}Dataset", None)


def create_dataset(config):
    """Build the dataset of ``config``: ``recbole_galrec.data.dataset.<Model>Dataset`` when the model
    has one, else RecBole's choice by model type. Its atomic files are checked first and read as tab-separated
    text without quoting (:mod:`recbole_galrec.data.atomic`)."""
    reading = check_dataset_files(config)
    dataset_class = get_dataset_class(config["model"])
    try:
        with tsv_reading(config, reading):
            if dataset_class is not None:
                return dataset_class(config)
            from recbole.data import create_dataset as recbole_create_dataset

            return recbole_create_dataset(config)
    except (urllib.error.URLError, OSError) as err:
        if os.path.isfile(os.path.join(config["data_path"], f"{config['dataset']}.inter")):
            raise
        getLogger(__name__).debug("download failed", exc_info=True)
        raise DatasetNotFoundError(
            f"Dataset '{config['dataset']}' is not in '{config['data_path']}' and downloading it failed "
            f"({err}). Offline, place '{config['dataset']}.inter' (and '.item') in that folder, "
            f"or point --data_path to the folder holding '{config['dataset']}/'; see {DATA_SECTION}."
        ) from None
