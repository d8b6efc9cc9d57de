"""What a sensitivity analysis runs: GALRec once per value of one of its keys, each value a benchmark label
(``GALRec[contrast_tau=0.05]``, :func:`recbole_galrec.benchmark.plan.setting_label`), every value checked by
GALRec's settings before any run."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, fields

from recbole_galrec.benchmark import plan as planning
from recbole_galrec.cli import parse_overrides
from recbole_galrec.config import build_config, profile_files
from recbole_galrec.errors import ConfigError
from recbole_galrec.settings import GALRecSettings

MODEL = "GALRec"
MIN_VALUES = 2


def galrec_keys() -> list[str]:
    """GALRec's own config keys: the fields of :class:`GALRecSettings` read from the config."""
    return [f.name for f in fields(GALRecSettings) if f.init]


@dataclass(frozen=True)
class Sweep:
    """One key of GALRec, its values (as GALRec's settings read them) and the benchmark label of each value."""

    param: str
    values: list
    labels: list[str]
    providers: list[str]  # the benchmark labels whose runs give the variants their external models

    @property
    def models(self) -> list[str]:
        """Every label of the benchmark: the external models' runs, then one GALRec variant per value."""
        return [*self.providers, *self.labels]


def check_param(param: str, overrides: dict) -> None:
    """ConfigError unless ``param`` is a GALRec key that neither the benchmark nor the common overrides set."""
    if param in planning.RESERVED_KEYS:
        raise ConfigError(
            f"--param={param}: {param} is set by {planning.RESERVED_KEYS[param]}, not varied by a sensitivity "
            "analysis; name one of GALRec's keys (properties/model/GALRec.yaml), e.g. --param=contrast_tau."
        )
    keys = galrec_keys()
    if param not in keys:
        nearest = difflib.get_close_matches(param, keys, 1)
        hint = f" (did you mean {nearest[0]}?)" if nearest else ""
        raise ConfigError(
            f"--param={param} is not a GALRec key{hint}. A sensitivity analysis varies one of GALRec's keys "
            f"(properties/model/GALRec.yaml): {', '.join(keys)}. Any other key (such as epochs) is set for every "
            "run with --key=value."
        )
    if param in overrides:
        raise ConfigError(
            f"--{param} is given as a setting of every run and as --param={param}: drop --{param}=..., the "
            "values come from --values."
        )


def parse_values(param: str, text: str) -> list:
    """``--values``: comma-separated, each read as a value on the command line is (``0.05`` a number)."""
    parts = [part.strip() for part in text.split(",")]
    if any(not part for part in parts):
        raise ConfigError(f"--values={text} has an empty value: give values separated by commas, e.g. 0.05,0.1,0.2.")
    if len(parts) < MIN_VALUES:
        raise ConfigError(
            f"--values={text}: a sensitivity analysis needs at least {MIN_VALUES} values of {param}, separated by "
            "commas (e.g. 0.05,0.1,0.2)."
        )
    return [parse_overrides([f"--{param}={part}"])[param] for part in parts]


def plan_sweep(
    param: str,
    values_text: str,
    dataset: str,
    config_files: list[str],
    overrides: dict,
    profile: str | None,
    seed: int,
) -> Sweep:
    """The sweep of ``param`` over ``values_text``: each value is set in GALRec's config as its run sets it (the
    profile, config files and overrides of the benchmark, the variant's key) and read by GALRec's settings,
    which refuse a value the key does not take. Two values that the settings read as one are refused."""
    check_param(param, overrides)
    raw_values = parse_values(param, values_text)
    files = profile_files(profile, MODEL) + [os.path.abspath(path) for path in config_files]
    values, labels, needed = [], [], set()
    for raw in raw_values:
        model, config_dict = planning.run_config(planning.setting_label(MODEL, param, raw), overrides, seed)
        try:
            settings = build_config(model, dataset, files, config_dict).settings
        except ConfigError as err:
            raise ConfigError(f"--values: GALRec with {param}={raw!r} is refused: {err}") from None
        value = getattr(settings, param)
        label = planning.setting_label(MODEL, param, value)
        if label in labels:
            raise ConfigError(f"--values names {param}={value!r} twice; give each value once.")
        values.append(value)
        labels.append(label)
        needed.update(settings.external_models)
    stems = [planning.run_stem(label, seed) for label in labels]
    if len(set(stems)) < len(stems):
        raise ConfigError(f"--values: two values of {param} would share the file names of their runs ({stems}).")
    providers = [label for label in planning.EXTERNAL_LABELS if label in needed]
    return Sweep(param, values, labels, providers)
