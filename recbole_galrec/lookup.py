"""Lookups that search ``recbole_galrec`` first and RecBole second.

RecBole finds a model only under ``recbole.model.<family>.<lowercase name>``, a trainer only as
``recbole.trainer.<Model>Trainer`` (and a dataset class only as ``recbole.data.dataset.<Model>Dataset``:
:func:`recbole_galrec.data.create.get_dataset_class`). These functions look in the matching place of this
package first (``recbole_galrec.model.<lowercase>``, ``recbole_galrec.running.galrec_trainer``) and fall back
to RecBole, so one entry point runs GALRec and every RecBole baseline.
"""

import importlib
import importlib.util
import os
import re
from functools import lru_cache

from recbole_galrec.errors import UnknownModelError

# RecBole's model families; "exlib_recommender" is left out: importing it needs xgboost and lightgbm,
# and RecBole's own lookup walks into it for any unknown name ("No module named 'lightgbm'").
_RECBOLE_FAMILIES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
)


def _class_names_in(package: str) -> dict[str, str]:
    """Map each model class name of ``package`` to its module, by reading the files, not importing them.

    A model lives in ``<package>/<lowercase name>.py`` and is the class of that name (RecBole's rule).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return {}
    found = {}
    for folder in spec.submodule_search_locations:
        for file in sorted(os.listdir(folder)):
            stem, ext = os.path.splitext(file)
            if ext != ".py" or stem.startswith("_"):
                continue
            with open(os.path.join(folder, file), encoding="utf-8") as f:
                for name in re.findall(r"^class (\w+)\(", f.read(), flags=re.M):
                    if name.lower() == stem:
                        found[name] = f"{package}.{stem}"
    return found


@lru_cache(maxsize=1)
def known_models() -> dict[str, str]:
    """Every model name this package can run, mapped to its module; plugin models shadow RecBole's."""
    models = {}
    for family in _RECBOLE_FAMILIES:
        models.update(_class_names_in(f"recbole.model.{family}"))
    models.update(_class_names_in("recbole_galrec.model"))
    return models


def get_model(model_name: str) -> type:
    """Return the model class named ``model_name`` (exact spelling, as RecBole names its models)."""
    models = known_models()
    if model_name not in models:
        by_lower = {name.lower(): name for name in models}
        hint = by_lower.get(str(model_name).lower())
        did_you_mean = f" Did you mean '{hint}'?" if hint else ""
        raise UnknownModelError(
            f"Unknown model '{model_name}'.{did_you_mean} Known models: {', '.join(sorted(models))}."
        )
    return getattr(importlib.import_module(models[model_name]), model_name)


def get_trainer(model_type, model_name: str) -> type:
    """Return ``recbole_galrec.running.galrec_trainer.<Model>Trainer`` if it exists, else RecBole's choice."""
    # imports RecBole's trainers: only when asked for
    from recbole_galrec.running import galrec_trainer as plugin_trainers

    trainer = getattr(plugin_trainers, f"{model_name}Trainer", None)
    if trainer is not None:
        return trainer
    from recbole.utils import get_trainer as recbole_get_trainer

    return recbole_get_trainer(model_type, model_name)
