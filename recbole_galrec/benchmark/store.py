"""The results file: its header (settings, data, machine), its run records, and safe writing.

Only the benchmark's parent process writes the results file; workers write their own record files.
Committed results hold no machine paths: an absolute path given on the command line is recorded as
``<local>/<last part>`` (or relative to the working directory when it lies below it), and the dataset is
identified by a digest of its atomic files (:func:`recbole_galrec.running.checkpoints.data_fingerprint`, which a
run's checkpoints keep too), so a resumed benchmark still refuses different data.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import sys
from pathlib import Path

from recbole_galrec.errors import ConfigError
from recbole_galrec.running.files import write_atomic

logger = logging.getLogger(__name__)

# What decides speed and results: a benchmark resumes only on a machine that matches in these. The platform
# string (kernel build) is recorded but not compared. A key missing from an older results file is not compared.
MACHINE_KEYS = ("cpu_model", "cpu_count", "python", "torch", "cuda_device")
# Header keys a resumed benchmark must match.
RESUME_KEYS = ("dataset", "profile", "settings", "config_files", "data")
# Settings that name a location, not a value: recorded without the machine's path, compared through "data".
LOCATION_KEYS = ("data_path",)
CHECKPOINT_FOLDER = "checkpoints"  # runs/<dataset>/checkpoints/<run stem>/: a run's checkpoints (never committed)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file of its own and a rename: no reader sees half a file, and
    writers side by side (a search's configurations) do not share a temporary."""
    write_atomic(path, lambda f: f.write(text))


def public_path(value: str) -> str:
    """A path as it may be committed: relative paths as given, an absolute one relative to the working
    directory when below it, else ``<local>/<its last part>``."""
    path = str(value)
    if not os.path.isabs(path):
        return path
    cwd = os.getcwd()
    if os.path.commonpath([cwd, os.path.abspath(path)]) == cwd:
        return os.path.relpath(path, cwd)
    return f"<local>/{Path(path).name}"


def public_settings(settings: dict) -> dict:
    """The overrides without machine paths (every absolute path through :func:`public_path`)."""
    return {
        key: public_path(value) if isinstance(value, str) and os.path.isabs(value) else value
        for key, value in settings.items()
    }


def path_replacements(settings: dict, data_folder: str | None, output: Path | None = None) -> dict[str, str]:
    """Absolute folders of this machine that a run's log may name, each with the placeholder that replaces it:
    the data, the Python installation and its packages, this package's checkout, absolute settings, the
    working directory, the home folder and the benchmark's ``output`` folder (``<output>``)."""
    import recbole

    import recbole_galrec

    replacements = {
        os.getcwd(): ".",
        os.path.expanduser("~"): "~",
        sys.prefix: "<python>",
        os.path.dirname(os.path.dirname(os.path.abspath(recbole.__file__))): "<site-packages>",
        os.path.dirname(os.path.dirname(os.path.abspath(recbole_galrec.__file__))): "<recbole_galrec>",
    }
    if data_folder and os.path.isabs(data_folder):
        replacements[os.path.dirname(data_folder.rstrip("/"))] = "<data_path>"
    for value in settings.values():
        if isinstance(value, str) and os.path.isabs(value):
            replacements[value] = public_path(value)
    if output is not None:
        replacements[os.path.abspath(output)] = "<output>"
    return replacements


def public_command(argv: list[str], program: str = "python -m recbole_galrec.benchmark") -> str:
    """The command line of ``program`` (by default the benchmark) with every absolute path made public."""
    words = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.startswith("--") and os.path.isabs(value):
            arg = f"{key}={public_path(value)}"
        words.append(arg)
    return " ".join([program, *words])


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what the platform reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Platform, CPU model and count, Python, torch and CUDA device (or None) of this machine."""
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_device": cuda,
    }


def dataset_folder(dataset: str, config_files: list[str], overrides: dict) -> str | None:
    """The folder a run of this benchmark reads the dataset from, as RecBole resolves it."""
    from recbole_galrec.config import build_config

    try:
        return str(build_config("Pop", dataset, config_files, overrides)["data_path"])
    except Exception as err:  # a dataset RecBole cannot resolve fails in its runs, with their own message
        logger.warning(f"cannot resolve the data folder of {dataset}: {err}")
        return None


def _same_machine(stored: dict | None, current: dict) -> list[str]:
    stored = stored or {}
    return [key for key in MACHINE_KEYS if key in stored and stored[key] != current.get(key)]


def load_results(path: Path, header: dict) -> dict:
    """The results file at ``path`` (a new one if absent), checked to hold runs of the same settings."""
    if not path.is_file():
        return {**header, "commands": [header["command"]], "runs": []}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); move it away to start a new benchmark.") from None
    # The report names one machine and one configuration for all its runs: a resumed benchmark must match them
    # (timings of two kinds of machine, or results of two torch versions, are not one comparison).
    for key in RESUME_KEYS:
        if key in header and _comparable(results.get(key), key) != _comparable(header[key], key):
            raise ConfigError(
                f"{path} holds runs made with {key} {results.get(key)!r}, not {header[key]!r}: "
                "use another --output, or move the file away to start over."
            )
    # GALRec's start may change while no GALRec run is recorded (the other models' runs do not depend on it).
    start, stored = header.get("galrec_start") or "SASRec", results.get("galrec_start") or "SASRec"
    if start != stored and any(run.get("recbole_model") == "GALRec" for run in results.get("runs", [])):
        raise ConfigError(
            f"{path} holds GALRec runs whose external SASRec is the {stored} run, not {start}: give "
            f"--galrec_start={stored}, or use another --output for GALRec from {start}."
        )
    differing = _same_machine(results.get("machine"), header["machine"])
    if differing:
        stored = {key: results["machine"][key] for key in differing}
        current = {key: header["machine"].get(key) for key in differing}
        raise ConfigError(
            f"{path} holds runs made on a machine with {stored}, not {current}: timings of different machines "
            "are not one comparison. Use another --output, or move the file away to start over."
        )
    commands = list(results.get("commands") or [results.get("command")])  # files of older versions: "command"
    if header["command"] not in commands:
        commands.append(header["command"])
    return {**results, **header, "commands": commands, "runs": list(results.get("runs", []))}


def _comparable(value, key: str):
    """A header value as compared on resume: settings without their locations (the data digest covers them)."""
    if key == "settings" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in LOCATION_KEYS}
    return value


def record_run(results: dict, run: dict) -> None:
    """Put ``run`` into ``results``, replacing an earlier record of the same label and seed."""
    runs = results["runs"]
    for i, old in enumerate(runs):
        if (old["model"], old["seed"]) == (run["model"], run["seed"]):
            runs[i] = run
            return
    runs.append(run)


def done_runs(results: dict) -> set[tuple[str, int]]:
    """(label, seed) pairs already recorded with status ok."""
    return {(run["model"], run["seed"]) for run in results["runs"] if run.get("status") == "ok"}


def find_run(results: dict, label: str, seed: int) -> dict | None:
    return next((run for run in results["runs"] if (run["model"], run["seed"]) == (label, seed)), None)


def relative_to(path: str | None, out: Path) -> str | None:
    """``path`` relative to the output folder, with forward slashes (None stays None)."""
    if path is None:
        return None
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(out))).as_posix()


def scrub_paths(text: str, replacements: dict[str, str]) -> str:
    """``text`` with each absolute folder of ``replacements`` (longest first) replaced by its placeholder."""
    for folder in sorted(replacements, key=len, reverse=True):
        if folder and folder != os.sep:
            text = re.sub(re.escape(folder.rstrip(os.sep)) + r"(?=[/\\\s'\",:)\]]|$)", replacements[folder], text)
    return text


def check_output(out: Path, folder: Path) -> None:
    """ConfigError, naming ``--output``, unless the runs' ``folder`` inside it is a folder or can be made one (its
    nearest existing part is a writable folder)."""
    existing = next(path for path in (folder, *folder.parents) if path.exists() or path == Path(path.anchor))
    if not existing.is_dir():
        raise ConfigError(
            f"--output '{out}' cannot hold the results: '{existing}' is a file, not a folder. Give a folder for "
            "the results (it is created if absent), e.g. --output=benchmark."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--output '{out}': the folder '{existing}' is not writable; give a folder you can write to.")


def failed_runs(results: dict, labels: list[str], seeds: list[int]) -> list[dict]:
    """The runs of this plan that are recorded as failed (logged, with where to look)."""
    wanted = {(label, seed) for label in labels for seed in seeds}
    failed = [run for run in results["runs"] if (run["model"], run["seed"]) in wanted and run["status"] != "ok"]
    for run in failed:
        where = f"log: {run['log']}" if run.get("log") else run.get("error")
        logger.warning(f"{run['model']} seed {run['seed']} failed ({where}); the same command retries it")
    return failed
