"""Checkpoint files: named per run, written atomically, read with checks, with what resuming a run needs.

A checkpoint is RecBole's (config, epoch, early-stopping state, the model's state, ``other_parameter``,
optimizer) plus the random states of Python, NumPy and torch (and the training loader's generator), the best
validation result, the training losses so far, the run's counters (samples, seconds: a resumed run reports the
whole run) and what identifies the run (:func:`run_identity`: model, dataset, a digest of its atomic files, the
settings that change the result). A run keeps two files: the best one (RecBole's ``saved_model_file``, written
when validation improves, read for the test) and ``<best>-last.pth``, written after every epoch, from which
``--resume`` continues an interrupted run exactly where it stopped, and only a run of the same identity
(:func:`check_resume`).

RecBole names the best file ``<Model>-<local time to the second>.pth``; :func:`unique_file` adds the process id
and a random part, so two runs started in the same second never share one. While a run writes its files it holds
a lock on ``<best>.lock`` (:func:`claim`): a resumed run refuses files that a live run still writes.
"""

import hashlib
import json
import os
import random
import secrets
import tempfile
from collections.abc import Mapping

import numpy as np
import torch

from recbole_galrec.errors import ConfigError, ResumeError
from recbole_galrec.running.files import write_atomic

ATOMIC_SUFFIXES = (".inter", ".item", ".user", ".kg", ".link", ".net")
# Config keys that say where a run reads and writes, on what device, how it logs or how fast it goes, not what it
# computes: not part of a run's identity. The data's location is compared through the digest of its files.
RUNTIME_KEYS = frozenset(
    {
        "data_path",
        "checkpoint_dir",
        "save_dataset",
        "dataset_save_path",
        "save_dataloaders",
        "dataloaders_save_path",
        "device",
        "use_gpu",
        "gpu_id",
        "worker",
        "nproc",
        "train_time_budget",  # a run stopped by its budget resumes with a larger one
        "world_size",
        "local_rank",
        "single_spec",
        "offset",
        "ip",
        "port",
        "state",
        "show_progress",
        "log_wandb",
        "wandb_project",
        "eval_batch_size",
        "loss_decimal_place",
        "metric_decimal_place",
        "llm_path",
        "external_checkpoints",
    }
)
_EXTERNAL_CACHE_KEYS = frozenset({"name", "user_tokens", "item_tokens", "user", "item"})


def last_file(best_file: str) -> str:
    """The path of a run's last-epoch checkpoint beside its best one."""
    stem, ext = os.path.splitext(best_file)
    return f"{stem}-last{ext or '.pth'}"


def lock_file(best_file: str) -> str:
    """The file a run locks while it writes ``best_file`` and its ``-last`` checkpoint."""
    return f"{best_file}.lock"


def unique_file(recbole_file: str) -> str:
    """RecBole's checkpoint name (``<Model>-<time to the second>.pth``) made the run's own: the process id and a
    random part added, drawn again while a file of that name (or its ``-last`` or lock file) exists."""
    stem, ext = os.path.splitext(recbole_file)
    while True:
        path = f"{stem}-{os.getpid()}-{secrets.token_hex(3)}{ext or '.pth'}"
        if not any(os.path.exists(p) for p in (path, last_file(path), lock_file(path))):
            return path


class Claim:
    """A run's lock on ``<best file>.lock`` (an advisory ``flock``, which the system drops when the process
    ends, however it ends): :meth:`release` when the run writes no more."""

    def __init__(self, path: str, handle=None):
        self.path, self._handle = path, handle

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            os.remove(self.path)  # before the lock goes: a run that opens the name later creates a new file
        except OSError:
            pass
        handle.close()

    def __del__(self):
        try:
            self.release()
        except Exception:  # at interpreter shutdown
            pass


def claim(best_file: str) -> Claim:
    """Lock ``best_file`` for this run; ConfigError when another live run holds it (the message names its
    process) or when its folder cannot be written. Without ``fcntl`` (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:
        return Claim(lock_file(best_file))
    path = lock_file(best_file)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")
    except OSError as err:
        raise ConfigError(
            f"cannot write beside the checkpoint '{best_file}' ({err.strerror or err}): a run writes its "
            "checkpoints there. Make its folder writable, or start a new run (without --resume) with a writable "
            "checkpoint_dir."
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(
            f"another run (process {owner}) is writing '{best_file}' and its -last checkpoint: a second run would "
            "overwrite them. Wait until that run ends (or stop it) before resuming it, or start a new run without "
            "--resume."
        ) from None
    except OSError:  # a file system without locks: nothing is locked
        Claim(path, handle).release()
        return Claim(path)
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return Claim(path, handle)


def save_atomic(state: dict, path: str) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename (:func:`.files.write_atomic`): a kill while
    saving never leaves a truncated file where the previous good one was. The file gets the mode the umask gives
    new files (0644 under umask 022), as a plain ``open`` would."""
    # torch's default pickle protocol: what weights_only loading reads
    write_atomic(path, lambda f: torch.save(state, f), binary=True)


def load(path: str, device=None) -> dict:
    """A run's checkpoint written by this package or RecBole (it pickles RecBole's Config: only load files you
    trust). ConfigError, naming the file, when it is missing, unreadable (truncated, corrupt), an external model's
    cache or anything else than a run's checkpoint."""
    path = str(path)
    if not os.path.isfile(path):
        raise ConfigError(f"checkpoint '{path}' does not exist (working directory: {os.getcwd()}).")
    try:
        state = torch.load(path, map_location=device or "cpu", weights_only=False)
    except Exception as err:  # truncated or corrupt: torch and pickle raise many kinds
        raise ConfigError(
            f"checkpoint '{path}' cannot be read ({type(err).__name__}: {err}): the file is truncated or corrupt "
            "(a copy or a write that did not finish, a full disk) or not a checkpoint. Use another checkpoint of "
            "the run (the '-last.pth' beside the best one, or the best one), or copy it again."
        ) from None
    keys = set(state) if isinstance(state, Mapping) else set()
    if _EXTERNAL_CACHE_KEYS <= keys:
        raise ConfigError(
            f"'{path}' is an external model's cache (the {state['name']} vectors a GALRec run reads, kept under "
            "<checkpoint_dir>/external/), not a run's checkpoint. Give the checkpoint a run wrote: "
            "<checkpoint_dir>/<Model>-<date>_<time>-<process>-<random>.pth, named under 'checkpoint' in the run's "
            "result file."
        )
    if not {"config", "state_dict"} <= keys:
        raise ConfigError(
            f"'{path}' is not a checkpoint of a run (it holds no 'config' and 'state_dict'). Give the checkpoint a "
            "run wrote: <checkpoint_dir>/<Model>-<date>_<time>-....pth, named under 'checkpoint' in the run's "
            "result file."
        )
    return dict(state)


# ---------------------------------------------------------------------------------------------- a run's identity
def data_fingerprint(folder: str | None, dataset: str) -> dict:
    """``{"files": {file name: sha256}}`` of the dataset's atomic files in ``folder`` (empty if none)."""
    files = {}
    if folder and os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            if name.startswith(f"{dataset}.") and name.endswith(ATOMIC_SUFFIXES):
                digest = hashlib.sha256()
                with open(os.path.join(folder, name), "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
                files[name] = digest.hexdigest()
    return {"files": files}


def run_identity(config, data: bool = True) -> dict:
    """What makes a run this run: its model, dataset, the digest of the dataset's atomic files (``data``: not
    computed when False) and every setting that changes its result (all of ``config`` but :data:`RUNTIME_KEYS`),
    as plain JSON values."""
    values = getattr(config, "final_config_dict", config)  # a RecBole Config, or a plain mapping
    settings = {key: _plain(value) for key, value in values.items() if key not in RUNTIME_KEYS | {"model", "dataset"}}
    files = data_fingerprint(values.get("data_path"), values["dataset"])["files"] if data else {}
    return {"model": values["model"], "dataset": values["dataset"], "data": files, "settings": settings}


def _plain(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def identity_differences(stored: dict, current: dict) -> list[str]:
    """What differs between the identity of a checkpoint's run (``stored``) and this run's, one phrase each.
    Settings that only one of them knows (another version of this package) and data without a digest are not
    compared."""
    differences = [
        f"{field}: checkpoint {stored[field]!r}, this run {current[field]!r}"
        for field in ("model", "dataset")
        if stored.get(field) != current[field]
    ]
    old, new = stored.get("settings") or {}, current["settings"]
    differences += [
        f"{key}: checkpoint {_shown(old[key])}, this run {_shown(new[key])}"
        for key in sorted(old.keys() & new.keys())
        if old[key] != new[key]
    ]
    old, new = stored.get("data") or {}, current["data"]
    if old and new and old != new:
        changed = sorted(name for name in old.keys() & new.keys() if old[name] != new[name])
        differences.append(
            "other data: "
            + "; ".join(
                [f"{name} differs from the file the checkpoint's run read" for name in changed]
                + [f"{name} is gone" for name in sorted(old.keys() - new.keys())]
                + [f"{name} is new" for name in sorted(new.keys() - old.keys())]
            )
        )
    return differences


def _shown(value) -> str:
    return json.dumps(value, sort_keys=True)


# ------------------------------------------------------------------------------------- checks before a run starts
def check_start(config, resume: str | None) -> dict | None:
    """Check, before any data is read or model trained, that the run can write its checkpoints and that the
    ``resume`` checkpoint (if any) is readable and of this run; return that checkpoint (loaded on the CPU)."""
    check_checkpoint_dir(config["checkpoint_dir"])
    return check_resume(resume, config) if resume else None


def check_checkpoint_dir(folder: str) -> None:
    """ConfigError, naming the folder, unless ``folder`` exists or can be created, and a file can be written in it."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        what = "written to" if os.path.isdir(folder) else "created"
        raise ConfigError(
            f"checkpoint_dir '{folder}' cannot be {what} ({err.strerror or err}): a run writes its checkpoints "
            "there. Set --checkpoint_dir to a folder you can write to, or fix the folder's permissions."
        ) from None


def check_resume(path: str, config) -> dict:
    """The checkpoint ``path`` to resume the run of ``config`` from: readable (:func:`load`), written by this
    package's trainer, of the same run (:func:`run_identity`), and not being written by a live run. Every
    refusal is a ConfigError naming the file and what differs: a ResumeError when the file cannot serve this run
    (a new run can start instead), a plain ConfigError when a live run still writes it."""
    try:
        checkpoint = load(path)
    except ConfigError as err:
        raise ResumeError(f"--resume: {err}") from None
    trained = checkpoint["config"]["model"]
    if trained != config["model"]:
        raise ResumeError(f"--resume: '{path}' holds a {trained} run, not {config['model']}.")
    if "random_states" not in checkpoint:
        raise ResumeError(
            f"--resume: '{path}' was not written by this package's trainer (no random states); "
            "only its checkpoints can be resumed exactly."
        )
    stored = checkpoint.get("run") or run_identity(checkpoint["config"], data=False)  # older checkpoints
    current = run_identity(config)
    differences = identity_differences(_with_cap_of(stored, current, trained=checkpoint["epoch"] + 1), current)
    if differences:
        raise ResumeError(
            f"--resume: '{path}' is a checkpoint of another run: {'; '.join(differences)}. Resume with the "
            "settings and data of the interrupted run (its command line), or start a new run without --resume."
        )
    writer = config["single_spec"] or config["local_rank"] == 0  # the one process of a run that writes checkpoints
    if checkpoint.get("best_file") and writer:
        claim(checkpoint["best_file"]).release()  # a live run still writing it is refused now, before any work
    return checkpoint


def _with_cap_of(stored: dict, current: dict, trained: int) -> dict:
    """``stored`` with this run's ``epochs`` when the checkpoint's run, had it had that cap from its start, would
    have trained the same ``trained`` epochs the same way: an interrupted run continues under a raised (or lowered)
    cap. ``epochs`` bounds training and nothing in it reads the cap but RecBole's trainer, which validates every
    ``min(eval_step, epochs)`` epochs. A run that ended (early stopping, or its cap) stays ended."""
    old, new = stored.get("settings") or {}, current["settings"]
    keys = ("epochs", "eval_step")
    if not all(isinstance(settings.get(key), int) for settings in (old, new) for key in keys):
        return stored
    same_validations = min(old["eval_step"], old["epochs"]) == min(new["eval_step"], new["epochs"])
    if new["epochs"] >= trained and same_validations:
        return {**stored, "settings": {**old, "epochs": new["epochs"]}}
    return stored


def to_device(value, device):
    """``value`` (tensors, possibly in dicts, lists and tuples) with its tensors on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return type(value)((key, to_device(item, device)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return type(value)(to_device(item, device) for item in value)
    return value


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
