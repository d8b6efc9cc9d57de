"""recbole-galrec: GAL-Rec (Graph-Aware Learning for language-model-driven recommendation) for RecBole."""

from recbole_galrec.config import build_config
from recbole_galrec.errors import ConfigError, DatasetNotFoundError, GALRecError, UnknownModelError
from recbole_galrec.lookup import get_model, get_trainer
from recbole_galrec.quick_start import run_recbole_galrec
from recbole_galrec.running.result import RunResult

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DatasetNotFoundError",
    "GALRecError",
    "RunResult",
    "UnknownModelError",
    "build_config",
    "get_model",
    "get_trainer",
    "run_recbole_galrec",
]
