"""RecBole's own keys that users commonly set, checked at start-up like GALRec's keys.

RecBole reads most of these keys only where it uses them (``epochs`` in the trainer's loop, ``valid_metric``
at the first validation), so on its own a bad value fails minutes into a run, with a traceback. :func:`check`
stops a run before any data is read, with a :class:`~recbole_galrec.errors.ConfigError` naming the key, the
value and what is allowed. The limits are those of RecBole 1.2.1's config, trainer and evaluator: a value
that RecBole runs with is never refused. This package's own data key ``duplicate_interactions`` is checked the
same way (:data:`PACKAGE_RULES`). :func:`settle_device` makes ``use_gpu`` mean what it says.

RecBole keeps a key it does not know without a word, so a misspelt one (``lerning_rate``) leaves the default in
place: :func:`warn_unknown_keys` names each given key that neither RecBole nor this package reads, with the nearest
known key (:func:`known_keys`).
"""

import difflib
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from recbole_galrec.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

# The optimisers of RecBole's Trainer._build_optimizer (any other name silently falls back to Adam).
LEARNERS = ("adam", "adamw", "sgd", "adagrad", "rmsprop", "sparse_adam")

# One value of each kind: a test and its name in messages.
_KINDS: dict[str, tuple[Callable, str]] = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "number": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
        "a finite number",
    ),
    "bool": (lambda v: isinstance(v, bool), "True or False"),
    "str": (lambda v: isinstance(v, str), "a string"),
}


@cache
def metric_names() -> tuple[str, ...]:
    """RecBole's metrics, by their class names (``Hit``, ``NDCG``, ...); RecBole matches them case-insensitively."""
    from recbole.evaluator.register import metrics_dict

    return tuple(sorted((cls.__name__ for cls in metrics_dict.values()), key=str.lower))


@dataclass(frozen=True)
class Rule:
    """What one key may hold.

    ``kind`` is a key of ``_KINDS``; ``low``/``high`` bound the value (``low`` excluded when ``above``);
    ``choices`` (a tuple, or a function giving one) are the allowed strings, matched case-insensitively;
    ``listed`` admits a non-empty list of such values too; ``optional`` admits None (``~``) too; ``note`` says
    what the value means.
    """

    kind: str
    low: int | None = None
    above: bool = False
    high: int | None = None
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    listed: bool = False
    optional: bool = False
    note: str = ""

    def allowed_choices(self) -> tuple[str, ...]:
        return self.choices() if callable(self.choices) else self.choices

    def accepts(self, value) -> bool:
        if value is None and self.optional:
            return True
        values = value if self.listed and isinstance(value, (list, tuple)) else [value]
        return bool(values) and all(self._accepts_one(v) for v in values)

    def _accepts_one(self, value) -> bool:
        if not _KINDS[self.kind][0](value):
            return False
        if self.choices:
            return value.lower() in {c.lower() for c in self.allowed_choices()}
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high

    def describe(self) -> str:
        """The allowed values in words, e.g. "an integer >= 1"."""
        if self.choices:
            text = f"one of {', '.join(self.allowed_choices())}"
        else:
            text = _KINDS[self.kind][1]
            if self.low is not None and self.high is not None:
                text += f" from {self.low} to {self.high}"
            elif self.low is not None:
                text += f" {'>' if self.above else '>='} {self.low}"
        if self.listed:
            text += ", or a non-empty list of them"
        if self.optional:
            text += ", or ~ (none)"
        return f"{text} ({self.note})" if self.note else text


RULES: dict[str, Rule] = {
    "epochs": Rule("int", low=0, note="0: the untrained model is saved and tested"),
    "train_batch_size": Rule("int", low=1),
    "eval_batch_size": Rule("int", low=1),
    "learner": Rule("str", choices=LEARNERS),
    "learning_rate": Rule("number", low=0, above=True),
    "weight_decay": Rule("number", low=0),
    "eval_step": Rule("int", low=0, note="epochs between validations; 0: no validation"),
    "stopping_step": Rule("int", low=0, note="validations without improvement before training stops"),
    "metrics": Rule("str", choices=metric_names, listed=True),
    "topk": Rule("int", low=1, listed=True),
    "valid_metric": Rule("str", note="a metric of metrics, with @k for a k of topk where it has a cut-off: NDCG@10"),
    "MAX_ITEM_LIST_LENGTH": Rule("int", low=1),
    "seed": Rule("int", low=0, high=2**32 - 1),  # RecBole's init_seed seeds numpy, which takes this range
    "use_gpu": Rule("bool"),
    "reproducibility": Rule("bool"),
    "show_progress": Rule("bool"),
    "worker": Rule("int", low=0),
    "nproc": Rule("int", low=1, note="processes of the run"),
}

# This package's own data keys (properties/overall.yaml), checked like RecBole's.
PACKAGE_RULES: dict[str, Rule] = {
    "duplicate_interactions": Rule("str", choices=("error", "drop"), note="repeated rows of the .inter file"),
    "eval_protocol": Rule("str", choices=("recbole", "viewed_filtered"), note="the protocol that picks the best epoch"),
    "train_time_budget": Rule(
        "number", low=0, above=True, optional=True, note="seconds of training after which no epoch starts; ~: none"
    ),
}

# The keys RecBole's Config reads while it is built; a bad one can make it fail with a message that does not
# name the key, so build_config checks these among the given values when RecBole rejects a configuration.
READ_BY_RECBOLE_CONFIG = ("metrics", "topk", "valid_metric")


def check(values: Mapping) -> None:
    """Check every key of :data:`RULES` and :data:`PACKAGE_RULES` present in ``values`` (a RecBole
    ``final_config_dict``), then the keys that must agree: ``metrics`` of one kind, ``valid_metric`` among
    ``metrics`` and ``topk``."""
    for key, rule in (RULES | PACKAGE_RULES).items():
        if key in values and not rule.accepts(values[key]):
            raise ConfigError(f"{key} must be {rule.describe()}, got {values[key]!r}.")
    _check_metrics(values)


def check_cut_offs(values: Mapping, n_items: int) -> None:
    """``topk`` against the dataset's item count (known once the data is read): a cut-off above it would fail
    deep in RecBole's evaluator."""
    topk = _as_list(values["topk"])
    if topk and max(topk) > n_items:
        raise DataError(
            f"topk {topk}: dataset '{values['dataset']}' has {n_items} items, fewer than the largest cut-off "
            f"{max(topk)}. Give cut-offs of at most {n_items} (e.g. --topk=[5,10]) and a valid_metric among them."
        )


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _check_metrics(values: Mapping) -> None:
    """``metrics`` of one kind (ranking or value); ``valid_metric`` among them, with a k of ``topk`` where the
    metric has a cut-off. Each check runs when its keys are present; ``valid_metric`` only when validation runs
    (RecBole's trainer validates when ``min(eval_step, epochs) > 0``)."""
    from recbole.evaluator.register import metric_information, metric_types

    if "metrics" not in values:
        return
    metrics = _as_list(values["metrics"])
    kinds = {}
    for name in metrics:
        kinds.setdefault(metric_types[name.lower()].name.lower(), []).append(name)
    if len(kinds) > 1:
        parts = " and ".join(f"{kind} metrics ({', '.join(names)})" for kind, names in kinds.items())
        raise ConfigError(f"metrics {metrics!r} mixes {parts}; RecBole evaluates one kind per run: keep one kind.")
    if "valid_metric" not in values or min(values.get("eval_step", 1), values.get("epochs", 1)) <= 0:
        return
    valid_metric = values["valid_metric"]
    name, at, k = valid_metric.partition("@")
    if name.lower() not in {m.lower() for m in metrics}:
        raise ConfigError(
            f"valid_metric {valid_metric!r} must be one of metrics {metrics!r}: validation computes only those. "
            "Add it to metrics or choose another valid_metric."
        )
    has_cutoff = bool({"rec.topk", "rec.items"} & set(metric_information[name.lower()]))
    if has_cutoff and "topk" in values:
        topk = _as_list(values["topk"])
        if k not in {str(cutoff) for cutoff in topk}:
            raise ConfigError(
                f"valid_metric {valid_metric!r} must end in @k with k one of topk {topk!r}, e.g. {name}@{topk[0]}."
            )
    if not has_cutoff and at:
        raise ConfigError(f"valid_metric {valid_metric!r}: {name} has no cut-off; write {name}.")


# A key read from a config in code: config["key"], config_dict['key'], final_config_dict["key"].
_KEY_READ = re.compile(r"""config(?:_dict)?\[\s*["'](\w+)["']\s*\]""")


@cache
def known_keys() -> frozenset[str]:
    """Every config key RecBole 1.2.1 or this package reads, read once: the top-level keys of RecBole's property
    files (overall, every model's, the dataset and quick-start ones), of its argument lists and of this package's
    property files, and every key either package's code reads from a config (``config["key"]``: the keys RecBole's
    ``Config`` sets itself, ``encoding``, the multi-process keys, ...)."""
    import recbole
    from recbole.utils import argument_list

    recbole_dir = Path(recbole.__file__).resolve().parent
    package_dir = Path(__file__).resolve().parent
    keys = {key for name in dir(argument_list) if name.endswith("_arguments") for key in getattr(argument_list, name)}
    for folder in (recbole_dir / "properties", package_dir / "properties"):
        for path in folder.rglob("*.yaml"):
            if path.name not in ("url.yaml", "kg_url.yaml"):  # dataset names, not keys
                content = yaml.safe_load(path.read_text(encoding="utf-8"))
                keys.update(content if isinstance(content, dict) else {})
    for folder in (recbole_dir, package_dir):
        for path in folder.rglob("*.py"):
            keys.update(_KEY_READ.findall(path.read_text(encoding="utf-8")))
    return frozenset(keys)


_keys_warned: set[str] = set()


def warn_unknown_keys(given: Mapping) -> None:
    """Log a warning, once per process, for each key the user gave (config files, ``config_dict``, the command
    line) that neither RecBole nor this package reads, with the nearest known key: RecBole keeps an unknown key
    without a word, so a misspelt one (``lerning_rate``) silently leaves the default in place."""
    known = known_keys()
    for key in given:
        if not isinstance(key, str) or key in known or key in _keys_warned:
            continue
        _keys_warned.add(key)
        nearest = difflib.get_close_matches(key, sorted(known), 1)
        hint = f" (did you mean {nearest[0]}?)" if nearest else ""
        logger.warning(
            f"Unknown config key '{key}'{hint}: neither RecBole nor recbole_galrec reads it, so it changes nothing. "
            "Check its spelling (keys are case-sensitive)."
        )


_cpu_warning_given = False


def settle_device(config) -> None:
    """Make ``use_gpu`` mean what it says. RecBole 1.2.1 picks the device from ``gpu_id`` and CUDA alone
    (``use_gpu`` only switches its GPU memory readout). Here ``use_gpu: False`` runs on the CPU, and
    ``use_gpu: True`` on the CPU (no CUDA GPU, or an empty ``gpu_id``) logs a warning, once per process."""
    global _cpu_warning_given
    import torch

    if not config["use_gpu"]:
        config["device"] = torch.device("cpu")
    elif config["device"].type == "cpu" and not _cpu_warning_given:
        _cpu_warning_given = True
        reason = "torch sees no CUDA GPU" if not torch.cuda.is_available() else "gpu_id is empty"
        logger.warning(
            f"use_gpu is True but {reason}: this run is on the CPU (use_gpu: False runs there without this warning)."
        )
