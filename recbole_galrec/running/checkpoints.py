"""Checkpoint files: written atomically, with what resuming a run needs besides the weights.

A checkpoint is RecBole's (config, epoch, early-stopping state, the model's state, ``other_parameter``,
optimizer) plus the random states of Python, NumPy and torch (and the training loader's generator), the best
validation result and the training losses so far. A run keeps two files: the best one (RecBole's
``saved_model_file``, written when validation improves, read for the test) and ``<best>-last.pth``, written
after every epoch, from which ``--resume`` continues an interrupted run exactly where it stopped.
"""

import os
import random
import tempfile

import numpy as np
import torch


def last_file(best_file: str) -> str:
    """The path of a run's last-epoch checkpoint beside its best one."""
    stem, ext = os.path.splitext(best_file)
    return f"{stem}-last{ext or '.pth'}"


def save_atomic(state: dict, path: str) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: a kill while saving never leaves a
    truncated file where the previous good one was."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)  # torch's default pickle protocol: what weights_only loading reads
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path: str, device=None) -> dict:
    """A checkpoint written by this package or RecBole (it pickles RecBole's Config: only load files you trust)."""
    if not os.path.isfile(path):
        from recbole_galrec.errors import ConfigError

        raise ConfigError(f"checkpoint '{path}' does not exist (working directory: {os.getcwd()}).")
    return torch.load(path, map_location=device or "cpu", weights_only=False)


def random_states() -> dict:
    """The global random states a training epoch draws from."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
