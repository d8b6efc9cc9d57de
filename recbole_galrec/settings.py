"""The own config keys of this package's models (GALRec's, SASRecText's), read once into a typed, validated object.

Every key is documented in ``properties/model/<Model>.yaml``. :meth:`GALRecSettings.from_config` (and
:meth:`SASRecTextSettings.from_config`) fails at start-up, naming the key, when a key is missing, of the wrong
type, out of range, or when a key that looks like one of the model's keys is not one (a misspelling never
silently reads as ``None``).
"""

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import UnionType
from typing import Any, Union, get_args, get_origin

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
    "text_encoder_",
)

TUNINGS = ("lora", "full", "frozen")
TEXT_MODES = ("tokens", "embedding", "none")
TEXT_SOURCES = ("backbone", "encoder")  # item_text_source: what encodes the text vectors of embedding mode
DTYPES = ("float32", "bfloat16", "float16")
TRAIN_SAMPLES = ("all", "one_per_user")
SCORE_STARTS = ("sasrec", "random")
L1_POSITIVES = ("hops", "same_target")  # contrast_l1_positive: the prompt's 2-hop users, or a same-target prefix
RESIDUAL_ITEMS = ("soft_token", "text")  # score_residual_items: what the language model's term scores items by
TEXT_QUERIES = ("profile", "language_model")  # score_text_query: the text-profile term's query in text space
RESIDUAL_STARTS = ("gate", "head")  # score_residual_start: which factor of the language model's term starts at zero
EXTERNAL_MODELS = ("SASRec", "LightGCN")  # the models whose vectors recbole_galrec.external can extract


@dataclass(frozen=True)
class BackboneSettings:
    """How the language model is loaded and tuned (the ``llm_*`` keys), one object for
    :func:`recbole_galrec.layers.backbone.load_backbone`; the defaults are those of ``properties/model/GALRec.yaml``."""

    path: str | None = None  # llm_path: local folder or hub id; None: the offline default MiniLM
    tuning: str = "lora"  # llm_tuning
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] | None = None  # None: per family
    num_layers: int | None = None  # keep the first N transformer layers; None: all
    dtype: str = "float32"  # llm_dtype

    def __post_init__(self):
        check_choice("llm_tuning", self.tuning, TUNINGS)
        check_choice("llm_dtype", self.dtype, DTYPES)
        _at_least("llm_lora_r", self.lora_r, 1)
        _at_least("llm_lora_alpha", self.lora_alpha, 1)
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"llm_lora_dropout must be in [0, 1), got {self.lora_dropout}.")
        if self.num_layers is not None:
            _at_least("llm_num_layers", self.num_layers, 1)
        if self.lora_target_modules is not None:
            object.__setattr__(self, "lora_target_modules", tuple(self.lora_target_modules))


@dataclass(frozen=True)
class ExternalSettings:
    """Which external models give GALRec its soft tokens and how they are obtained (the ``external_*`` keys),
    one object for :func:`recbole_galrec.external.load_external_embeddings`."""

    models: tuple[str, ...] = EXTERNAL_MODELS  # external_models
    checkpoints: Mapping[str, str] = field(default_factory=dict)  # external_checkpoints: name -> RecBole file
    epochs: int = 20  # external_epochs
    stopping_step: int = 3  # external_stopping_step
    overrides: Mapping[str, Mapping] = field(default_factory=dict)  # external_config: name -> config keys

    def __post_init__(self):
        object.__setattr__(self, "models", tuple(self.models))
        unknown = [name for name in self.models if name not in EXTERNAL_MODELS]
        if unknown:
            raise ConfigError(
                f"external_models: no extractor for {', '.join(map(repr, unknown))}. "
                f"Supported external models: {', '.join(map(repr, EXTERNAL_MODELS))}."
            )
        _at_least("external_epochs", self.epochs, 0)
        _at_least("external_stopping_step", self.stopping_step, 0)
        for key, mapping in (("external_checkpoints", self.checkpoints), ("external_config", self.overrides)):
            strays = [name for name in mapping if name not in EXTERNAL_MODELS]
            if strays:
                raise ConfigError(
                    f"{key} names {', '.join(map(repr, strays))}, not an external model "
                    f"({', '.join(map(repr, EXTERNAL_MODELS))})."
                )
        for name, overrides in self.overrides.items():
            if not isinstance(overrides, Mapping):
                raise ConfigError(f"external_config[{name}] must be a mapping of config keys, got {overrides!r}.")


@dataclass(frozen=True)
class TextEncoderSettings:
    """How each item's text becomes one vector with a frozen text encoder, one object for
    :mod:`recbole_galrec.layers.text_encoder`; the defaults are those of ``properties/model/SASRecText.yaml``."""

    path: str | None = None  # llm_path: local folder or hub id; None: the offline default MiniLM
    max_len: int = 64  # text_encoder_max_len: tokens per text, the tokenizer's special tokens included
    batch_size: int = 256  # text_encoder_batch_size: texts per forward pass

    def __post_init__(self):
        if self.max_len < 3:
            raise ConfigError(
                f"text_encoder_max_len must be >= 3 (room for [CLS], one word and [SEP]), got {self.max_len}."
            )
        _at_least("text_encoder_batch_size", self.batch_size, 1)


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
    # Read from the config like every key (the YAML holds its default). The class default is for settings
    # unpickled from a checkpoint whose pickle lacks this field: such a model has item id embeddings.
    item_id_embedding: bool = True
    item_text_source: str = "backbone"
    text_encoder_max_len: int = 64
    text_encoder_batch_size: int = 256
    score_residual_center: bool = False
    contrast_l1_positive: str = "hops"
    score_residual_items: str = "soft_token"
    score_gate_lr_scale: float = 1.0
    score_residual_start: str = "gate"
    score_text_weight: float = 0.0
    score_text_decay: float = 0.5
    score_text_query: str = "profile"
    score_logit_adjustment: float = 0.0
    backbone: BackboneSettings = field(init=False)  # the llm_* keys of the backbone, as one object
    external: ExternalSettings = field(init=False)  # the external_* keys, as one object
    encoder: TextEncoderSettings = field(init=False)  # item_text_source encoder: the text_encoder_* keys

    def __post_init__(self):
        self.backbone = BackboneSettings(
            path=self.llm_path,
            tuning=self.llm_tuning,
            lora_r=self.llm_lora_r,
            lora_alpha=self.llm_lora_alpha,
            lora_dropout=self.llm_lora_dropout,
            lora_target_modules=self.llm_lora_target_modules,
            num_layers=self.llm_num_layers,
            dtype=self.llm_dtype,
        )
        self.external = ExternalSettings(
            models=self.external_models,
            checkpoints=self.external_checkpoints,
            epochs=self.external_epochs,
            stopping_step=self.external_stopping_step,
            overrides=self.external_config,
        )
        self.encoder = TextEncoderSettings(
            path=self.llm_path, max_len=self.text_encoder_max_len, batch_size=self.text_encoder_batch_size
        )
        check_choice("item_text_mode", self.item_text_mode, TEXT_MODES)
        check_choice("item_text_source", self.item_text_source, TEXT_SOURCES)
        check_choice("train_sample", self.train_sample, TRAIN_SAMPLES)
        check_choice("score_start", self.score_start, SCORE_STARTS)
        check_choice("contrast_l1_positive", self.contrast_l1_positive, L1_POSITIVES)
        check_choice("score_residual_items", self.score_residual_items, RESIDUAL_ITEMS)
        check_choice("score_residual_start", self.score_residual_start, RESIDUAL_STARTS)
        if self.score_residual_items == "text" and self.item_text_mode != "embedding":
            raise ConfigError(
                f"score_residual_items: text scores items by their text vectors, which item_text_mode "
                f"'{self.item_text_mode}' does not make: set item_text_mode: embedding, or score_residual_items: "
                "soft_token."
            )
        if self.score_text_weight < 0 or not 0 <= self.score_text_decay <= 1:
            raise ConfigError(
                f"score_text_weight must be >= 0 and score_text_decay in [0, 1], got {self.score_text_weight} and "
                f"{self.score_text_decay}."
            )
        check_choice("score_text_query", self.score_text_query, TEXT_QUERIES)
        if self.score_text_query == "language_model" and not self.score_text_weight:
            raise ConfigError(
                "score_text_query: language_model refines the text-profile term's query, which score_text_weight: 0 "
                "switches off; set score_text_weight > 0, or score_text_query: profile."
            )
        if self.score_text_weight and self.item_text_mode != "embedding":
            raise ConfigError(
                f"score_text_weight scores items by their text vectors, which item_text_mode '{self.item_text_mode}' "
                "does not make: set item_text_mode: embedding, or score_text_weight: 0."
            )
        if self.score_logit_adjustment < 0:
            raise ConfigError(f"score_logit_adjustment must be >= 0, got {self.score_logit_adjustment}.")
        for key in ("score_lr_scale", "score_gate_lr_scale"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}.")
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
        for key in ("llm_batch_size", "llm_length_groups", "contrast_dim"):
            _at_least(key, getattr(self, key), 1)
        for key in (
            "prompt_history_len",
            "prompt_num_neighbors",
            "item_text_len",
            "queue_size",
        ):
            _at_least(key, getattr(self, key), 0)
        for key in ("lambda1", "lambda2", "lambda3"):
            _at_least(key, getattr(self, key), 0.0)
        if not self.contrast_tau > 0:
            raise ConfigError(f"contrast_tau must be > 0, got {self.contrast_tau}.")
        if not 0.0 <= self.queue_momentum < 1.0:
            raise ConfigError(f"queue_momentum must be in [0, 1) (0: no momentum copy), got {self.queue_momentum}.")
        if not self.item_id_embedding and not self.external_models and self.item_text_mode != "embedding":
            raise ConfigError(
                "item_id_embedding: False leaves an item's soft token only the map of its frozen features, and "
                "this config gives it none (external_models is empty and item_text_mode is not embedding): set "
                "item_id_embedding: True, name external_models, or set item_text_mode: embedding."
            )
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
        return self.score_residual or self.lambda1 > 0 or self.uses_item_prompt or self.score_text_query != "profile"

    @property
    def uses_item_prompt(self) -> bool:
        """The item prompt feeds only L2 and L3; with both weights 0 it is never built."""
        return self.lambda2 > 0 or self.lambda3 > 0

    @classmethod
    def from_config(cls, config) -> "GALRecSettings":
        """Read every field from a RecBole ``Config`` (or any mapping with ``final_config_dict``-like keys)."""
        return _read_fields(cls, config, "GALRec", _KEY_PREFIXES)


@dataclass
class SASRecTextSettings:
    """SASRecText's own keys (``properties/model/SASRecText.yaml``): where its item table's text comes from and
    how it is encoded. SASRec's keys (``hidden_size``, ``initializer_range``, ...) are RecBole's."""

    llm_path: str | None
    item_text_fields: list[str]
    text_encoder_max_len: int
    text_encoder_batch_size: int
    encoder: TextEncoderSettings = field(init=False)  # the encoder keys, as one object

    def __post_init__(self):
        self.encoder = TextEncoderSettings(
            path=self.llm_path, max_len=self.text_encoder_max_len, batch_size=self.text_encoder_batch_size
        )
        if not self.item_text_fields:
            raise ConfigError(
                "item_text_fields is empty: SASRecText starts its item table from each item's text. Set "
                "item_text_fields to the .item fields that hold it (and list them in load_col['item']), or run "
                "SASRec for a model without text."
            )

    @classmethod
    def from_config(cls, config) -> "SASRecTextSettings":
        """Read every field from a RecBole ``Config`` (or a mapping); a misspelt ``text_encoder_`` key is an error.
        GALRec's keys are let through: a benchmark may give them to every model it runs."""
        return _read_fields(cls, config, "SASRecText", ("text_encoder_",))


def _read_fields(cls, config, model: str, prefixes: tuple[str, ...]):
    """An instance of the settings dataclass ``cls`` of ``model``, each init field read from ``config`` (a RecBole
    ``Config`` or a mapping) and checked against its annotation. ConfigError for a key that starts with one of
    ``prefixes`` or is spelt nearly as a field without being one, and for a missing field."""
    values = dict(config.final_config_dict) if hasattr(config, "final_config_dict") else dict(config)
    names = [f.name for f in fields(cls) if f.init]
    unknown = [
        k for k in values if k not in names and (k.startswith(prefixes) or difflib.get_close_matches(k, names, 1, 0.9))
    ]
    if unknown:
        hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, names, 1)) else k for k in unknown]
        raise ConfigError(f"Unknown {model} config keys: {', '.join(hints)}. See properties/model/{model}.yaml.")
    missing = [n for n in names if n not in values]
    if missing:
        raise ConfigError(
            f"{model} config keys missing: {', '.join(missing)}. They are defined in "
            f"recbole_galrec/properties/model/{model}.yaml; is the package installed with its properties?"
        )
    return cls(**{f.name: _typed(f.name, values[f.name], f.type) for f in fields(cls) if f.init})


def _typed(key: str, value: Any, annotation) -> Any:
    """Check ``value`` against a field annotation (``int``, ``float``, ``str``, ``bool``, ``list[...]``,
    ``dict[...]``, each optionally ``| None``)."""
    options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{key} must be set (got null).")
    kinds = [get_origin(option) or option for option in options if option is not type(None)]
    if len(kinds) != 1:
        raise TypeError(f"{key}: unsupported annotation {annotation!r} (one type, optionally | None)")
    kind = kinds[0]
    if kind is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}.")
        return list(value)
    if kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}.")
        return dict(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be True or False, got {value!r}.")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}.")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}.")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}.")
        return value
    raise TypeError(f"{key}: unsupported annotation {annotation!r}")


def check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise a ConfigError naming ``key`` unless ``value`` is one of ``allowed``: the one rule for every choice,
    of a config key or of an argument given from Python (such as a backbone's ``llm_family``)."""
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}; got {value!r}.")


def _at_least(key: str, value, minimum) -> None:
    if value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value}.")
