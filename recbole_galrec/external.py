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

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from logging import getLogger

import torch
import yaml
from torch import nn

from recbole_galrec.config import PROPERTIES_DIR, build_config
from recbole_galrec.data.dataset import training_histories
from recbole_galrec.errors import ConfigError

logger = getLogger(__name__)

DEFAULT_MODELS = ("SASRec", "LightGCN")
DEFAULT_EPOCHS = 20
DEFAULT_STOPPING_STEP = 3

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


def recent_items(item_seq: torch.Tensor, item_seq_len: torch.Tensor, length: int) -> torch.Tensor:
    """The last ``length`` items of each left-aligned, 0-padded sequence ``[B, L]``, again left-aligned and
    0-padded: ``[B, length]``."""
    offsets = torch.arange(length, device=item_seq.device)  # [length]
    start = (item_seq_len - length).clamp(min=0)  # [B]
    positions = (start[:, None] + offsets).clamp(max=item_seq.shape[1] - 1)  # [B, length]
    taken = torch.gather(item_seq, 1, positions)  # [B, length]
    return taken * (offsets[None, :] < item_seq_len.clamp(max=length)[:, None])


class SASRecUserEncoder(nn.Module):
    """A trained SASRec's sequence encoder, frozen: item history ``[B, L]`` -> user vector ``[B, d]``.

    Built from the ``encoder`` entry of a SASRec cache (hyperparameters and the weights of the position
    embedding, input LayerNorm and transformer), with ``item_table`` ``[n_items, d]``: SASRec's item
    embeddings aligned with the ids of the dataset it is used on. It computes what RecBole's ``SASRec.forward``
    computes in evaluation mode, from the last ``max_seq_length`` items of each history. Always in
    evaluation mode (no dropout) and without gradients; its weights are not part of a GALRec checkpoint.
    """

    def __init__(self, encoder: Mapping, item_table: torch.Tensor):
        super().__init__()
        from recbole.model.layers import TransformerEncoder

        h = encoder["hparams"]
        self.max_seq_length = int(h["max_seq_length"])
        self.register_buffer("item_table", item_table.float(), persistent=False)  # [n_items, d]
        self.position_embedding = nn.Embedding(self.max_seq_length, int(h["hidden_size"]))
        self.LayerNorm = nn.LayerNorm(int(h["hidden_size"]), eps=float(h["layer_norm_eps"]))
        self.trm_encoder = TransformerEncoder(
            n_layers=int(h["n_layers"]),
            n_heads=int(h["n_heads"]),
            hidden_size=int(h["hidden_size"]),
            inner_size=int(h["inner_size"]),
            hidden_dropout_prob=0.0,
            attn_dropout_prob=0.0,
            hidden_act=str(h["hidden_act"]),
            layer_norm_eps=float(h["layer_norm_eps"]),
        )
        self.load_state_dict(encoder["state"])
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: never in training mode

    @torch.no_grad()
    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        item_seq = recent_items(item_seq, item_seq_len, min(self.max_seq_length, item_seq.shape[1]))  # [B, L]
        length = item_seq_len.clamp(min=1, max=item_seq.shape[1])  # [B]
        positions = torch.arange(item_seq.shape[1], device=item_seq.device)  # [L]
        hidden = self.item_table[item_seq] + self.position_embedding(positions)[None]  # [B, L, d]
        hidden = self.LayerNorm(hidden)
        causal = torch.tril((item_seq != 0)[:, None, None, :].expand(-1, -1, item_seq.shape[1], -1))
        mask = torch.where(causal, 0.0, -10000.0)  # [B, 1, L, L], as RecBole's get_attention_mask
        hidden = self.trm_encoder(hidden, mask, output_all_encoded_layers=False)[-1]  # [B, L, d]
        user = hidden[torch.arange(hidden.shape[0], device=hidden.device), length - 1]  # [B, d]
        return user * (item_seq_len > 0)[:, None]  # no history: zero, as a user without a training sample


class HistoryMeanEncoder(nn.Module):
    """The user vector of a model without a sequence encoder (LightGCN), recomputed from a history: the mean
    of the model's item vectors over the history's items ``[B, L]`` -> ``[B, d]`` (zero for an empty one).

    LightGCN's own row of a user is fitted on all of the user's training edges, so for a training prefix it
    already encodes the prefix's target; this vector is a function of the prefix alone (a LightGCN user
    vector is, after one propagation layer, a normalised sum of its items' vectors). Frozen, not saved."""

    def __init__(self, item_table: torch.Tensor):
        super().__init__()
        self.register_buffer("item_table", item_table.float(), persistent=False)  # [n_items, d]

    @torch.no_grad()
    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        valid = (item_seq != 0).float()[..., None]  # [B, L, 1]
        total = (self.item_table[item_seq] * valid).sum(dim=1)  # [B, d]
        return total / valid.sum(dim=1).clamp(min=1.0)


@dataclass
class ExternalEmbeddings:
    """One external model's vectors, rows in the GALRec dataset's internal id order (row 0: padding).

    ``encoder`` recomputes the model's user vector from any history: :class:`SASRecUserEncoder` for SASRec,
    :class:`HistoryMeanEncoder` for LightGCN. A prompt's own user takes it; other users keep ``user``."""

    name: str
    user: torch.Tensor  # [n_users, d] float32
    item: torch.Tensor  # [n_items, d] float32
    encoder: nn.Module


# --------------------------------------------------------------------------------------------------------
# Extractors: (model, train_data, batch_size) -> (user [ext users, d], item [ext items, d], encoder or None)
# in the external dataset's internal id order. ``encoder`` is what :class:`SASRecUserEncoder` is built from.


def padded_training_histories(train_dataset, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each user's training history (:func:`recbole_galrec.data.dataset.training_histories`) as SASRec input:
    ``item_seq`` [user_num, max_len] (the last ``max_len`` items, left-aligned, 0-padded) and ``item_seq_len``
    [user_num] (0 for users without a training sample)."""
    item_seq = torch.zeros(train_dataset.user_num, max_len, dtype=torch.long)
    item_seq_len = torch.zeros(train_dataset.user_num, dtype=torch.long)
    for user, items in training_histories(train_dataset).items():
        tail = items[-max_len:]
        item_seq[user, : len(tail)] = torch.as_tensor(tail, dtype=torch.long)
        item_seq_len[user] = len(tail)
    return item_seq, item_seq_len


@torch.no_grad()
def _extract_sasrec(model, train_data, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    model.eval()
    item_seq, item_seq_len = padded_training_histories(train_data._dataset, model.max_seq_length)
    user = torch.zeros(item_seq.size(0), model.hidden_size)
    with_history = torch.nonzero(item_seq_len > 0).flatten()
    device = model.item_embedding.weight.device
    for start in range(0, len(with_history), batch_size):
        users = with_history[start : start + batch_size]
        output = model.forward(item_seq[users].to(device), item_seq_len[users].to(device))
        user[users] = output.float().cpu()
    encoder = {
        "hparams": {
            "max_seq_length": model.max_seq_length,
            "hidden_size": model.hidden_size,
            "layer_norm_eps": model.layer_norm_eps,
            "n_layers": model.n_layers,
            "n_heads": model.n_heads,
            "inner_size": model.inner_size,
            "hidden_act": model.hidden_act,
        },
        "state": {
            name: tensor.detach().float().cpu().clone()
            for name, tensor in model.state_dict().items()
            if name.split(".")[0] in ("position_embedding", "LayerNorm", "trm_encoder")
        },
    }
    return user, model.item_embedding.weight.detach().float().cpu(), encoder


@torch.no_grad()
def _extract_lightgcn(model, train_data, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, None]:
    model.eval()
    user, item = model.forward()
    return user.detach().float().cpu(), item.detach().float().cpu(), None


EXTRACTORS: dict[str, Callable] = {"SASRec": _extract_sasrec, "LightGCN": _extract_lightgcn}


# --------------------------------------------------------------------------------------------------------
# Configuration of the external run.


def _canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _plain(value):
    """A JSON-plain copy (dicts, lists, str, numbers, bool, None), storable with ``weights_only=True``."""
    return json.loads(_canonical_json(value))


def _setting(config, key, default):
    value = config[key]
    return default if value is None else value


def _config_value(cfg, key):
    """``cfg[key]`` or None, for a RecBole Config or a plain mapping."""
    if hasattr(cfg, "final_config_dict"):
        return cfg.final_config_dict.get(key)
    return cfg.get(key) if isinstance(cfg, Mapping) else None


def _parse_mapping_or_list(value, key: str):
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"'{key}' is not valid YAML: {err}") from None
    return value


def external_model_names(config) -> list[str]:
    """``config["external_models"]`` (default ``["SASRec", "LightGCN"]``), checked against the extractors."""
    names = _setting(config, "external_models", list(DEFAULT_MODELS))
    names = _parse_mapping_or_list(names, "external_models")
    if isinstance(names, str):
        names = [names]
    if names is None:
        names = []
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"'external_models' must be a list of model names, got {names!r}.")
    _check_supported(names)
    return list(names)


def _check_supported(names) -> None:
    unknown = [n for n in names if n not in EXTRACTORS]
    if unknown:
        raise ConfigError(
            f"external_models: no extractor for {', '.join(map(repr, unknown))}. "
            f"Supported external models: {', '.join(map(repr, EXTRACTORS))}."
        )


def _mapping_setting(config, key: str) -> dict:
    value = _parse_mapping_or_list(_setting(config, key, {}), key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"'{key}' must be a mapping of model name to value, got {value!r}.")
    return dict(value)


def _overrides(config, name: str) -> dict:
    overrides = _mapping_setting(config, "external_config").get(name) or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"'external_config[{name}]' must be a mapping of config keys, got {overrides!r}.")
    return dict(overrides)


def _checkpoint_path(config, name: str) -> str | None:
    path = _mapping_setting(config, "external_checkpoints").get(name)
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


@dataclass
class _ExternalRun:
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
    if trained != name:
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


def _plan(config, name: str) -> _ExternalRun:
    """Build the external run's config and its cache path, without loading any data."""
    checkpoint_path = _checkpoint_path(config, name)
    checkpoint = _load_recbole_checkpoint(checkpoint_path, name) if checkpoint_path else None
    data = _data_config(config)
    epochs = int(_setting(config, "external_epochs", DEFAULT_EPOCHS))
    stopping_step = int(_setting(config, "external_stopping_step", DEFAULT_STOPPING_STEP))
    overrides = _overrides(config, name)
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
    return _ExternalRun(name, run_config, key_config, cache_path, checkpoint_path, checkpoint)


def cache_file(config, name: str) -> str:
    """Where :func:`load_external_embeddings` caches model ``name``'s vectors for this GALRec config."""
    _check_supported([name])
    return _plan(config, name).cache_path


# --------------------------------------------------------------------------------------------------------
# Training, loading and extraction.


def _build(run_config):
    """Dataset, split and an untrained model of the external run."""
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    from recbole_galrec.data import create_dataset
    from recbole_galrec.utils import get_model

    init_seed(run_config["seed"], run_config["reproducibility"])
    dataset = create_dataset(run_config)
    train_data, valid_data, _ = data_preparation(run_config, dataset)
    init_seed(run_config["seed"] + run_config["local_rank"], run_config["reproducibility"])
    model = get_model(run_config["model"])(run_config, train_data._dataset).to(run_config["device"])
    return model, train_data, valid_data


def train_external_model(run_config):
    """Train the external model of ``run_config`` with RecBole and reload its best checkpoint.

    Returns ``(model, train_data, best_valid_result)``.
    """
    from recbole_galrec.utils import get_trainer

    model, train_data, valid_data = _build(run_config)
    trainer = get_trainer(run_config["MODEL_TYPE"], run_config["model"])(run_config, model)
    _, valid_result = trainer.fit(train_data, valid_data, saved=True, show_progress=bool(run_config["show_progress"]))
    checkpoint = torch.load(trainer.saved_model_file, map_location=run_config["device"], weights_only=False)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    logger.info(f"external {run_config['model']}: best checkpoint {trainer.saved_model_file}")
    return model, train_data, valid_result


def _from_checkpoint(run: _ExternalRun):
    model, train_data, _ = _build(run.config)
    try:
        model.load_state_dict(run.checkpoint["state_dict"])
    except RuntimeError as err:
        raise ConfigError(
            f"external_checkpoints[{run.name}]: '{run.checkpoint_path}' does not fit a {run.name} built on "
            f"this run's data: {err}"
        ) from None
    model.load_other_parameter(run.checkpoint.get("other_parameter"))
    return model, train_data


def _payload(run: _ExternalRun, model, train_data, valid_result) -> dict:
    batch_size = int(run.config["eval_batch_size"] or 1024)
    user, item, encoder = EXTRACTORS[run.name](model, train_data, batch_size)
    dataset = train_data._dataset
    user_tokens = [str(t) for t in dataset.field2id_token[dataset.uid_field]]
    item_tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field]]
    if user.size(0) != len(user_tokens) or item.size(0) != len(item_tokens):
        raise RuntimeError(
            f"{run.name} extractor returned {user.size(0)} users / {item.size(0)} items for a dataset of "
            f"{len(user_tokens)} / {len(item_tokens)}"
        )
    # Row 0 is RecBole's padding id: not stored, so that it stays zero after alignment.
    return {
        "name": run.name,
        "user_tokens": user_tokens[1:],
        "item_tokens": item_tokens[1:],
        "user": user[1:].float().contiguous().clone(),
        "item": item[1:].float().contiguous().clone(),
        "encoder": encoder,
        "config": run.key_config,
        "valid_result": None if valid_result is None else {str(k): float(v) for k, v in valid_result.items()},
    }


def _save_atomic(payload: dict, path: str) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _read_cache(path: str, name: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: rebuild it
        logger.warning(f"external {name}: cache {path} is unreadable ({err}); rebuilding it")
        return None
    required = {"name", "user_tokens", "item_tokens", "user", "item"}
    if not isinstance(payload, dict) or not required <= payload.keys() or payload["name"] != name:
        logger.warning(f"external {name}: cache {path} is not a {name} cache; rebuilding it")
        return None
    return payload


def _align(tokens: list[str], vectors: torch.Tensor, token2id: Mapping, n_rows: int, what: str, name: str):
    """Place each token's vector at the row of that token in the target dataset; other rows stay zero."""
    out = torch.zeros(n_rows, vectors.size(1), dtype=torch.float32)
    source, target = [], []
    for row, token in enumerate(tokens):
        index = token2id.get(token)
        if index is not None and index != 0:
            source.append(row)
            target.append(index)
    if source:
        out[torch.tensor(target)] = vectors[torch.tensor(source)].float()
    missing = n_rows - 1 - len(set(target))
    if missing:
        logger.warning(f"external {name}: {missing} of {n_rows - 1} {what}s have no {name} vector (left zero)")
    unused = len(tokens) - len(source)
    if unused:
        logger.warning(f"external {name}: {unused} {name} {what}s are not in this dataset (dropped)")
    return out


def _token2id(dataset, field: str) -> Mapping:
    mapping = getattr(dataset, "field2token_id", {}).get(field)
    if mapping is None:
        mapping = {str(t): i for i, t in enumerate(dataset.field2id_token[field])}
    return mapping


def load_external_embeddings(config, dataset) -> list[ExternalEmbeddings]:
    """Return the vectors of every model of ``config["external_models"]``, aligned with ``dataset``.

    ``config`` is the GALRec run's RecBole Config and ``dataset`` its dataset (``field2id_token``,
    ``uid_field``, ``iid_field``, ``user_num``, ``item_num``). Vectors come from the cache, else from
    ``config["external_checkpoints"][name]``, else from training the model with RecBole (then cached).
    Settings: ``external_models``, ``external_checkpoints``, ``external_epochs``,
    ``external_stopping_step``, ``external_config`` (see the module docstring).
    """
    from recbole.utils import init_seed

    # Every setting and checkpoint is checked before anything is trained.
    runs = [_plan(config, name) for name in external_model_names(config)]
    results = []
    for run in runs:
        name = run.name
        payload = _read_cache(run.cache_path, name)
        if payload is not None:
            logger.info(f"external {name}: reusing {run.cache_path}")
        else:
            if run.checkpoint_path:
                logger.info(f"external {name}: extracting from checkpoint {run.checkpoint_path}")
                model, train_data = _from_checkpoint(run)
                valid_result = None
            else:
                logger.info(
                    f"external {name}: training on {config['dataset']} for up to {run.config['epochs']} "
                    f"epochs (early stopping after {run.config['stopping_step']} validations without "
                    f"improvement of {run.config['valid_metric']})"
                )
                model, train_data, valid_result = train_external_model(run.config)
            payload = _payload(run, model, train_data, valid_result)
            _save_atomic(payload, run.cache_path)
            logger.info(f"external {name}: cached {run.cache_path}")
        user_ids, item_ids = _token2id(dataset, dataset.uid_field), _token2id(dataset, dataset.iid_field)
        user = _align(payload["user_tokens"], payload["user"], user_ids, dataset.user_num, "user", name)
        item = _align(payload["item_tokens"], payload["item"], item_ids, dataset.item_num, "item", name)
        encoder = SASRecUserEncoder(payload["encoder"], item) if payload.get("encoder") else HistoryMeanEncoder(item)
        if user.shape[1] != item.shape[1] and not payload.get("encoder"):
            raise ConfigError(
                f"external {name}: user vectors of size {user.shape[1]} and item vectors of size {item.shape[1]}: "
                "a user vector cannot be recomputed from its history's items; use a model whose sizes agree."
            )
        results.append(ExternalEmbeddings(name=name, user=user, item=item, encoder=encoder))
    # The GALRec run that follows starts from the same random state whether or not a cache existed.
    init_seed(config["seed"], config["reproducibility"])
    return results
