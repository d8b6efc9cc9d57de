"""User and item vectors of traditional recommenders ("external embeddings") for GALRec.

For each name in ``config["external_models"]`` (default ``["SASRec", "LightGCN"]``),
:func:`load_external_embeddings` returns that model's user and item tables, row-aligned with the GALRec
run's dataset. The vectors come from, in this order:

1. a cache file ``<checkpoint_dir>/external/<dataset>-<model>-<key>.pt`` written by an earlier call;
2. the RecBole checkpoint ``config["external_checkpoints"][<model>]`` when one is given;
3. otherwise a RecBole training run of that model on the same data and split as the GALRec run
   (``external_epochs``, default 20, with early stopping after ``external_stopping_step``, default 3,
   validations without improvement; ``external_config[<model>]`` overrides any other key).

Only training interactions shape the vectors: LightGCN's graph holds the training split only, and a
SASRec user vector encodes the user's training history (never the validation or test item).
Validation is used for early stopping only.

A sequential model's user vector is a function of a history, so SASRec's cache also keeps its frozen sequence
encoder (:class:`SASRecUserEncoder`): GALRec recomputes the vector of a prompt's own user from the history in
that prompt. A training prefix, a validation history and a test history (which ends with the validation item)
then each get SASRec's vector for exactly that history, not one fixed vector of the whole training history
(which would hold a training prefix's target and be one item out of date at test time). LightGCN has no
sequence encoder: the own user's vector is the mean of LightGCN's item vectors over the history
(:class:`HistoryMeanEncoder`), never its row fitted on all of the user's training edges.

RecBole numbers users and items per dataset build, so vectors are aligned by token (the raw id in the
atomic files), not by internal id. The cache stores vectors in token order and can be aligned with any
build of the dataset. ``key`` is a digest of every setting that shapes the vectors, so a changed setting
never reuses stale vectors.
"""

from __future__ import annotations

from logging import getLogger

import torch

from recbole_galrec.errors import ConfigError
from recbole_galrec.external.cache import align, read_cache, token2id
from recbole_galrec.external.extract import EXTRACTORS, extract_payload, padded_training_histories
from recbole_galrec.external.plan import ExternalRun, plan_run
from recbole_galrec.model.encoders import ExternalEmbeddings, HistoryMeanEncoder, SASRecUserEncoder
from recbole_galrec.running.checkpoints import save_atomic
from recbole_galrec.running.steps import construct_model, construct_trainer, load_data
from recbole_galrec.settings import ExternalSettings

__all__ = ["EXTRACTORS", "cache_file", "load_external_embeddings", "padded_training_histories", "train_external_model"]

logger = getLogger(__name__)


def cache_file(config, settings: ExternalSettings, name: str) -> str:
    """Where :func:`load_external_embeddings` caches model ``name``'s vectors for this GALRec config."""
    return plan_run(config, settings, name).cache_path


def train_external_model(run_config):
    """Train the external model of ``run_config`` through the run path and reload its best checkpoint.

    Returns ``(model, train_data, best_valid_result)``.
    """
    _, train_data, valid_data, _ = load_data(run_config)
    model = construct_model(run_config, train_data)
    trainer = construct_trainer(run_config, model)
    _, valid_result = trainer.fit(train_data, valid_data, saved=True, show_progress=bool(run_config["show_progress"]))
    checkpoint = torch.load(trainer.saved_model_file, map_location=run_config["device"], weights_only=False)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    logger.info(f"external {run_config['model']}: best checkpoint {trainer.saved_model_file}")
    return model, train_data, valid_result


def model_from_checkpoint(run: ExternalRun):
    """The external model of ``run`` built on its data through the run path, with the checkpoint's weights."""
    _, train_data, _, _ = load_data(run.config)
    model = construct_model(run.config, train_data)
    try:
        model.load_state_dict(run.checkpoint["state_dict"])
    except RuntimeError as err:
        raise ConfigError(
            f"external_checkpoints[{run.name}]: '{run.checkpoint_path}' does not fit a {run.name} built on "
            f"this run's data: {err}"
        ) from None
    model.load_other_parameter(run.checkpoint.get("other_parameter"))
    return model, train_data


def load_external_embeddings(config, settings: ExternalSettings, dataset) -> list[ExternalEmbeddings]:
    """Return the vectors of every model of ``settings.models``, aligned with ``dataset``.

    ``config`` is the GALRec run's RecBole Config (its data, split and seed), ``settings`` its external keys
    (:class:`recbole_galrec.settings.ExternalSettings`) and ``dataset`` its dataset (``field2id_token``,
    ``uid_field``, ``iid_field``, ``user_num``, ``item_num``). Vectors come from the cache, else from the
    checkpoint ``settings.checkpoints[name]``, else from training the model with RecBole (then cached).
    """
    from recbole.utils import init_seed

    # Every setting and checkpoint is checked before anything is trained.
    runs = [plan_run(config, settings, name) for name in settings.models]
    results = []
    for run in runs:
        payload = _payload(config, run)
        results.append(_aligned(payload, dataset, run.name))
    # The GALRec run that follows starts from the same random state whether or not a cache existed.
    init_seed(config["seed"], config["reproducibility"])
    return results


def _payload(config, run: ExternalRun) -> dict:
    """The cached vectors of ``run``, extracted (from its checkpoint, or after training it) and cached if absent."""
    name = run.name
    payload = read_cache(run.cache_path, name)
    if payload is not None:
        logger.info(f"external {name}: reusing {run.cache_path}")
        return payload
    if run.checkpoint_path:
        logger.info(f"external {name}: extracting from checkpoint {run.checkpoint_path}")
        model, train_data = model_from_checkpoint(run)
        valid_result = None
    else:
        logger.info(
            f"external {name}: training on {config['dataset']} for up to {run.config['epochs']} "
            f"epochs (early stopping after {run.config['stopping_step']} validations without "
            f"improvement of {run.config['valid_metric']})"
        )
        model, train_data, valid_result = train_external_model(run.config)
    payload = extract_payload(run, model, train_data, valid_result)
    save_atomic(payload, run.cache_path)
    logger.info(f"external {name}: cached {run.cache_path}")
    return payload


def _aligned(payload: dict, dataset, name: str) -> ExternalEmbeddings:
    """A payload's tables placed at ``dataset``'s ids, with the encoder of the own user's vector."""
    user_ids, item_ids = token2id(dataset, dataset.uid_field), token2id(dataset, dataset.iid_field)
    user = align(payload["user_tokens"], payload["user"], user_ids, dataset.user_num, "user", name)
    item = align(payload["item_tokens"], payload["item"], item_ids, dataset.item_num, "item", name)
    if payload.get("encoder"):
        return ExternalEmbeddings(name, user, item, SASRecUserEncoder(payload["encoder"], item))
    if user.shape[1] != item.shape[1]:
        raise ConfigError(
            f"external {name}: user vectors of size {user.shape[1]} and item vectors of size {item.shape[1]}: "
            "a user vector cannot be recomputed from its history's items; use a model whose sizes agree."
        )
    return ExternalEmbeddings(name, user, item, HistoryMeanEncoder(item))
