"""GALRec's own config keys, read once into a typed, validated object.

Every key is documented in ``properties/model/GALRec.yaml``. :meth:`GALRecSettings.from_config` fails at
start-up, naming the key, when a key is missing, of the wrong type, out of range, or when a key that looks
like a GALRec key is not one (a misspelling never silently reads as ``None``).
"""

import difflib
from dataclasses import dataclass, fields
from typing import Any

from recbole_galrec.errors import ConfigError

# Prefixes of GALRec's keys: a config key with one of these prefixes that is not a field is a misspelling
# (so is any key very close to a field's name, such as "lamda1").
_KEY_PREFIXES = (
    "llm_",
    "prompt_",
    "item_text_",
    "external_",
    "lambda",
    "contrast_",
    "queue_",
    "train_sample",
    "score_",
)

TUNINGS = ("lora", "full", "frozen")
TEXT_MODES = ("tokens", "embedding", "none")
DTYPES = ("float32", "bfloat16", "float16")
TRAIN_SAMPLES = ("all", "one_per_user")
SCORE_STARTS = ("sasrec", "random")


@dataclass
class GALRecSettings:
    llm_path: str | None
    llm_tuning: str
    llm_lora_r: int
    llm_lora_alpha: int
    llm_lora_dropout: float
    llm_lora_target_modules: list[str] | None
    llm_num_layers: int | None
    llm_dtype: str
    llm_batch_size: int
    llm_length_groups: int
    prompt_user_template: str
    prompt_item_template: str
    prompt_history_len: int
    prompt_num_neighbors: int
    item_text_fields: list[str]
    item_text_mode: str
    item_text_len: int
    external_models: list[str]
    external_checkpoints: dict[str, str]
    external_epochs: int
    external_stopping_step: int
    external_config: dict[str, dict]
    external_user_skip: bool
    score_start: str
    score_residual: bool
    score_lr_scale: float
    lambda1: float
    lambda2: float
    lambda3: float
    contrast_tau: float
    contrast_dim: int
    queue_size: int
    queue_momentum: float
    train_sample: str

    def __post_init__(self):
        _choice("llm_tuning", self.llm_tuning, TUNINGS)
        _choice("item_text_mode", self.item_text_mode, TEXT_MODES)
        _choice("llm_dtype", self.llm_dtype, DTYPES)
        _choice("train_sample", self.train_sample, TRAIN_SAMPLES)
        _choice("score_start", self.score_start, SCORE_STARTS)
        if not self.score_lr_scale > 0:
            raise ConfigError(f"score_lr_scale must be > 0, got {self.score_lr_scale}.")
        if not self.score_residual and not self.external_user_skip:
            raise ConfigError(
                "score_residual: False with external_user_skip: False leaves nothing to score items with; "
                "set one of them to True."
            )
        if self.score_start == "sasrec":
            if not self.external_user_skip:
                raise ConfigError(
                    "score_start: sasrec starts the external scoring term from SASRec, which needs "
                    "external_user_skip: True. For the paper's form set external_user_skip: False and "
                    "score_start: random."
                )
            if "SASRec" not in self.external_models:
                raise ConfigError(
                    f"score_start: sasrec needs SASRec among external_models (got {self.external_models}); "
                    "add it, or set score_start: random."
                )
        for key in ("llm_lora_r", "llm_lora_alpha", "llm_batch_size", "llm_length_groups", "contrast_dim"):
            _at_least(key, getattr(self, key), 1)
        for key in (
            "prompt_history_len",
            "prompt_num_neighbors",
            "item_text_len",
            "queue_size",
            "external_epochs",
            "external_stopping_step",
        ):
            _at_least(key, getattr(self, key), 0)
        if self.llm_num_layers is not None:
            _at_least("llm_num_layers", self.llm_num_layers, 1)
        for key in ("lambda1", "lambda2", "lambda3"):
            _at_least(key, getattr(self, key), 0.0)
        if not self.contrast_tau > 0:
            raise ConfigError(f"contrast_tau must be > 0, got {self.contrast_tau}.")
        if not 0.0 <= self.queue_momentum < 1.0:
            raise ConfigError(f"queue_momentum must be in [0, 1) (0: no momentum copy), got {self.queue_momentum}.")
        if not 0.0 <= self.llm_lora_dropout < 1.0:
            raise ConfigError(f"llm_lora_dropout must be in [0, 1), got {self.llm_lora_dropout}.")
        if self.item_text_mode == "tokens" and self.item_text_len < 1:
            raise ConfigError("item_text_len must be >= 1 when item_text_mode is 'tokens'.")
        for template, key, needed in (
            (self.prompt_user_template, "prompt_user_template", ("{user}", "{history}", "{neighbors}")),
            (self.prompt_item_template, "prompt_item_template", ("{item}", "{item_users}")),
        ):
            for placeholder in needed:
                if template.count(placeholder) != 1:
                    raise ConfigError(f"{key} must contain {placeholder} exactly once: {template!r}")

    @property
    def uses_backbone(self) -> bool:
        """Whether training or scoring runs the language model at all (not when it neither scores nor learns
        a contrastive term: the "no language model" ablation)."""
        return self.score_residual or self.lambda1 > 0 or self.uses_item_prompt

    @property
    def uses_item_prompt(self) -> bool:
        """The item prompt feeds only L2 and L3; with both weights 0 it is never built."""
        return self.lambda2 > 0 or self.lambda3 > 0

    @classmethod
    def from_config(cls, config) -> "GALRecSettings":
        """Read every field from a RecBole ``Config`` (or any mapping with ``final_config_dict``-like keys)."""
        values = dict(config.final_config_dict) if hasattr(config, "final_config_dict") else dict(config)
        names = [f.name for f in fields(cls)]
        unknown = [
            k
            for k in values
            if k not in names and (k.startswith(_KEY_PREFIXES) or difflib.get_close_matches(k, names, 1, 0.9))
        ]
        if unknown:
            hints = [
                f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, names, 1)) else k for k in unknown
            ]
            raise ConfigError(f"Unknown GALRec config keys: {', '.join(hints)}. See properties/model/GALRec.yaml.")
        missing = [n for n in names if n not in values]
        if missing:
            raise ConfigError(
                f"GALRec config keys missing: {', '.join(missing)}. They are defined in "
                "recbole_galrec/properties/model/GALRec.yaml; is the package installed with its properties?"
            )
        kwargs = {}
        for f in fields(cls):
            kwargs[f.name] = _typed(f.name, values[f.name], f.type)
        return cls(**kwargs)


def _typed(key: str, value: Any, annotation) -> Any:
    """Check ``value`` against a field annotation (``int``, ``float``, ``str``, ``list``, ``dict``, ``X | None``)."""
    text = str(annotation)
    if value is None:
        if "None" in text:
            return None
        raise ConfigError(f"{key} must be set (got null).")
    if text.startswith("list") or text.startswith("list[") or "list[" in text:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}.")
        return list(value)
    if text.startswith("dict"):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}.")
        return dict(value)
    if annotation is bool or text.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be True or False, got {value!r}.")
        return value
    if "int" in text and "float" not in text:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}.")
        return value
    if "float" in text:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}.")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}.")
    return value


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}; got {value!r}.")


def _at_least(key: str, value, minimum) -> None:
    if value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value}.")
